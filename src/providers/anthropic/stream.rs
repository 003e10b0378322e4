//! Anthropic SSE events → OpenAI `chat.completion.chunk` events.
//!
//! Nothing is written before the first content (the [`ChunkWriter`] puts the role chunk in front
//! of it): `message_start`, `ping` and an empty text or thinking `content_block_start` write
//! nothing, so an `error` event that arrives after them but before any content still fails the
//! attempt over. After that, every completed upstream event is translated and forwarded with the
//! chunk it arrived in, and an `error` event (also a last one without its blank line) follows
//! the output before it, then the core's error event and `[DONE]`.

use std::collections::HashMap;

use bytes::Bytes;

use crate::core::completion::{ChunkWriter, ThinkingBlock};
use crate::core::stream::{InOrder, Translate};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;
use crate::sse::{SseEvent, SseParser};

use super::wire::{Block, Delta, Event, Usage};
use super::{finish_reason, in_band_error, JSON_TOOL};

/// Longest incomplete event held; a real event is a few kilobytes.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// What an Anthropic content block turns into.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    /// Text or thinking: deltas carry their own kind.
    Plain,
    /// A tool call with its OpenAI `tool_calls[].index`.
    Tool(u32),
    /// The JSON-mode tool: its input is the answer's content.
    JsonAnswer,
}

/// The streaming translator.
pub struct StreamTranslator {
    parser: SseParser,
    out: ChunkWriter,
    json_mode: bool,
    /// `message_start` was seen.
    started: bool,
    /// The finish chunk has been sent.
    finish_sent: bool,
    /// `message_stop` was seen: everything after it is ignored.
    stopped: bool,
    blocks: HashMap<u64, BlockKind>,
    tools: u32,
    /// The open thinking block's text, sent again whole with its signature.
    thinking: String,
    json_answer: bool,
    stop_reason: Option<String>,
    usage: Usage,
    /// A failure after output that is already the client's goes out after that output.
    order: InOrder,
}

impl StreamTranslator {
    /// A translator stamping `created` (Unix seconds) on every chunk.
    pub fn new(created: u64, include_usage: bool, json_mode: bool) -> Self {
        Self {
            parser: SseParser::new(),
            out: ChunkWriter::new(created, include_usage),
            json_mode,
            started: false,
            finish_sent: false,
            stopped: false,
            blocks: HashMap::new(),
            tools: 0,
            thinking: String::new(),
            json_answer: false,
            stop_reason: None,
            usage: Usage::default(),
            order: InOrder::default(),
        }
    }

    fn finish(&mut self) {
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        let reason = finish_reason(
            self.stop_reason.as_deref(),
            self.tools > 0,
            self.json_answer,
        );
        self.out.finish(0, reason);
    }

    fn event(&mut self, sse: &SseEvent) -> Result<(), UpstreamError> {
        if self.stopped {
            return Ok(());
        }
        let event = match Event::parse(&sse.data) {
            Ok(event) => event,
            // A `ping` with odd data, or a new event type with a new shape: nothing to say.
            Err(_) if sse.event != "error" && !is_known(&sse.event) => return Ok(()),
            Err(e) => {
                return Err(UpstreamError::truncated(format!(
                    "unreadable Anthropic `{}` event: {e}",
                    sse.event
                )))
            }
        };
        match event {
            Event::Error { error } => return Err(in_band_error(&error)),
            Event::MessageStart { message } => {
                self.started = true;
                self.out.id = message.id;
                self.out.model = message.model;
                self.usage.merge(&message.usage);
            }
            // Everything else needs the envelope: its id and model are on every chunk.
            _ if !self.started => {}
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::ToolUse { name, .. } if self.json_mode && name == JSON_TOOL => {
                    self.json_answer = true;
                    self.blocks.insert(index, BlockKind::JsonAnswer);
                }
                Block::ToolUse { id, name, .. } => {
                    let tool = self.tools;
                    self.tools += 1;
                    self.blocks.insert(index, BlockKind::Tool(tool));
                    self.out.tool_call(0, tool, Some(&id), Some(&name), "");
                }
                Block::Text { text } => {
                    self.blocks.insert(index, BlockKind::Plain);
                    self.out.content(0, &text);
                }
                Block::Thinking { thinking, .. } => {
                    self.blocks.insert(index, BlockKind::Plain);
                    self.out.reasoning(0, &thinking);
                    self.thinking = thinking;
                }
                Block::RedactedThinking { data } => {
                    let block = ThinkingBlock::RedactedThinking { data };
                    self.out.thinking_block(0, &block);
                }
                Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } => self.out.content(0, &text),
                Delta::ThinkingDelta { thinking } => {
                    self.out.reasoning(0, &thinking);
                    self.thinking.push_str(&thinking);
                }
                Delta::SignatureDelta { signature } => {
                    let block = ThinkingBlock::Thinking {
                        thinking: std::mem::take(&mut self.thinking),
                        signature,
                    };
                    self.out.thinking_block(0, &block);
                }
                Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    match self.blocks.get(&index).copied() {
                        Some(BlockKind::Tool(tool)) => {
                            self.out.tool_call(0, tool, None, None, &partial_json)
                        }
                        Some(BlockKind::JsonAnswer) => self.out.content(0, &partial_json),
                        _ => {}
                    }
                }
                _ => {}
            },
            Event::MessageDelta { delta, usage } => {
                self.usage.merge(&usage);
                if let Some(reason) = delta.stop_reason {
                    self.stop_reason = Some(reason);
                    self.finish();
                }
            }
            Event::MessageStop => {
                self.stopped = true;
                self.finish();
                self.out.usage(self.usage.to_openai());
                self.out.done();
            }
            Event::Ignored => {}
        }
        Ok(())
    }

    fn take(&mut self) -> Bytes {
        self.out.take()
    }
}

/// Event names whose data must parse; anything else may be skipped when it does not.
fn is_known(event: &str) -> bool {
    matches!(
        event,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "message_delta"
            | "message_stop"
    )
}

impl Translate for StreamTranslator {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let mut failure = None;
        for event in self.parser.feed(&upstream) {
            if let Err(e) = self.event(&event) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none() && self.parser.buffered() > MAX_PENDING {
            failure = Some(UpstreamError::truncated(
                "an Anthropic stream event exceeded the size limit",
            ));
        }
        let out = self.take();
        self.order.result(out, failure)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let mut failure = None;
        if let Some(event) = self.parser.finish() {
            failure = self.event(&event).err();
        }
        if failure.is_none() && !self.stopped {
            failure = Some(UpstreamError::truncated(
                "the Anthropic stream ended before `message_stop`",
            ));
        }
        let out = self.take();
        self.order.result(out, failure)
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        self.order.take()
    }

    /// `message_start`'s counts, updated by each `message_delta`'s (cumulative).
    fn usage(&self) -> Option<Metered> {
        self.usage.metered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::EarlyFailure;
    use crate::providers::test_support::{self, sse_payloads};
    use serde_json::{json, Value};

    const TEXT: &str = include_str!("../../../tests/fixtures/anthropic/text.sse");
    const TOOL_USE: &str = include_str!("../../../tests/fixtures/anthropic/tool_use.sse");
    const PARALLEL: &str = include_str!("../../../tests/fixtures/anthropic/parallel_tools.sse");
    const THINKING: &str = include_str!("../../../tests/fixtures/anthropic/thinking.sse");
    const REFUSAL: &str = include_str!("../../../tests/fixtures/anthropic/refusal.sse");
    const JSON_TOOL_SSE: &str = include_str!("../../../tests/fixtures/anthropic/json_tool.sse");
    const MID_ERROR: &str = include_str!("../../../tests/fixtures/anthropic/error_midstream.sse");
    const FIRST_ERROR: &str = include_str!("../../../tests/fixtures/anthropic/error_first.sse");

    /// Every event of a stream fed whole, as the client would see it (`Err` if it failed).
    fn run(stream: &str, include_usage: bool, json_mode: bool) -> (String, Option<UpstreamError>) {
        let mut t = StreamTranslator::new(1_700_000_000, include_usage, json_mode);
        let mut out = String::new();
        match t.chunk(Bytes::from(stream.to_owned())).and_then(|a| {
            out.push_str(std::str::from_utf8(&a).unwrap());
            t.end()
        }) {
            Ok(b) => {
                out.push_str(std::str::from_utf8(&b).unwrap());
                (out, None)
            }
            Err(e) => (out, Some(e)),
        }
    }

    #[test]
    fn text_stream_exactly_with_usage() {
        let (out, err) = run(TEXT, true, false);
        assert!(err.is_none());
        let head = r#"{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","object":"chat.completion.chunk","created":1700000000,"model":"claude-3-opus-latest","#;
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#""choices":[],"usage":{"prompt_tokens":11,"completion_tokens":6,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        ];
        let mut want = String::new();
        for e in expected {
            want.push_str(&format!("data: {head}{e}\n\n"));
        }
        want.push_str("data: [DONE]\n\n");
        assert_eq!(out, want);
    }

    #[test]
    fn without_include_usage_there_is_no_usage_field_and_no_usage_chunk() {
        let (out, _) = run(TEXT, false, false);
        let events = sse_payloads(&out);
        assert_eq!(events.len(), 6);
        for e in &events[..5] {
            assert!(e.get("usage").is_none());
            assert_eq!(e["choices"].as_array().unwrap().len(), 1);
        }
        assert_eq!(events[5], "[DONE]");
    }

    #[test]
    fn split_at_every_byte_gives_the_same_output() {
        let (whole, _) = run(TOOL_USE, true, false);
        let bytes = TOOL_USE.as_bytes();
        for split in 0..=bytes.len() {
            let mut t = StreamTranslator::new(1_700_000_000, true, false);
            let mut out = Vec::new();
            out.extend_from_slice(&t.chunk(Bytes::copy_from_slice(&bytes[..split])).unwrap());
            out.extend_from_slice(&t.chunk(Bytes::copy_from_slice(&bytes[split..])).unwrap());
            out.extend_from_slice(&t.end().unwrap());
            assert_eq!(String::from_utf8(out).unwrap(), whole, "split at {split}");
        }
    }

    #[test]
    fn tool_use_gets_a_response_wide_tool_index_and_argument_fragments() {
        let (out, _) = run(TOOL_USE, false, false);
        let events = sse_payloads(&out);
        let deltas: Vec<&Value> = events[..events.len() - 1]
            .iter()
            .map(|e| &e["choices"][0]["delta"])
            .collect();
        assert_eq!(deltas[1], &json!({"content": "I"}));
        assert_eq!(
            deltas[3],
            &json!({"tool_calls": [{"index": 0, "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]})
        );
        let args: String = deltas[4..8]
            .iter()
            .map(|d| {
                assert_eq!(d["tool_calls"][0]["index"], 0);
                assert!(d["tool_calls"][0].get("id").is_none());
                d["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(args, "{\"location\": \"Paris\"}");
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
        for e in &events[..events.len() - 1] {
            assert_eq!(e["id"], "msg_019Q1hrJbZG26Fb9BQhrkHEr");
            assert_eq!(e["created"], 1_700_000_000);
            assert_eq!(e["model"], "claude-sonnet-4-20250514");
        }
    }

    #[test]
    fn parallel_tool_calls_are_numbered_0_and_1_and_cache_tokens_count() {
        let (out, _) = run(PARALLEL, true, false);
        let events = sse_payloads(&out);
        let starts: Vec<(Value, Value)> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0].as_object())
            .filter(|c| c.contains_key("id"))
            .map(|c| (c["index"].clone(), c["function"]["name"].clone()))
            .collect();
        assert_eq!(
            starts,
            vec![
                (json!(0), json!("get_weather")),
                (json!(1), json!("get_time"))
            ]
        );
        let usage = &events[events.len() - 2]["usage"];
        assert_eq!(usage["prompt_tokens"], 520);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 100);
    }

    #[test]
    fn thinking_is_reasoning_content_never_content_and_its_signed_block_follows() {
        let (out, _) = run(THINKING, false, false);
        let events = sse_payloads(&out);
        assert_eq!(
            events[1]["choices"][0]["delta"],
            json!({"reasoning_content": "I need to find the GCD..."})
        );
        // The whole block with its signature, for the client to send back next turn.
        assert_eq!(
            events[2]["choices"][0]["delta"],
            json!({"thinking_blocks": [{"type": "thinking",
                "thinking": "I need to find the GCD...", "signature": "EqQBCgIYAhIM..."}]})
        );
        assert_eq!(
            events[3]["choices"][0]["delta"],
            json!({"content": "The GCD is 21."})
        );
        assert_eq!(events[4]["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn refusal_is_content_filter() {
        let (out, _) = run(REFUSAL, false, false);
        let events = sse_payloads(&out);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(events[1]["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn json_mode_streams_the_tool_input_as_content_with_stop() {
        let (out, _) = run(JSON_TOOL_SSE, false, true);
        let events = sse_payloads(&out);
        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"city": "Paris", "population": 2102650})
        );
        assert!(!out.contains("tool_calls"));
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[test]
    fn an_error_before_content_fails_the_attempt_with_nothing_sent() {
        let mut t = StreamTranslator::new(1, false, false);
        let e = t
            .chunk(Bytes::from_static(FIRST_ERROR.as_bytes()))
            .unwrap_err();
        assert_eq!(e.status, 529);
        assert_eq!(e.error.kind, "overloaded_error");
        assert_eq!(e.error.message, "Overloaded");
        assert_eq!((e.error.param.clone(), e.error.code.clone()), (None, None));
    }

    fn client_sees(chunks: &[&'static str]) -> Result<String, EarlyFailure> {
        test_support::client_sees(
            Box::new(StreamTranslator::new(1_700_000_000, false, false)),
            chunks,
        )
    }

    #[test]
    fn nothing_before_the_first_token_commits() {
        // `message_start`, `ping` and an empty text block hold; the first delta releases the
        // role chunk with it.
        let head = &TEXT[..TEXT.find("event: content_block_delta").unwrap()];
        let mut t = StreamTranslator::new(1, false, false);
        assert!(t.chunk(Bytes::from(head.to_owned())).unwrap().is_empty());
        let first = &TEXT[head.len()..];
        let first = &first[..first.find("\n\n").unwrap() + 2];
        let out = t.chunk(Bytes::from(first.to_owned())).unwrap();
        let deltas: Vec<Value> = sse_payloads(std::str::from_utf8(&out).unwrap())
            .iter()
            .map(|e| e["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas,
            [
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Hello"})
            ]
        );
        // An error after all that is still the attempt's.
        let Err(EarlyFailure::InBand(e)) = client_sees(&[
            Box::leak(head.to_owned().into_boxed_str()),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
        ]) else {
            panic!("expected an in-band failure");
        };
        assert_eq!(e.status, 529);
    }

    #[test]
    fn a_late_error_event_follows_all_content_before_it() {
        let (head, tail) = MID_ERROR.split_at(MID_ERROR.find("event: error").unwrap());
        let head: &'static str = Box::leak(head.to_owned().into_boxed_str());
        // Whole, in the same piece as content, and cut before its blank line.
        let whole: &'static str = Box::leak(MID_ERROR.trim_end().to_owned().into_boxed_str());
        let cut: &'static str = Box::leak(tail.trim_end().to_owned().into_boxed_str());
        // Content and a whole error event in one piece, after content was sent: both go out.
        let at = MID_ERROR.find("event: content_block_delta").unwrap();
        let at = at + MID_ERROR[at..].find("\n\n").unwrap() + 2;
        let (sent, with_error) = MID_ERROR.split_at(at);
        let sent: &'static str = Box::leak(sent.to_owned().into_boxed_str());
        let with_error: &'static str = Box::leak(with_error.to_owned().into_boxed_str());
        for chunks in [vec![whole], vec![head, cut], vec![sent, with_error]] {
            let out = client_sees(&chunks).unwrap();
            let events = sse_payloads(&out);
            let text: String = events
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Partial answer");
            assert_eq!(
                events[events.len() - 2]["error"]["type"],
                "overloaded_error"
            );
            assert_eq!(events[events.len() - 1], "[DONE]");
        }
    }

    #[test]
    fn an_error_after_content_is_an_error_after_the_sent_chunks() {
        let mut t = StreamTranslator::new(1, false, false);
        let (head, tail) = MID_ERROR.split_at(MID_ERROR.find("event: error").unwrap());
        let sent = t.chunk(Bytes::from(head.to_owned())).unwrap();
        let text: String = sse_payloads(std::str::from_utf8(&sent).unwrap())
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(text, "Partial answer");
        let e = t.chunk(Bytes::from(tail.to_owned())).unwrap_err();
        assert_eq!((e.status, e.error.kind.as_str()), (529, "overloaded_error"));
    }

    #[test]
    fn a_stream_without_message_stop_is_truncated_and_unknown_events_are_ignored() {
        let cut = &TEXT[..TEXT.find("event: message_stop").unwrap()];
        let (_, err) = run(cut, false, false);
        assert_eq!(
            err.unwrap().error.code.as_deref(),
            Some("stream_interrupted")
        );
        let with_unknown = TEXT.replace(
            "event: ping\n",
            "event: brand_new\ndata: {\"type\":\"brand_new\",\"x\":[1]}\n\nevent: ping\n",
        );
        assert_eq!(
            run(&with_unknown, false, false).0,
            run(TEXT, false, false).0
        );
        // A final event without its blank line is still read at the end.
        let (out, err) = run(TEXT.trim_end(), false, false);
        assert!(err.is_none() && out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn crlf_streams_translate_the_same() {
        let crlf = TEXT.replace('\n', "\r\n");
        assert_eq!(run(&crlf, true, false).0, run(TEXT, true, false).0);
    }

    #[test]
    fn usage_is_message_starts_counts_with_the_last_output_count() {
        let metered = |stream: &str| {
            let mut t = StreamTranslator::new(1_700_000_000, false, false);
            let _ = t.chunk(Bytes::from(stream.to_owned()));
            let _ = t.end();
            t.usage()
        };
        assert_eq!(metered(TEXT), Some(Metered::from_anthropic(11, 0, 0, 6)));
        assert_eq!(
            metered(TOOL_USE),
            Some(Metered::from_anthropic(377, 0, 0, 65))
        );
        // The cache counts stay apart from `input_tokens`, which excludes them.
        assert_eq!(
            metered(PARALLEL),
            Some(Metered {
                input: 420,
                cache_read: 100,
                cache_write: 0,
                output: 80,
                reasoning: 0,
            })
        );
        // A cut stream still reports what it had; no message_start, no usage.
        assert_eq!(
            metered(MID_ERROR),
            Some(Metered::from_anthropic(12, 0, 0, 1))
        );
        let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
        assert_eq!(metered(ping), None);
        // A message_delta's cumulative counts replace the earlier ones they name.
        let delta = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":11,\"cache_creation_input_tokens\":1500,\"cache_read_input_tokens\":4000,\"output_tokens\":9}}\n\n";
        let start = TEXT.split("event: content_block_start").next().unwrap();
        assert_eq!(
            metered(&format!("{start}{delta}")),
            Some(Metered::from_anthropic(11, 4000, 1500, 9))
        );
    }
}
