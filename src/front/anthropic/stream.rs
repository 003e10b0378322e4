//! An OpenAI `chat.completion.chunk` stream → the Anthropic event stream the client asked for.
//!
//! The provider's own translator runs first (it turns its upstream into OpenAI chunks and
//! holds everything until the first token); this one reads what it writes, event by event,
//! and writes Anthropic events. Nothing is written before a chunk has something to say (text,
//! reasoning, a refusal, a tool call, a finish reason, usage, or the end), so `message_start`
//! goes out with the first content, and a failure before it still fails the attempt over.
//!
//! Anthropic blocks never overlap and their indexes count every block, so a change of kind
//! (thinking, text, one tool call, the next tool call) closes the open block and opens the
//! next. Each thinking block ends with a signature the proxy mints ([`super::signature`]),
//! hashed as the text goes by, so nothing of the stream is held beyond the event being read.
//!
//! Each chunk is read for the few fields the translation needs ([`super::response::parse`]),
//! and each event written straight into the output, with the bytes `serde_json` would write:
//! this runs once per streamed token, and the Worker is billed per CPU millisecond.

use bytes::Bytes;

use crate::core::error::ErrorObject;
use crate::core::stream::{InOrder, Translate};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;
use crate::sse::{SseEvent, SseParser};

use super::response::{
    parse, push_message_head, push_message_tail, push_str, push_u64, push_usage, reasoning,
    stop_reason, Any, Counts,
};
use super::signature::Minter;
use super::tool_id;

/// Longest incomplete event held; a real chunk is a few kilobytes.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// Context of one translated stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamContext {
    /// The proxy's estimate of the input tokens ([`super::estimate`]), shown in
    /// `message_start` (the upstream reports its count only at the end).
    pub input_tokens: u64,
}

/// The translator of a streamed answer: `inner` (the provider's OpenAI translator), then
/// OpenAI chunks to Anthropic events.
pub fn stream_translator(inner: Box<dyn Translate>, context: StreamContext) -> Box<dyn Translate> {
    Box::new(StreamTranslator {
        inner,
        parser: SseParser::new(),
        estimate: context.input_tokens,
        id: String::new(),
        model: String::new(),
        started: false,
        done: false,
        open: Open::None,
        blocks: 0,
        thinking: Minter::new(),
        tools: Vec::new(),
        finish: None,
        usage: None,
        out: Vec::new(),
        order: InOrder::default(),
    })
}

/// The block being written.
#[derive(Debug, Clone, PartialEq)]
enum Open {
    None,
    Thinking,
    Text,
    /// A tool call, by its OpenAI `tool_calls[].index` and id.
    Tool(u64, Option<String>),
}

struct StreamTranslator {
    inner: Box<dyn Translate>,
    parser: SseParser,
    estimate: u64,
    /// The response id and model, from the chunks.
    id: String,
    model: String,
    /// `message_start` is written.
    started: bool,
    /// `data: [DONE]` was read and `message_stop` written: the rest is ignored.
    done: bool,
    open: Open,
    /// Blocks opened so far: the next block's index.
    blocks: u64,
    /// The open thinking block's signature, as its text goes by.
    thinking: Minter,
    /// The tool calls opened so far, by OpenAI index and id.
    tools: Vec<(u64, Option<String>)>,
    finish: Option<String>,
    usage: Option<Counts>,
    out: Vec<u8>,
    /// A failure after output already the client's goes out after that output.
    order: InOrder,
}

impl StreamTranslator {
    /// Begins an event: `event: <kind>`, and its data as far as `{"type":"<kind>"` (every
    /// Anthropic event names its type first); the caller writes the rest, then
    /// [`Self::end_event`].
    fn begin_event(&mut self, kind: &str) {
        self.out.extend_from_slice(b"event: ");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(b"\ndata: {\"type\":\"");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.push(b'"');
    }

    /// Begins a block event: its type, then `"index"`.
    fn begin_block_event(&mut self, kind: &str, index: u64) {
        self.begin_event(kind);
        self.out.extend_from_slice(b",\"index\":");
        push_u64(&mut self.out, index);
    }

    fn end_event(&mut self) {
        self.out.extend_from_slice(b"}\n\n");
    }

    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        self.begin_event("message_start");
        self.out.extend_from_slice(b",\"message\":");
        push_message_head(&mut self.out, &self.id, &self.model);
        push_message_tail(&mut self.out, None, (self.estimate, 0, 0));
        self.end_event();
    }

    fn close(&mut self) {
        let index = self.blocks.saturating_sub(1);
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Thinking => {
                let signature = self.thinking.signature();
                self.delta(index, "signature_delta", "signature", &signature);
            }
            Open::Text | Open::Tool(..) => {}
        }
        self.begin_block_event("content_block_stop", index);
        self.end_event();
    }

    /// Opens `kind` unless it is the open block, `block` being its `content_block`; returns
    /// the block's index.
    fn open(&mut self, kind: Open, block: &[u8]) -> u64 {
        if self.open != kind {
            self.start();
            self.close();
            if kind == Open::Thinking {
                self.thinking = Minter::new();
            }
            let index = self.blocks;
            self.blocks += 1;
            self.open = kind;
            self.begin_block_event("content_block_start", index);
            self.out.extend_from_slice(b",\"content_block\":");
            self.out.extend_from_slice(block);
            self.end_event();
        }
        self.blocks - 1
    }

    /// A `content_block_delta` whose delta is `{"type":"<kind>","<field>":<text>}`.
    fn delta(&mut self, index: u64, kind: &str, field: &str, text: &str) {
        self.begin_block_event("content_block_delta", index);
        self.out.extend_from_slice(b",\"delta\":{\"type\":\"");
        self.out.extend_from_slice(kind.as_bytes());
        self.out.extend_from_slice(b"\",\"");
        self.out.extend_from_slice(field.as_bytes());
        self.out.extend_from_slice(b"\":");
        push_str(&mut self.out, text);
        self.out.push(b'}');
        self.end_event();
    }

    fn thinking(&mut self, text: &str) {
        let index = self.open(
            Open::Thinking,
            br#"{"type":"thinking","thinking":"","signature":""}"#,
        );
        self.thinking.update(text);
        self.delta(index, "thinking_delta", "thinking", text);
    }

    fn text(&mut self, text: &str) {
        let index = self.open(Open::Text, br#"{"type":"text","text":""}"#);
        self.delta(index, "text_delta", "text", text);
    }

    /// A tool call fragment. A new OpenAI index, or a new id at the open one (some
    /// OpenAI-compatible servers number every call 0), is a new call.
    fn tool(&mut self, call: &Any<'_>) -> Result<(), UpstreamError> {
        let call = call.object();
        let index = call.and_then(|c| c.index.u64()).unwrap_or(0);
        let id = call.and_then(|c| c.id.str()).filter(|s| !s.is_empty());
        let function = call.and_then(|c| c.function.object());
        let arguments = function.and_then(|f| f.arguments.str()).unwrap_or_default();
        let continues = match &self.open {
            Open::Tool(open, open_id) => {
                *open == index && (id.is_none() || id == open_id.as_deref())
            }
            _ => false,
        };
        if !continues {
            if id.is_none() && self.tools.iter().any(|(seen, _)| *seen == index) {
                // Anthropic blocks cannot be reopened, and dropping the piece would corrupt
                // the call's arguments.
                return Err(invalid_event(
                    "tool call fragments arrived interleaved with other content",
                ));
            }
            let id = id.map(str::to_owned);
            self.tools.push((index, id.clone()));
            let mut block = br#"{"type":"tool_use","id":"#.to_vec();
            match &id {
                Some(id) => push_str(&mut block, &tool_id::encode(id)),
                None => {
                    push_str(&mut block, &tool_id::made(&self.id, self.tools.len()));
                }
            }
            block.extend_from_slice(br#","name":"#);
            let name = function.and_then(|f| f.name.str()).unwrap_or_default();
            push_str(&mut block, name);
            block.extend_from_slice(br#","input":{}}"#);
            self.open(Open::Tool(index, id), &block);
        }
        if !arguments.is_empty() {
            let block = self.blocks - 1;
            self.delta(block, "input_json_delta", "partial_json", arguments);
        }
        Ok(())
    }

    /// The end of the answer: the open block closed, stop reason and usage, `message_stop`.
    fn stop(&mut self) {
        self.start();
        self.close();
        let usage = self.usage.unwrap_or((self.estimate, 0, 0));
        let reason = stop_reason(self.finish.as_deref(), !self.tools.is_empty());
        self.begin_event("message_delta");
        self.out.extend_from_slice(b",\"delta\":{\"stop_reason\":");
        push_str(&mut self.out, reason);
        self.out
            .extend_from_slice(b",\"stop_sequence\":null},\"usage\":");
        push_usage(&mut self.out, usage);
        self.end_event();
        self.begin_event("message_stop");
        self.end_event();
        self.done = true;
    }

    fn event(&mut self, event: &SseEvent) -> Result<(), UpstreamError> {
        if self.done {
            return Ok(());
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.stop();
            return Ok(());
        }
        let chunk = parse(data).ok();
        let Some(chunk) = chunk.as_ref().and_then(Any::object) else {
            return Err(invalid_event(
                "the stream sent an event that is not a JSON object",
            ));
        };
        if chunk.error.object().is_some() {
            return Err(in_band_error(data));
        }
        for (field, kept) in [(&chunk.id, &mut self.id), (&chunk.model, &mut self.model)] {
            match field.str() {
                Some(value) if kept.is_empty() => value.clone_into(kept),
                _ => {}
            }
        }
        if let Some(usage) = chunk.usage.object() {
            let cached = usage
                .prompt_tokens_details
                .object()
                .and_then(|d| d.cached_tokens.u64())
                .unwrap_or(0);
            let input = usage
                .prompt_tokens
                .u64()
                .unwrap_or(0)
                .saturating_sub(cached);
            self.usage = Some((input, cached, usage.completion_tokens.u64().unwrap_or(0)));
            self.start();
        }
        let choice = chunk
            .choices
            .array()
            .iter()
            .find(|c| c.object().and_then(|c| c.index.u64()).unwrap_or(0) == 0);
        // A choice that is not an object has nothing to say.
        let Some(choice) = choice.and_then(Any::object) else {
            return Ok(());
        };
        if let Some(delta) = choice.delta.object() {
            if let Some(text) = reasoning(delta) {
                self.thinking(text);
            }
            for field in [&delta.content, &delta.refusal] {
                if let Some(text) = field.str().filter(|t| !t.is_empty()) {
                    self.text(text);
                }
            }
            for call in delta.tool_calls.array() {
                self.tool(call)?;
            }
        }
        if let Some(finish) = choice.finish_reason.str() {
            self.finish = Some(finish.to_owned());
            self.start();
        }
        Ok(())
    }

    /// The client's bytes for what `inner` wrote, and the failure that follows them.
    fn read(
        &mut self,
        inner_out: &[u8],
        last: bool,
        inner_failure: Option<UpstreamError>,
    ) -> Result<Bytes, UpstreamError> {
        let mut events = self.parser.feed(inner_out);
        if last {
            events.extend(self.parser.finish());
        }
        let mut failure = None;
        for event in &events {
            if let Err(e) = self.event(event) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none() && self.parser.buffered() > MAX_PENDING {
            failure = Some(invalid_event("a stream event exceeded the size limit"));
        }
        if failure.is_none() && inner_failure.is_none() && last && !self.done {
            failure = Some(UpstreamError::truncated(
                "the upstream stream ended before `data: [DONE]`",
            ));
        }
        let out = Bytes::from(std::mem::take(&mut self.out));
        self.order.result(out, failure.or(inner_failure))
    }
}

impl Translate for StreamTranslator {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let out = self.inner.chunk(upstream)?;
        let failure = self.inner.failure();
        self.read(&out, false, failure)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let out = self.inner.end()?;
        let failure = self.inner.failure();
        self.read(&out, true, failure)
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        self.order.take()
    }

    /// The upstream's own counts, as the inner translator read them (not the translated
    /// `message_delta` usage).
    fn usage(&self) -> Option<Metered> {
        self.inner.usage()
    }
}

fn invalid_event(why: &str) -> UpstreamError {
    UpstreamError::in_band(
        502,
        ErrorObject::new(
            format!("unreadable upstream stream: {why}"),
            "upstream_error",
            None,
            Some("invalid_upstream_event"),
        ),
    )
}

/// An OpenAI in-stream `{"error": {...}}` (a pass-through relays it as the upstream sent it).
fn in_band_error(data: &str) -> UpstreamError {
    let error = ErrorObject::from_upstream(502, data.as_bytes());
    let rate_limited = [error.code.as_deref(), Some(error.kind.as_str())]
        .into_iter()
        .flatten()
        .any(|s| s.contains("rate_limit") || s == "429");
    UpstreamError::in_band(if rate_limited { 429 } else { 502 }, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::anthropic::signature;
    use serde_json::{json, Value};

    /// The inner translator of the tests: writes each upstream chunk unchanged (so the
    /// upstream chunks are the OpenAI SSE it "produced"); call number `fail_on` (from 1) fails
    /// after its output ([`Translate::failure`]).
    struct Inner {
        calls: usize,
        fail_on: Option<usize>,
        failure: Option<UpstreamError>,
        end_error: bool,
    }

    impl Translate for Inner {
        fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
            self.calls += 1;
            if self.fail_on == Some(self.calls) {
                self.failure = Some(UpstreamError::truncated("boom"));
            }
            Ok(upstream)
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            if self.end_error {
                return Err(UpstreamError::truncated("ended badly"));
            }
            Ok(Bytes::new())
        }
        fn failure(&mut self) -> Option<UpstreamError> {
            self.failure.take()
        }
    }

    fn translator() -> Box<dyn Translate> {
        translator_with(None, false)
    }

    fn translator_with(fail_on: Option<usize>, end_error: bool) -> Box<dyn Translate> {
        let inner = Inner {
            calls: 0,
            fail_on,
            failure: None,
            end_error,
        };
        stream_translator(Box::new(inner), StreamContext { input_tokens: 42 })
    }

    /// What each call returns, for the upstream chunks given, then the end.
    fn calls(t: &mut dyn Translate, chunks: &[&str]) -> Vec<Result<String, String>> {
        let text = |r: Result<Bytes, UpstreamError>| {
            r.map(|b| String::from_utf8(b.to_vec()).unwrap())
                .map_err(|e| e.error.message)
        };
        let mut out = Vec::new();
        for chunk in chunks {
            out.push(text(t.chunk(Bytes::from(chunk.to_string()))));
            if let Some(failure) = t.failure() {
                out.push(Err(failure.error.message));
            }
        }
        out.push(text(t.end()));
        out
    }

    /// The whole output of a stream that must succeed.
    fn run(chunks: &[&str]) -> String {
        calls(translator().as_mut(), chunks)
            .into_iter()
            .map(|r| r.unwrap())
            .collect()
    }

    fn chunk(id: &str, model: &str, choices: Value, usage: Value) -> String {
        let chunk = json!({"id": id, "object": "chat.completion.chunk", "created": 1694268190,
                           "model": model, "choices": choices, "usage": usage});
        format!("data: {chunk}\n\n")
    }

    fn delta(delta: Value, finish: Value) -> String {
        chunk(
            "chatcmpl-123",
            "gpt-4o-mini",
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
            Value::Null,
        )
    }

    const DONE: &str = "data: [DONE]\n\n";

    /// The Anthropic event `data` as `event: <type>` SSE.
    fn events(data: &[String]) -> String {
        data.iter()
            .map(|d| {
                let kind: Value = serde_json::from_str(d).unwrap();
                format!("event: {}\ndata: {d}\n\n", kind["type"].as_str().unwrap())
            })
            .collect()
    }

    fn message_start(id: &str, model: &str) -> String {
        format!(
            r#"{{"type":"message_start","message":{{"id":"{id}","type":"message","role":"assistant","model":"{model}","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":42,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}}}}"#
        )
    }

    fn block_start(index: u64, block: &str) -> String {
        format!(r#"{{"type":"content_block_start","index":{index},"content_block":{block}}}"#)
    }

    fn block_delta(index: u64, delta: &str) -> String {
        format!(r#"{{"type":"content_block_delta","index":{index},"delta":{delta}}}"#)
    }

    fn block_stop(index: u64) -> String {
        format!(r#"{{"type":"content_block_stop","index":{index}}}"#)
    }

    fn message_delta(reason: &str, input: u64, cached: u64, output: u64) -> String {
        format!(
            r#"{{"type":"message_delta","delta":{{"stop_reason":"{reason}","stop_sequence":null}},"usage":{{"input_tokens":{input},"cache_creation_input_tokens":0,"cache_read_input_tokens":{cached},"output_tokens":{output}}}}}"#
        )
    }

    const MESSAGE_STOP: &str = r#"{"type":"message_stop"}"#;

    /// The literal OpenAI text stream of the wire notes (§3.1).
    const OPENAI_TEXT: &str = concat!(
        "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn text_events() -> String {
        events(&[
            message_start("msg_chatcmpl-123", "gpt-4o-mini"),
            block_start(0, r#"{"type":"text","text":""}"#),
            block_delta(0, r#"{"type":"text_delta","text":"Hello"}"#),
            block_delta(0, r#"{"type":"text_delta","text":"!"}"#),
            block_stop(0),
            message_delta("end_turn", 9, 0, 2),
            MESSAGE_STOP.to_owned(),
        ])
    }

    #[test]
    fn text_only_exactly() {
        assert_eq!(run(&[OPENAI_TEXT]), text_events());
    }

    #[test]
    fn nothing_is_written_before_content_and_split_events_change_nothing() {
        let events: Vec<&str> = OPENAI_TEXT.split_inclusive("\n\n").collect();
        let out = calls(translator().as_mut(), &events);
        // The role chunk says nothing: no byte, so the attempt is not committed yet.
        assert_eq!(out[0], Ok(String::new()));
        assert!(out[1]
            .as_ref()
            .unwrap()
            .starts_with("event: message_start\n"));
        let bytes = OPENAI_TEXT.as_bytes();
        for split in (0..=bytes.len()).step_by(7) {
            let (a, b) = OPENAI_TEXT.split_at(split);
            assert_eq!(run(&[a, b]), text_events(), "split at {split}");
        }
    }

    #[test]
    fn thinking_then_text_with_a_minted_signature() {
        let out = run(&[
            &delta(json!({"role": "assistant", "content": ""}), Value::Null),
            &delta(json!({"reasoning_content": "I need to find "}), Value::Null),
            &delta(json!({"reasoning_content": "the GCD..."}), Value::Null),
            &delta(json!({"content": "The GCD is 21."}), Value::Null),
            &delta(json!({}), json!("stop")),
            &chunk(
                "chatcmpl-123",
                "gpt-4o-mini",
                json!([]),
                json!({"prompt_tokens": 80, "completion_tokens": 120, "total_tokens": 200,
                       "prompt_tokens_details": {"cached_tokens": 30}}),
            ),
            DONE,
        ]);
        let signature = signature::mint("I need to find the GCD...");
        assert_eq!(
            out,
            events(&[
                message_start("msg_chatcmpl-123", "gpt-4o-mini"),
                block_start(0, r#"{"type":"thinking","thinking":"","signature":""}"#),
                block_delta(
                    0,
                    r#"{"type":"thinking_delta","thinking":"I need to find "}"#
                ),
                block_delta(0, r#"{"type":"thinking_delta","thinking":"the GCD..."}"#),
                block_delta(
                    0,
                    &format!(r#"{{"type":"signature_delta","signature":"{signature}"}}"#)
                ),
                block_stop(0),
                block_start(1, r#"{"type":"text","text":""}"#),
                block_delta(1, r#"{"type":"text_delta","text":"The GCD is 21."}"#),
                block_stop(1),
                message_delta("end_turn", 50, 30, 120),
                MESSAGE_STOP.to_owned(),
            ])
        );
    }

    #[test]
    fn parallel_tool_calls_each_get_a_block() {
        let call = |index: u64, id: Option<&str>, name: Option<&str>, args: &str| {
            let mut call = json!({"index": index, "function": {"arguments": args}});
            if let Some(id) = id {
                call["id"] = json!(id);
                call["type"] = json!("function");
            }
            if let Some(name) = name {
                call["function"]["name"] = json!(name);
            }
            delta(json!({"tool_calls": [call]}), Value::Null)
        };
        let out = run(&[
            &delta(
                json!({"role": "assistant", "content": "Checking."}),
                Value::Null,
            ),
            &call(0, Some("call_A"), Some("get_weather"), ""),
            &call(0, None, None, "{\"city\":"),
            &call(0, None, None, "\"Paris\"}"),
            &call(1, Some("call_B"), Some("get_time"), "{}"),
            // An Ollama-style server: index 0 again, but a new id is a new call; this one does
            // not fit Anthropic's id pattern (Workers AI's suffix), so it leaves escaped.
            &call(0, Some("call_C::cf-wai-tool-call::0a"), Some("now"), ""),
            &delta(json!({}), json!("tool_calls")),
            DONE,
        ]);
        assert_eq!(
            out,
            events(&[
                message_start("msg_chatcmpl-123", "gpt-4o-mini"),
                block_start(0, r#"{"type":"text","text":""}"#),
                block_delta(0, r#"{"type":"text_delta","text":"Checking."}"#),
                block_stop(0),
                block_start(
                    1,
                    r#"{"type":"tool_use","id":"call_A","name":"get_weather","input":{}}"#
                ),
                block_delta(
                    1,
                    r#"{"type":"input_json_delta","partial_json":"{\"city\":"}"#
                ),
                block_delta(
                    1,
                    r#"{"type":"input_json_delta","partial_json":"\"Paris\"}"}"#
                ),
                block_stop(1),
                block_start(
                    2,
                    r#"{"type":"tool_use","id":"call_B","name":"get_time","input":{}}"#
                ),
                block_delta(2, r#"{"type":"input_json_delta","partial_json":"{}"}"#),
                block_stop(2),
                block_start(
                    3,
                    r#"{"type":"tool_use","id":"aiwpx_call_C-3a-3acf-2dwai-2dtool-2dcall-3a-3a0a","name":"now","input":{}}"#
                ),
                block_stop(3),
                // No usage chunk came: the estimate, and no output count.
                message_delta("tool_use", 42, 0, 0),
                MESSAGE_STOP.to_owned(),
            ])
        );
    }

    #[test]
    fn fields_of_other_types_read_as_absent_and_a_repeated_key_as_its_last() {
        let out = run(&[concat!(
            // Not objects: an `error`, a choice's content parts; not numbers: its `index`.
            "data: {\"id\":\"chatcmpl-9\",\"model\":\"m\",\"error\":\"not an object\",\"choices\":[{\"index\":\"x\",\"delta\":{\"content\":[{\"text\":\"parts are not read\"}],\"reasoning\":\"T\\u00e9\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}},{\"delta\":{\"content\":\"a \\\"quote\\\"\",\"content\":\"last\"}}]}\n\n",
            // Arguments as an object are not streamed; the second call has no id.
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"call_1\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}},{\"index\":2,\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":7}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":-1,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n",
            "data: [DONE]\n\n",
        )]);
        let signature = signature::mint("Té");
        assert_eq!(
            out,
            events(&[
                message_start("msg_chatcmpl-9", "m"),
                block_start(0, r#"{"type":"thinking","thinking":"","signature":""}"#),
                block_delta(0, r#"{"type":"thinking_delta","thinking":"Té"}"#),
                block_delta(
                    0,
                    &format!(r#"{{"type":"signature_delta","signature":"{signature}"}}"#)
                ),
                block_stop(0),
                block_start(1, r#"{"type":"text","text":""}"#),
                block_delta(1, r#"{"type":"text_delta","text":"last"}"#),
                block_stop(1),
                block_start(
                    2,
                    r#"{"type":"tool_use","id":"call_1","name":"f","input":{}}"#
                ),
                block_stop(2),
                block_start(
                    3,
                    r#"{"type":"tool_use","id":"toolu_msg_chatcmpl-9_2","name":"","input":{}}"#
                ),
                block_delta(3, r#"{"type":"input_json_delta","partial_json":"{}"}"#),
                block_stop(3),
                message_delta("tool_use", 6, 4, 0),
                MESSAGE_STOP.to_owned(),
            ])
        );
    }

    #[test]
    fn a_finish_only_stream_has_no_blocks() {
        let out = run(&[
            &delta(json!({"role": "assistant", "content": ""}), Value::Null),
            &delta(json!({}), json!("length")),
            DONE,
        ]);
        assert_eq!(
            out,
            events(&[
                message_start("msg_chatcmpl-123", "gpt-4o-mini"),
                message_delta("max_tokens", 42, 0, 0),
                MESSAGE_STOP.to_owned(),
            ])
        );
    }

    #[test]
    fn an_inner_error_after_output_follows_that_output() {
        let first = delta(json!({"content": "Hi"}), Value::Null);
        let second = delta(json!({"content": " there"}), Value::Null);
        let out = calls(translator_with(Some(2), false).as_mut(), &[&first, &second]);
        let head = events(&[
            message_start("msg_chatcmpl-123", "gpt-4o-mini"),
            block_start(0, r#"{"type":"text","text":""}"#),
            block_delta(0, r#"{"type":"text_delta","text":"Hi"}"#),
        ]);
        assert_eq!(out[0], Ok(head));
        // The failing call's output goes out, then its failure.
        let piece = events(&[block_delta(0, r#"{"type":"text_delta","text":" there"}"#)]);
        assert_eq!(out[1], Ok(piece));
        assert_eq!(out[2], Err("boom".to_owned()));
        // Before any output reached the client, the failure is the call's own and its output
        // is dropped (the attempt fails over).
        for chunk in [&first, &delta(json!({"role": "assistant"}), Value::Null)] {
            let out = calls(translator_with(Some(1), false).as_mut(), &[chunk]);
            assert_eq!(out[0], Err("boom".to_owned()));
        }
        // An inner error from `end` passes unchanged.
        let out = calls(translator_with(None, true).as_mut(), &[&first]);
        assert_eq!(out.last(), Some(&Err("ended badly".to_owned())));
    }

    #[test]
    fn an_in_band_error_event_a_cut_stream_and_garbage_fail() {
        let first = delta(json!({"content": "Hi"}), Value::Null);
        let error =
            "data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\n\n";
        let out = calls(translator().as_mut(), &[&first, error]);
        assert!(out[0].as_ref().unwrap().contains("text_delta"));
        assert_eq!(out[1], Err("slow down".to_owned()));
        let mut t = translator();
        let e = t.chunk(Bytes::from(error)).unwrap_err();
        assert_eq!((e.status, e.in_band), (429, true));
        // No [DONE]: the stream was cut.
        let out = calls(translator().as_mut(), &[&first]);
        assert_eq!(
            out.last(),
            Some(&Err(
                "the upstream stream ended before `data: [DONE]`".to_owned()
            ))
        );
        let e = translator()
            .chunk(Bytes::from_static(b"data: nope\n\n"))
            .unwrap_err();
        assert_eq!(e.error.code.as_deref(), Some("invalid_upstream_event"));
    }

    #[test]
    fn a_refusal_is_text_and_content_filter_is_a_refusal() {
        let out = run(&[
            &delta(json!({"refusal": "I can't."}), Value::Null),
            &delta(json!({}), json!("content_filter")),
            DONE,
        ]);
        assert_eq!(
            out,
            events(&[
                message_start("msg_chatcmpl-123", "gpt-4o-mini"),
                block_start(0, r#"{"type":"text","text":""}"#),
                block_delta(0, r#"{"type":"text_delta","text":"I can't."}"#),
                block_stop(0),
                message_delta("refusal", 42, 0, 0),
                MESSAGE_STOP.to_owned(),
            ])
        );
        assert!(!translator().relays());
    }

    #[test]
    fn usage_is_the_inner_translators_the_upstreams_native_counts() {
        use crate::providers::openai::PassThrough;
        let stream = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\ndata: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\ndata: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\ndata: [DONE]\n\n";
        let mut t = stream_translator(
            Box::new(PassThrough::new(true)),
            StreamContext { input_tokens: 42 },
        );
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(50) {
            out.extend_from_slice(&t.chunk(Bytes::copy_from_slice(piece)).unwrap());
        }
        out.extend_from_slice(&t.end().unwrap());
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\"cache_read_input_tokens\":4"), "{out}");
        assert_eq!(t.usage(), Some(Metered::from_openai(9, 4, 2, 0)));
        // Nothing reported, nothing metered.
        let mut t = translator();
        let _ = calls(&mut *t, &["data: [DONE]\n\n"]);
        assert_eq!(t.usage(), None);
    }
}
