//! Ending a stream that failed mid-event (`ai_worker_proxy::sse::cut`, `sse::json_prefix`).
//!
//! The first byte picks the check. Even: the rest is a JSON text cut anywhere, and what
//! `complete_object` appends must make it a JSON object whose `error` is the one asked.
//! Odd: the rest (after a chunking byte and two cut-position bytes) is a JSON object; it is sent
//! as SSE events, cut at that position, and `error_tail` must end the stream so that the SDKs
//! read every event as JSON, the proxy's error among them, then `[DONE]`.
#![no_main]

use ai_worker_proxy::sse::cut::{error_tail, OpenEvent};
use ai_worker_proxy::sse::json_prefix::{complete_object, Completion};
use ai_worker_proxy_fuzz::check::{object, sdk_events};
use ai_worker_proxy_fuzz::input::{byte, chunks, rest};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ERROR: &[u8] = br#"{"message":"cut","type":"upstream_error"}"#;

fn refused_by_serde_only(error: &serde_json::Error, text: &[u8]) -> bool {
    let message = error.to_string();
    // A leading surrogate without its trailing escape is reported as a short hex escape.
    let lone_surrogate = message.contains("hex escape")
        && ["\\ud8", "\\ud9", "\\uda", "\\udb"].iter().any(|lead| {
            text.to_ascii_lowercase()
                .windows(4)
                .any(|w| w == lead.as_bytes())
        });
    lone_surrogate
        || ["out of range", "surrogate", "recursion limit"]
            .iter()
            .any(|m| message.contains(m))
}

/// What `complete_object` says of `text` holds.
fn completes(text: &[u8]) -> Completion {
    let completion = complete_object(text, b"\"error\"", ERROR);
    let whole = match &completion {
        Completion::Suffix(suffix) => [text, suffix].concat(),
        Completion::Whole => text.to_vec(),
        Completion::Impossible => return completion,
    };
    let value: Value = match serde_json::from_slice(&whole) {
        Ok(value) => value,
        // Valid JSON that serde_json refuses and the SDKs' parsers (Python's `json`,
        // `JSON.parse`) accept: a number past f64 (`1e999`), an unpaired surrogate escape, more
        // than 128 levels of nesting.
        Err(e) if refused_by_serde_only(&e, &whole) => return completion,
        Err(e) => panic!(
            "{completion:?} is not JSON: {e}: {:?}",
            String::from_utf8_lossy(&whole)
        ),
    };
    assert!(value.is_object(), "{completion:?} is not an object");
    if matches!(completion, Completion::Suffix(_)) {
        let error: Value = serde_json::from_slice(ERROR).unwrap();
        assert_eq!(
            value["error"],
            error,
            "{:?}",
            String::from_utf8_lossy(&whole)
        );
    }
    completion
}

fn json_prefix(text: &[u8]) {
    completes(text);
    // Every prefix of a whole JSON object can be completed; a few of them are checked.
    if let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(text) {
        assert_eq!(completes(text), Completion::Whole);
        for step in 1..8 {
            let at = text.len() * step / 8;
            let completion = completes(&text[..at]);
            assert_ne!(completion, Completion::Impossible, "prefix of {at} bytes");
        }
    }
}

fn cut_stream(data: &[u8]) {
    let json = rest(data, 3);
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    // A data line cannot hold a line end; other JSON whitespace stays as written.
    let json = if json.contains(&b'\n') || json.contains(&b'\r') {
        serde_json::to_vec(&map).unwrap()
    } else {
        json.to_vec()
    };
    let end: &[u8] = match byte(data, 0) & 6 {
        0 => b"\n",
        2 => b"\r\n",
        _ => b"\r",
    };
    let mut stream = Vec::new();
    for _ in 0..2 {
        stream.extend_from_slice(b"data: ");
        stream.extend_from_slice(&json);
        stream.extend_from_slice(end);
        stream.extend_from_slice(end);
    }
    let at = usize::from(u16::from_le_bytes([byte(data, 1), byte(data, 2)])) % (stream.len() + 1);
    let sent = &stream[..at];
    let mut open = OpenEvent::new();
    for piece in chunks(sent, byte(data, 0) >> 3) {
        open.feed(&piece);
    }
    let out = [sent, &error_tail(open.bytes(), ERROR)].concat();
    let events = sdk_events(&out);
    let (last, before) = events.split_last().expect("no events");
    assert_eq!(last.data, "[DONE]", "{:?}", String::from_utf8_lossy(&out));
    let read: Vec<_> = before
        .iter()
        .map(|e| object(&e.data, "cut stream"))
        .collect();
    assert!(
        read.last().is_some_and(|o| o.contains_key("error")),
        "the error is not the last event: {:?}",
        String::from_utf8_lossy(&out)
    );
}

fuzz_target!(|data: &[u8]| {
    if byte(data, 0) & 1 == 0 {
        json_prefix(rest(data, 1));
    } else {
        cut_stream(data);
    }
});
