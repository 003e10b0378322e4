//! The invariants on what a client receives, checked as the OpenAI SDKs read it.

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::pipeline::Run;

/// One event as the SDKs dispatch it (openai-python's `SSEDecoder`, openai-node's
/// `_iterSSEMessages`): lines end at `\r`, `\n` or `\r\n`; a blank line dispatches an event
/// that has a `data:` line or an `event:` name; `data:` lines are joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkEvent {
    /// The `event:` name.
    pub event: Option<String>,
    /// The joined data.
    pub data: String,
}

/// The events the SDKs read from `bytes` (a last event without its blank line is not read).
pub fn sdk_events(bytes: &[u8]) -> Vec<SdkEvent> {
    let text = String::from_utf8_lossy(bytes);
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Option<Vec<&str>> = None;
    let mut rest: &str = &text;
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        if line.is_empty() {
            if data.is_some() || event.is_some() {
                events.push(SdkEvent {
                    event: event.take(),
                    data: data.take().unwrap_or_default().join("\n"),
                });
            }
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.get_or_insert_with(Vec::new).push(value),
            _ => {}
        }
    }
    events
}

/// The JSON object `data` holds; panics (a finding) when it is not one.
pub fn object(data: &str, what: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(map)) => map,
        other => panic!("{what}: data is not a JSON object: {data:?} ({other:?})"),
    }
}

/// A translated stream: once committed, valid UTF-8 SSE whose events are chat.completion.chunk
/// objects or errors, ended by one `data: [DONE]`; a late failure is an error event the SDKs
/// read. Nothing reaches the client before the commit point.
pub fn translated_stream(run: &Run) {
    if !run.committed {
        assert!(run.out.is_empty());
        return;
    }
    assert!(!run.aborted, "an SSE body is never aborted");
    assert!(
        std::str::from_utf8(&run.out).is_ok(),
        "translated output is not UTF-8"
    );
    let events = sdk_events(&run.out);
    let done = events
        .iter()
        .position(|e| e.data == "[DONE]")
        .unwrap_or_else(|| panic!("no data: [DONE] in {:?}", String::from_utf8_lossy(&run.out)));
    // Found by this target: an upstream that failed after the last event used to add an
    // error event and a second `[DONE]`.
    assert_eq!(done + 1, events.len(), "events after [DONE]: {events:?}");
    let mut error = false;
    for event in &events[..done] {
        let chunk = object(&event.data, "translated stream");
        if chunk.contains_key("error") {
            error = true;
        } else {
            assert_eq!(
                chunk.get("object").and_then(Value::as_str),
                Some("chat.completion.chunk"),
                "{chunk:?}"
            );
        }
    }
    if run.late_failure.is_some() && done + 1 == events.len() {
        assert!(error, "a late failure the client cannot read: {events:?}");
    }
}

/// A translated whole answer: once committed, either aborted or one chat.completion object.
pub fn translated_json(run: &Run) {
    if !run.committed || run.aborted {
        return;
    }
    let text = std::str::from_utf8(&run.out).expect("translated output is not UTF-8");
    let answer = object(text, "translated answer");
    assert_eq!(
        answer.get("object").and_then(Value::as_str),
        Some("chat.completion"),
        "{answer:?}"
    );
}

/// A pass-through stream: the upstream's bytes unchanged; after a late failure, a prefix of them
/// and a tail that ends with `data: [DONE]`.
pub fn passed_stream(run: &Run) {
    if !run.committed {
        assert!(run.out.is_empty());
        return;
    }
    assert!(!run.aborted, "an SSE body is never aborted");
    match &run.late_failure {
        None => assert_eq!(run.out, run.upstream, "a pass-through changed the stream"),
        Some(_) => assert!(
            run.out.ends_with(b"data: [DONE]\n\n"),
            "a failed pass-through without [DONE]"
        ),
    }
}

/// A pass-through whole answer: the upstream's bytes unchanged, and a JSON object.
pub fn passed_json(run: &Run) {
    if !run.committed || run.aborted {
        return;
    }
    assert_eq!(run.out, run.upstream, "a pass-through changed the answer");
    // Members are skipped rather than read: serde_json refuses numbers past f64 (`1e999`) in a
    // `Value`, which are valid JSON that the SDKs read.
    let answer = serde_json::from_slice::<std::collections::BTreeMap<String, IgnoredAny>>(&run.out);
    assert!(
        answer.is_ok(),
        "a passed-through whole answer is not a JSON object: {:?}",
        String::from_utf8_lossy(&run.out)
    );
}

/// An upstream request body: one JSON object.
pub fn request_body(body: &[u8]) {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(_)) => {}
        other => panic!("upstream body is not a JSON object: {other:?}"),
    }
}
