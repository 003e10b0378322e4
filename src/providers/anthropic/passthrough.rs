//! An Anthropic Messages request passed through to an `anthropic` target (the Messages front
//! door): the client's body with only `model` replaced — and what a real Anthropic model must
//! not see removed: thinking blocks the proxy minted for another provider's reasoning, and a
//! `max_tokens` above the model's limit. The answer comes back unchanged, whole events at a
//! time, held until its first token so that an early error still fails over.

use std::borrow::Cow;

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::core::fields::Field;
use crate::core::request::AnthropicInbound;
use crate::core::stream::{InOrder, Translate};
use crate::core::usage::{lenient, Metered, MeteredWhole};
use crate::core::verdict::UpstreamError;
use crate::front::anthropic::signature;

use super::{in_band_error, wire};

/// Fields `/v1/messages/count_tokens` takes (it refuses the others, `max_tokens` included).
const COUNT_FIELDS: [&str; 6] = [
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
];

/// `anthropic-beta` values forwarded when the target names none: what Claude Code and the SDKs
/// send that every current Claude model accepts. Betas some models refuse with a 400
/// (`context-1m-…`, `output-128k-…`) must be allowed on the target that can take them.
pub const DEFAULT_BETAS: [&str; 7] = [
    "claude-code-20250219",
    "interleaved-thinking-2025-05-14",
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "prompt-caching-2024-07-31",
    "context-management-2025-06-27",
    "files-api-2025-04-14",
];

/// The client's body for `model`, `max_tokens` at most `max_tokens`; `count` keeps only what
/// the count endpoint takes.
pub fn body(
    inbound: &AnthropicInbound,
    model: &str,
    max_tokens: Option<u64>,
    count: bool,
) -> Bytes {
    let body = &inbound.body;
    let messages = strip_minted(body.field("messages"));
    if let (None, None, false, Some(sent)) = (&messages, max_tokens, count, &inbound.sent) {
        return Bytes::from(sent.with_model(model));
    }
    // With thinking on, Anthropic wants the turn that called tools to start with its thinking
    // block; when that block was another provider's (now stripped), this turn goes without.
    let drop_thinking = messages.as_ref().is_some_and(last_tool_turn_lacks_thinking);
    let out = PassThrough {
        body,
        model,
        max_tokens,
        messages: messages.as_ref(),
        drop_thinking,
        count,
    };
    // Serialising in-memory JSON into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(&out).unwrap_or_default())
}

/// The `anthropic-beta` header value: the client's betas the target allows, if any.
pub fn betas(client: &[String], allowed: Option<&[&str]>) -> Option<String> {
    let allowed = allowed.unwrap_or(&DEFAULT_BETAS);
    let kept: Vec<&str> = client
        .iter()
        .map(String::as_str)
        .filter(|beta| allowed.contains(beta))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// `messages` without proxy-minted thinking blocks, when there are any.
fn strip_minted(messages: Option<&Value>) -> Option<Value> {
    let list = messages?.as_array()?;
    let minted = |block: &Value| {
        block.field("type").and_then(Value::as_str) == Some("thinking")
            && block
                .field("signature")
                .and_then(Value::as_str)
                .is_some_and(signature::is_minted)
    };
    let any = list.iter().any(|m| {
        m.field("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| blocks.iter().any(minted))
    });
    if !any {
        return None;
    }
    let stripped = list
        .iter()
        .map(|message| {
            let mut message = message.clone();
            if let Some(blocks) = message.get_mut("content").and_then(Value::as_array_mut) {
                blocks.retain(|block| !minted(block));
            }
            message
        })
        .collect();
    Some(Value::Array(stripped))
}

fn last_tool_turn_lacks_thinking(messages: &Value) -> bool {
    let Some(last) = messages.as_array().and_then(|list| {
        list.iter()
            .rev()
            .find(|m| m.field("role").and_then(Value::as_str) == Some("assistant"))
    }) else {
        return false;
    };
    let kinds: Vec<&str> = last
        .field("content")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b.field("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    kinds.contains(&"tool_use")
        && !matches!(kinds.first(), Some(&("thinking" | "redacted_thinking")))
}

struct PassThrough<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    max_tokens: Option<u64>,
    messages: Option<&'a Value>,
    drop_thinking: bool,
    count: bool,
}

impl Serialize for PassThrough<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.body {
            let key = key.as_str();
            if self.count && key != "model" && !COUNT_FIELDS.contains(&key) {
                continue;
            }
            match key {
                "model" => map.serialize_entry(key, self.model)?,
                "max_tokens" if self.max_tokens.is_some() => {
                    map.serialize_entry(key, &self.max_tokens)?;
                }
                "messages" if self.messages.is_some() => {
                    map.serialize_entry(key, &self.messages)?;
                }
                "thinking" if self.drop_thinking => {}
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// `input_tokens` of a count_tokens answer.
pub fn count_answer(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .field("input_tokens")?
        .as_u64()
}

/// The translator of a passed-through answer.
pub fn translator(stream: bool) -> Box<dyn Translate> {
    if stream {
        Box::new(Relay::default())
    } else {
        Box::new(MeteredWhole::new(|body: &[u8]| whole(body)))
    }
}

/// A whole `Message`, unchanged, unless it is an error; with its usage.
fn whole(body: &[u8]) -> Result<(Bytes, Option<Metered>), UpstreamError> {
    /// Only the `type`, to tell an error from a message without building either, and the
    /// usage.
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(default, deserialize_with = "lenient")]
        usage: Option<wire::Usage>,
    }
    match serde_json::from_slice::<Typed<'_>>(body) {
        Ok(typed) if typed.kind.as_deref() == Some("error") => {
            match serde_json::from_slice::<wire::ErrorEnvelope>(body) {
                Ok(envelope) => Err(in_band_error(&envelope.error)),
                Err(e) => Err(UpstreamError::truncated(format!(
                    "the upstream sent an unreadable error: {e}"
                ))),
            }
        }
        Ok(typed) => Ok((
            Bytes::copy_from_slice(body),
            typed.usage.as_ref().and_then(wire::Usage::metered),
        )),
        Err(e) => Err(UpstreamError::truncated(format!(
            "the upstream answer is not a Message: {e}"
        ))),
    }
}

/// Longest single event held while waiting for its end; far above any real event.
const MAX_EVENT: usize = 16 * 1024 * 1024;

/// The event stream, unchanged, a whole event at a time.
#[derive(Default)]
struct Relay {
    /// Bytes of the event not yet complete.
    partial: Vec<u8>,
    /// Whole events held until the first token.
    held: Vec<u8>,
    committed: bool,
    stopped: bool,
    order: InOrder,
    /// `message_start`'s counts, updated by each `message_delta`'s (cumulative).
    usage: wire::Usage,
}

/// What one event means for the relay.
enum Kind {
    /// Nothing to say yet (`message_start`, `ping`, an empty text block's start).
    Hold,
    /// The first token, or anything after it.
    Token,
    /// `message_stop`.
    Stop,
    /// An `error` event.
    Error(wire::ErrorBody),
}

/// What `event` means; the counts it carries (`message_start`, `message_delta`) go into `usage`.
fn kind(event: &[u8], usage: &mut wire::Usage) -> Kind {
    let text = String::from_utf8_lossy(event);
    let mut name = "";
    let mut data = String::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if let Some(counts) = event_usage(name, &data) {
        usage.merge(&counts);
    }
    match name {
        "message_start" | "ping" | "" => Kind::Hold,
        "content_block_start" if !data.contains("\"tool_use\"") => Kind::Hold,
        "message_stop" => Kind::Stop,
        "error" => match wire::Event::parse(&data) {
            Ok(wire::Event::Error { error }) => Kind::Error(error),
            _ => Kind::Error(wire::ErrorBody {
                kind: "api_error".into(),
                message: "the upstream sent an unreadable error event".into(),
            }),
        },
        _ => Kind::Token,
    }
}

/// The usage `message_start` (in its message) and `message_delta` carry; only those are parsed.
fn event_usage(name: &str, data: &str) -> Option<wire::Usage> {
    #[derive(Deserialize)]
    struct WithUsage {
        #[serde(default, deserialize_with = "lenient")]
        usage: Option<wire::Usage>,
    }
    #[derive(Deserialize)]
    struct Start {
        message: WithUsage,
    }
    match name {
        "message_start" => serde_json::from_str::<Start>(data).ok()?.message.usage,
        "message_delta" => serde_json::from_str::<WithUsage>(data).ok()?.usage,
        _ => None,
    }
}

/// The end of the first complete event in `bytes` (past its blank line).
fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Relay {
    fn events(&mut self, upstream: &[u8]) -> (Bytes, Option<UpstreamError>) {
        self.partial.extend_from_slice(upstream);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(len) = event_end(&self.partial[start..]) {
            let event = &self.partial[start..start + len];
            start += len;
            if self.stopped {
                continue;
            }
            match kind(event, &mut self.usage) {
                Kind::Error(error) if !self.committed => {
                    return (Bytes::new(), Some(in_band_error(&error)));
                }
                // After the first token the client reads Anthropic's own error event, which
                // ends the stream as Anthropic's own does.
                Kind::Error(_) => {
                    out.extend_from_slice(event);
                    self.stopped = true;
                }
                Kind::Hold if !self.committed => self.held.extend_from_slice(event),
                kind => {
                    if !self.committed {
                        self.committed = true;
                        out.append(&mut self.held);
                    }
                    self.stopped = matches!(kind, Kind::Stop);
                    out.extend_from_slice(event);
                }
            }
        }
        self.partial.drain(..start);
        let failure = (self.partial.len() > MAX_EVENT).then(|| {
            UpstreamError::truncated(format!(
                "an upstream event is larger than {MAX_EVENT} bytes"
            ))
        });
        (Bytes::from(out), failure)
    }
}

impl Translate for Relay {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let (out, failure) = self.events(&upstream);
        self.order.result(out, failure)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let (out, mut failure) = self.events(b"");
        if failure.is_none() && !self.stopped {
            failure = Some(UpstreamError::truncated(
                "the upstream stream ended before message_stop",
            ));
        }
        self.order.result(out, failure)
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        self.order.take()
    }

    fn usage(&self) -> Option<Metered> {
        self.usage.metered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::request::Operation;
    use serde_json::json;

    /// `body` as the Messages front door keeps it, from its compact JSON.
    fn inbound(body: &Value) -> AnthropicInbound {
        inbound_of(&body.to_string())
    }

    fn inbound_of(text: &str) -> AnthropicInbound {
        let headers: Vec<(String, String)> = Vec::new();
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let chat = crate::front::anthropic::chat_request(bytes, &headers, Operation::Complete)
            .unwrap_or_else(|e| panic!("{e:?}"));
        chat.anthropic().unwrap().clone()
    }

    #[test]
    fn with_nothing_else_to_change_the_clients_bytes_go_with_the_model_replaced() {
        let text = "{\n  \"model\": \"claude-x\",\n  \"max_tokens\": 1000,\n  \"temperature\": 1.0e0,\n  \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9\"}]\n}";
        let out = body(&inbound_of(text), "claude-opus-4-5", None, false);
        assert_eq!(
            &out[..],
            text.replace("claude-x", "claude-opus-4-5").as_bytes()
        );
        // A repeated key is re-serialised: an upstream might read the other one.
        let twice = r#"{"model":"a","max_tokens":9,"max_tokens":10,"messages":[{"role":"user","content":"q"}]}"#;
        assert_eq!(
            &body(&inbound_of(twice), "m", None, false)[..],
            br#"{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"q"}]}"#
        );
    }

    #[test]
    fn only_the_model_changes_and_minted_thinking_goes() {
        let minted = signature::mint("I should call the tool");
        let sent = json!({
            "model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "stream": true,
            "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "real", "signature": "EqQBCkYIBxgCKkB"},
                    {"type": "text", "text": "hello"}]},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "from gemini", "signature": minted},
                    {"type": "text", "text": "ok"}]},
                {"role": "user", "content": "more"}],
            "thinking": {"type": "enabled", "budget_tokens": 10000}
        });
        let out: Value = serde_json::from_slice(&body(
            &inbound(&sent),
            "claude-opus-4-5",
            Some(32000),
            false,
        ))
        .unwrap();
        let mut expected = sent.clone();
        expected["model"] = json!("claude-opus-4-5");
        expected["messages"][3]["content"]
            .as_array_mut()
            .unwrap()
            .remove(0);
        assert_eq!(out, expected);
        // Nothing minted: the same bytes as a plain re-serialisation, in the client's order.
        let plain =
            json!({"max_tokens": 10, "model": "x", "messages": [{"role": "user", "content": "q"}]});
        assert_eq!(
            &body(&inbound(&plain), "claude-haiku-4-5", Some(8), false)[..],
            br#"{"max_tokens":8,"model":"claude-haiku-4-5","messages":[{"role":"user","content":"q"}]}"#
        );
    }

    #[test]
    fn a_tool_turn_whose_thinking_was_minted_goes_without_thinking() {
        let sent = json!({
            "model": "m", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "t", "signature": signature::mint("t")},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}]
        });
        let out: Value = serde_json::from_slice(&body(&inbound(&sent), "m", None, false)).unwrap();
        assert!(out.get("thinking").is_none());
        assert_eq!(out["messages"][1]["content"][0]["type"], "tool_use");
    }

    #[test]
    fn count_keeps_only_what_the_endpoint_takes() {
        let sent = json!({"model": "x", "max_tokens": 5, "stream": true, "system": "s",
            "messages": [{"role": "user", "content": "q"}], "metadata": {"user_id": "u"}});
        assert_eq!(
            &body(&inbound(&sent), "claude-sonnet-4-5", None, true)[..],
            br#"{"model":"claude-sonnet-4-5","system":"s","messages":[{"role":"user","content":"q"}]}"#
        );
        assert_eq!(count_answer(br#"{"input_tokens":42}"#), Some(42));
        assert_eq!(count_answer(br#"{"nope":1}"#), None);
    }

    #[test]
    fn betas_pass_the_allow_list() {
        let client = vec![
            "claude-code-20250219".to_owned(),
            "context-1m-2025-08-07".to_owned(),
        ];
        assert_eq!(
            betas(&client, None).as_deref(),
            Some("claude-code-20250219")
        );
        assert_eq!(
            betas(&client, Some(&["context-1m-2025-08-07"])).as_deref(),
            Some("context-1m-2025-08-07")
        );
        assert_eq!(betas(&client, Some(&[])), None);
    }

    const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n";
    const BLOCK: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n";
    const DELTA: &str = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
    const END: &str = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn the_stream_comes_back_unchanged_from_its_first_token() {
        let whole = format!("{START}{BLOCK}{DELTA}{END}");
        for size in [1, 7, 64, whole.len()] {
            let mut relay = translator(true);
            let mut out = Vec::new();
            let mut first = None;
            for piece in whole.as_bytes().chunks(size) {
                let bytes = relay.chunk(Bytes::copy_from_slice(piece)).unwrap();
                if first.is_none() && !bytes.is_empty() {
                    first = Some(bytes.clone());
                }
                out.extend_from_slice(&bytes);
            }
            out.extend_from_slice(&relay.end().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), whole);
            // Nothing before the first token; then everything held, in order.
            let first = String::from_utf8(first.unwrap().to_vec()).unwrap();
            assert!(
                first.starts_with(&format!("{START}{BLOCK}{DELTA}")),
                "{first}"
            );
        }
    }

    #[test]
    fn an_error_before_the_first_token_fails_over_and_a_cut_stream_is_an_error() {
        let mut relay = translator(true);
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let e = relay
            .chunk(Bytes::from(format!("{START}{error}")))
            .unwrap_err();
        assert_eq!((e.status, e.error.kind.as_str()), (529, "overloaded_error"));
        let mut relay = translator(true);
        assert!(!relay
            .chunk(Bytes::from(format!("{START}{DELTA}")))
            .unwrap()
            .is_empty());
        assert_eq!(
            relay.end().unwrap_err().error.message,
            "the upstream stream ended before message_stop"
        );
    }

    #[test]
    fn an_error_after_the_first_token_is_relayed_and_ends_the_stream() {
        let error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let mut relay = translator(true);
        let out = relay
            .chunk(Bytes::from(format!("{START}{DELTA}{error}{DELTA}")))
            .unwrap();
        assert_eq!(
            String::from_utf8(out.to_vec()).unwrap(),
            format!("{START}{DELTA}{error}")
        );
        assert!(relay.end().unwrap().is_empty());
        assert!(relay.failure().is_none());
    }

    #[test]
    fn a_whole_message_is_unchanged_unless_it_is_an_error() {
        let message = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":1}}"#;
        let mut t = translator(false);
        assert!(t.chunk(Bytes::from_static(message)).unwrap().is_empty());
        assert_eq!(&t.end().unwrap()[..], message);
        let mut t = translator(false);
        t.chunk(Bytes::from_static(
            br#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#,
        ))
        .unwrap();
        assert_eq!(t.end().unwrap_err().status, 500);
    }

    #[test]
    fn the_relay_and_a_whole_message_report_the_upstreams_counts() {
        let whole = format!("{START}{BLOCK}{DELTA}{END}");
        for size in [1, 7, whole.len()] {
            let mut relay = translator(true);
            assert_eq!(relay.usage(), None);
            for piece in whole.as_bytes().chunks(size) {
                relay.chunk(Bytes::copy_from_slice(piece)).unwrap();
            }
            relay.end().unwrap();
            assert_eq!(relay.usage(), Some(Metered::from_anthropic(5, 0, 0, 2)));
        }
        // message_start's cache counts (anthropic-messages.md §4.2's shape), a later delta's
        // output.
        let start = START.replace(
            "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}",
            "\"usage\":{\"input_tokens\":377,\"cache_creation_input_tokens\":120,\"cache_read_input_tokens\":2048,\"output_tokens\":1,\"service_tier\":\"standard\"}",
        );
        let mut relay = translator(true);
        relay
            .chunk(Bytes::from(format!("{start}{BLOCK}{DELTA}")))
            .unwrap();
        assert_eq!(
            relay.usage(),
            Some(Metered::from_anthropic(377, 2048, 120, 1))
        );
        relay.chunk(Bytes::from(END)).unwrap();
        assert_eq!(
            relay.usage(),
            Some(Metered::from_anthropic(377, 2048, 120, 2))
        );
        let message = br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":11,"cache_creation_input_tokens":0,"cache_read_input_tokens":300,"output_tokens":6}}"#;
        let mut t = translator(false);
        t.chunk(Bytes::from_static(message)).unwrap();
        assert_eq!(&t.end().unwrap()[..], message);
        assert_eq!(t.usage(), Some(Metered::from_anthropic(11, 300, 0, 6)));
        // An odd usage does not make the message unreadable.
        let odd = br#"{"id":"msg_1","type":"message","content":[],"usage":"n/a"}"#;
        let mut t = translator(false);
        t.chunk(Bytes::from_static(odd)).unwrap();
        assert_eq!(&t.end().unwrap()[..], odd);
        assert_eq!(t.usage(), None);
    }
}
