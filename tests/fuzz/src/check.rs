//! The invariants on what a client receives, checked as the OpenAI SDKs read it (and, for the
//! Messages front door, as the Anthropic SDKs do).

use ai_worker_proxy::front::anthropic::signature;
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

/// A Messages request passed through to an `anthropic` target (`count`: to its count_tokens
/// endpoint): the client's object `client` with `model` replaced, and only what a real Anthropic
/// model must not see changed (src/providers/anthropic/passthrough.rs): thinking blocks the
/// proxy minted (an `aiwp1.` signature) removed from the messages, `max_tokens` lowered to the
/// model's limit, and `thinking` removed when the last assistant turn called tools and, its
/// minted thinking gone, no longer starts with a thinking block. Every other member as sent,
/// in the client's order; a count request keeps a subset of them, never `max_tokens` or
/// `stream` (which the endpoint refuses).
pub fn passed_messages_request(client: &Map<String, Value>, sent: &[u8], model: &str, count: bool) {
    // The proxy re-serialises what it parsed: compare with the client's object written out and
    // read back the same way, so that a float serde_json reads back to a neighbour still matches.
    let client: Map<String, Value> =
        serde_json::from_slice(&serde_json::to_vec(client).unwrap()).unwrap();
    let sent = match serde_json::from_slice::<Value>(sent) {
        Ok(Value::Object(sent)) => sent,
        other => panic!("upstream body is not a JSON object: {other:?}"),
    };
    let (messages, stripped) = without_minted_thinking(&client["messages"]);
    let drop_thinking = stripped && last_tool_turn_lacks_thinking(&messages);
    let mut expected = Map::new();
    for (key, value) in &client {
        let value = match key.as_str() {
            "model" => Value::String(model.to_owned()),
            "messages" => messages.clone(),
            "thinking" if drop_thinking => continue,
            "max_tokens" if count => continue,
            "max_tokens" => {
                let asked = value
                    .as_u64()
                    .expect("the front door took a max_tokens that is not a count");
                let got = sent.get("max_tokens").and_then(Value::as_u64);
                assert!(
                    got.is_some_and(|got| got > 0 && got <= asked),
                    "max_tokens {asked} went as {got:?}"
                );
                Value::from(got.unwrap())
            }
            "stream" if count => continue,
            _ if count && !sent.contains_key(key) => continue,
            _ => value.clone(),
        };
        expected.insert(key.clone(), value);
    }
    assert_eq!(
        Value::Object(sent.clone()),
        Value::Object(expected.clone()),
        "the pass-through changed more than it may"
    );
    let order = |map: &Map<String, Value>| map.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        order(&sent),
        order(&expected),
        "the pass-through reordered the body"
    );
}

/// `messages` without the thinking blocks the proxy minted, and whether there were any.
fn without_minted_thinking(messages: &Value) -> (Value, bool) {
    let minted = |block: &Value| {
        block.get("type").and_then(Value::as_str) == Some("thinking")
            && block
                .get("signature")
                .and_then(Value::as_str)
                .is_some_and(signature::is_minted)
    };
    let mut stripped = false;
    let mut messages = messages.clone();
    for message in messages.as_array_mut().into_iter().flatten() {
        if let Some(blocks) = message.get_mut("content").and_then(Value::as_array_mut) {
            let before = blocks.len();
            blocks.retain(|block| !minted(block));
            stripped |= blocks.len() != before;
        }
    }
    (messages, stripped)
}

/// Whether the last assistant turn calls a tool without starting with a thinking block.
fn last_tool_turn_lacks_thinking(messages: &Value) -> bool {
    let last = messages
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("assistant"));
    let kinds: Vec<&str> = last
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|block| block.get("type").and_then(Value::as_str))
        .collect();
    kinds.contains(&"tool_use")
        && !matches!(kinds.first(), Some(&("thinking" | "redacted_thinking")))
}

/// Anthropic's stop reasons (`StopReason`).
const STOP_REASONS: [&str; 7] = [
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
];

/// The member `name` of `object` as a string; panics (a finding) when it is not one.
fn text<'a>(object: &'a Map<String, Value>, name: &str, what: &str) -> &'a str {
    object
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: `{name}` is not a string: {object:?}"))
}

/// A message id the Anthropic clients accept: `msg_` and `[A-Za-z0-9_-]`.
fn message_id(id: &str) {
    let rest = id
        .strip_prefix("msg_")
        .unwrap_or_else(|| panic!("message id {id:?} does not start with msg_"));
    assert!(
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "message id {id:?} has characters the clients refuse"
    );
}

/// Anthropic `usage`: the counts it has are unsigned integers, `output_tokens` always among
/// them (and `input_tokens` where `input` says).
fn usage(object: &Map<String, Value>, input: bool, what: &str) {
    let usage = match object.get("usage") {
        Some(Value::Object(usage)) => usage,
        other => panic!("{what}: usage is not an object: {other:?}"),
    };
    let required: &[&str] = if input {
        &["input_tokens", "output_tokens"]
    } else {
        &["output_tokens"]
    };
    for name in required {
        assert!(
            usage.contains_key(*name),
            "{what}: no usage.{name}: {usage:?}"
        );
    }
    for (name, value) in usage {
        assert!(
            value.is_u64(),
            "{what}: usage.{name} is not a count: {usage:?}"
        );
    }
}

/// The Anthropic events of a front-door stream, each exactly `event: NAME\ndata: JSON\n\n`
/// with `NAME` the data's `type`: whole events only, nothing else in between.
pub fn anthropic_events(bytes: &[u8]) -> Vec<(String, Map<String, Value>)> {
    let text = std::str::from_utf8(bytes).expect("Anthropic stream is not UTF-8");
    let mut events = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (event, after) = rest
            .split_once("\n\n")
            .unwrap_or_else(|| panic!("a partial event at the end: {rest:?}"));
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|event| event.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not an `event:` and a `data:` line: {event:?} in {text:?}"));
        assert!(
            !name.contains(['\r', '\n']) && !data.contains(['\r', '\n']),
            "an event of more than two lines: {event:?}"
        );
        let data = object(data, "Anthropic event");
        assert_eq!(
            data.get("type").and_then(Value::as_str),
            Some(name),
            "an event's type is not its name: {event:?}"
        );
        events.push((name.to_owned(), data));
        rest = after;
    }
    events
}

/// The block a stream has open: its index, its type, its thinking so far, and whether it was
/// signed.
struct OpenBlock {
    index: u64,
    kind: String,
    thinking: String,
    signed: bool,
}

/// A front-door stream: once committed, whole Anthropic events ([`anthropic_events`]) in
/// Anthropic's order: `message_start` first; blocks that never overlap, indexed from 0 one
/// after the other, each delta in the open block and of its kind, each thinking block signed
/// with the proxy's signature of its text; `message_delta` (a known stop reason) outside any
/// block, then `message_stop`, and nothing after. Or, after a late failure and only then, an
/// `error` event last.
pub fn anthropic_stream(run: &Run) {
    if !run.committed {
        assert!(run.out.is_empty());
        return;
    }
    assert!(!run.aborted, "an SSE body is never aborted");
    let events = anthropic_events(&run.out);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    let mut open: Option<OpenBlock> = None;
    let mut blocks = 0u64;
    let mut message_delta = false;
    for (i, (name, data)) in events.iter().enumerate() {
        let last = i + 1 == events.len();
        let index = || data.get("index").and_then(Value::as_u64);
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0, "a second message_start: {names:?}");
                let message = match data.get("message") {
                    Some(Value::Object(message)) => message,
                    other => panic!("message_start without a message: {other:?}"),
                };
                assert_eq!(text(message, "type", "message_start"), "message");
                assert_eq!(text(message, "role", "message_start"), "assistant");
                message_id(text(message, "id", "message_start"));
                text(message, "model", "message_start");
                assert_eq!(message.get("content"), Some(&Value::Array(Vec::new())));
                assert_eq!(message.get("stop_reason"), Some(&Value::Null));
                usage(message, true, "message_start");
            }
            "content_block_start" => {
                assert!(open.is_none(), "overlapping blocks: {names:?}");
                assert!(!message_delta, "a block after message_delta: {names:?}");
                assert_eq!(
                    index(),
                    Some(blocks),
                    "block indexes are not 0, 1, 2...: {data:?}"
                );
                let block = match data.get("content_block") {
                    Some(Value::Object(block)) => block,
                    other => panic!("content_block_start without a block: {other:?}"),
                };
                let kind = text(block, "type", "content_block_start");
                match kind {
                    "text" => assert_eq!(text(block, "text", "text block"), ""),
                    "thinking" => assert_eq!(text(block, "thinking", "thinking block"), ""),
                    "tool_use" => {
                        text(block, "id", "tool_use block");
                        text(block, "name", "tool_use block");
                        assert_eq!(block.get("input"), Some(&Value::Object(Map::new())));
                    }
                    other => panic!("a block of unknown type {other:?}"),
                }
                open = Some(OpenBlock {
                    index: blocks,
                    kind: kind.to_owned(),
                    thinking: String::new(),
                    signed: false,
                });
                blocks += 1;
            }
            "content_block_delta" => {
                let block = open
                    .as_mut()
                    .unwrap_or_else(|| panic!("a delta outside a block: {names:?}"));
                assert_eq!(
                    index(),
                    Some(block.index),
                    "a delta of another block: {data:?}"
                );
                let delta = match data.get("delta") {
                    Some(Value::Object(delta)) => delta,
                    other => panic!("content_block_delta without a delta: {other:?}"),
                };
                match (block.kind.as_str(), text(delta, "type", "delta")) {
                    ("text", "text_delta") => {
                        text(delta, "text", "text_delta");
                    }
                    ("thinking", "thinking_delta") => {
                        assert!(!block.signed, "thinking after the signature");
                        block
                            .thinking
                            .push_str(text(delta, "thinking", "thinking_delta"));
                    }
                    ("thinking", "signature_delta") => {
                        assert!(!block.signed, "a second signature");
                        block.signed = true;
                        assert_eq!(
                            text(delta, "signature", "signature_delta"),
                            signature::mint(&block.thinking),
                            "a thinking block's signature is not the proxy's signature of its text"
                        );
                    }
                    ("tool_use", "input_json_delta") => {
                        text(delta, "partial_json", "input_json_delta");
                    }
                    (kind, delta) => panic!("a {delta} in a {kind} block"),
                }
            }
            "content_block_stop" => {
                let block = open
                    .take()
                    .unwrap_or_else(|| panic!("a stop outside a block: {names:?}"));
                assert_eq!(
                    index(),
                    Some(block.index),
                    "the stop of another block: {data:?}"
                );
                assert!(
                    block.kind != "thinking" || block.signed,
                    "an unsigned thinking block"
                );
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta inside a block: {names:?}");
                let delta = match data.get("delta") {
                    Some(Value::Object(delta)) => delta,
                    other => panic!("message_delta without a delta: {other:?}"),
                };
                let reason = text(delta, "stop_reason", "message_delta");
                assert!(
                    STOP_REASONS.contains(&reason),
                    "unknown stop_reason {reason:?}"
                );
                usage(data, false, "message_delta");
                message_delta = true;
            }
            "message_stop" => {
                assert!(open.is_none(), "message_stop inside a block: {names:?}");
                assert!(
                    message_delta,
                    "message_stop without message_delta: {names:?}"
                );
                assert!(last, "events after message_stop: {names:?}");
            }
            "error" => {
                assert!(last, "events after an error: {names:?}");
                let error = match data.get("error") {
                    Some(Value::Object(error)) => error,
                    other => panic!("an error event without an error: {other:?}"),
                };
                text(error, "type", "error event");
                text(error, "message", "error event");
            }
            other => panic!("an unknown event {other:?}"),
        }
    }
    let ended = names.last().copied();
    assert!(
        matches!(ended, Some("message_stop" | "error")),
        "the stream ends with neither message_stop nor an error: {names:?}"
    );
    assert_eq!(
        run.late_failure.is_some(),
        ended == Some("error"),
        "a late failure is an error event, and only it: {:?} {names:?}",
        run.late_failure
    );
}

/// A front-door whole answer: once committed, either aborted or one Anthropic `Message`:
/// content blocks of known types with their members, a known stop reason, usage counts.
pub fn anthropic_message(run: &Run) {
    if !run.committed || run.aborted {
        return;
    }
    let body = std::str::from_utf8(&run.out).expect("translated output is not UTF-8");
    let message = object(body, "Anthropic message");
    assert_eq!(text(&message, "type", "message"), "message");
    assert_eq!(text(&message, "role", "message"), "assistant");
    message_id(text(&message, "id", "message"));
    text(&message, "model", "message");
    let content = match message.get("content") {
        Some(Value::Array(content)) => content,
        other => panic!("content is not an array: {other:?}"),
    };
    for block in content {
        let block = match block {
            Value::Object(block) => block,
            other => panic!("a content block that is not an object: {other:?}"),
        };
        match text(block, "type", "content block") {
            "text" => {
                text(block, "text", "text block");
            }
            "thinking" => {
                let thinking = text(block, "thinking", "thinking block");
                assert_eq!(
                    text(block, "signature", "thinking block"),
                    signature::mint(thinking),
                    "a thinking block's signature is not the proxy's signature of its text"
                );
            }
            "tool_use" => {
                text(block, "id", "tool_use block");
                text(block, "name", "tool_use block");
                assert!(
                    block.get("input").is_some_and(Value::is_object),
                    "a tool_use input that is not an object: {block:?}"
                );
            }
            other => panic!("a content block of unknown type {other:?}"),
        }
    }
    let reason = text(&message, "stop_reason", "message");
    assert!(
        STOP_REASONS.contains(&reason),
        "unknown stop_reason {reason:?}"
    );
    assert!(
        matches!(
            message.get("stop_sequence"),
            Some(Value::Null | Value::String(_))
        ),
        "stop_sequence is neither null nor a string: {message:?}"
    );
    usage(&message, true, "message");
}
