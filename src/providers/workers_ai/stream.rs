//! Workers AI stream (either format of workers-ai.md §4, or a whole answer) → OpenAI chunks.
//!
//! One parser for both formats, like workers-ai-provider's, reading each event through
//! [`super::output`]: an event with `choices` is an OpenAI chunk (content,
//! `reasoning_content`/`reasoning`, tool-call fragments, `finish_reason`); anything else is
//! native (`response` text, top-level `tool_calls` flat or as fragments, `finish_reason`,
//! `usage`). `p` padding and empty `tool_calls: []` are ignored, and so is the null sentinel
//! `{id: null, type: null, function: {name: null}}` that closes a call. Usage is taken from the
//! last native `usage` event, which is cumulative; per-chunk usage of the OpenAI format is
//! incremental and only used when no native event comes ("Do not sum both").
//!
//! Output: the role chunk with the first content, deltas as they come, one finish chunk, the
//! usage chunk only with `stream_options.include_usage`, `data: [DONE]`. Nothing is written
//! before the first content, so an error event there still fails over. A stream ending without
//! `[DONE]` and without a finish reason was cut off and is reported as such, never as `stop`.
//!
//! When the body is not SSE at all (first byte `{` or `"`: a model that ignored `stream: true`,
//! or REST answering `application/json`), it is buffered and replayed as a valid stream.

use bytes::Bytes;
use serde_json::Value;

use super::output::{self, fnv, response_id, CallPiece, Calls, Output, Part, Usage};
use super::response::parse_whole;
use crate::core::completion::ChunkWriter;
use crate::core::stream::{InOrder, Translate, MAX_WHOLE_BODY};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;
use crate::sse::{SseEvent, SseParser};

/// Largest incomplete event held; real events are a few hundred bytes.
const MAX_PENDING: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Nothing but whitespace seen yet.
    Undecided,
    /// `data:` lines.
    Sse,
    /// One whole JSON answer.
    Whole,
}

/// The streaming translator.
pub struct StreamTranslator {
    /// Its id is the upstream's, or made up before the first chunk.
    out: ChunkWriter,
    max_tokens: u32,
    mode: Mode,
    whole: Vec<u8>,
    parser: SseParser,
    /// Per-response entropy for made-up ids (see [`super::seed`]).
    seed: u64,
    salt: u64,
    salted: bool,
    finish_sent: bool,
    done: bool,
    calls: Calls,
    finish: Option<String>,
    /// Cumulative usage from a native event.
    usage: Option<Usage>,
    /// Incremental usage summed from OpenAI-format chunks, the fallback.
    chunk_usage: Option<Usage>,
    /// A failure after output that is already the client's goes out after that output.
    order: InOrder,
}

impl StreamTranslator {
    /// A translator for `model`, stamping `created` (Unix seconds) on every chunk.
    pub fn new(model: &str, created: u64, include_usage: bool, max_tokens: u32) -> Self {
        let mut out = ChunkWriter::new(created, include_usage);
        out.model = model.to_owned();
        Self {
            out,
            max_tokens,
            mode: Mode::Undecided,
            whole: Vec::new(),
            parser: SseParser::new(),
            seed: created,
            salt: created,
            salted: false,
            finish_sent: false,
            done: false,
            calls: Calls::new(created),
            finish: None,
            usage: None,
            chunk_usage: None,
            order: InOrder::default(),
        }
    }

    /// Salts made-up and rewritten ids with `seed` (default: `created`).
    pub fn seeded(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.salt(seed);
        self
    }

    fn salt(&mut self, salt: u64) {
        self.salt = salt;
        self.calls = Calls::new(salt);
    }

    /// The writer, with the response id settled: the upstream's if it named one by now, else
    /// one made from the salt.
    fn writer(&mut self) -> &mut ChunkWriter {
        if self.out.id.is_empty() {
            self.out.id = response_id(None, self.salt);
        }
        &mut self.out
    }

    /// Writes what one output (a whole answer or one event's worth) adds.
    fn emit(&mut self, output: &Output<'_>, part: Part) {
        if self.out.id.is_empty() {
            if let Some(id) = output.id.filter(|i| !i.is_empty()) {
                self.out.id = id.to_owned();
            }
        }
        match (output.usage, output.openai) {
            (Some(u), true) => self.chunk_usage.get_or_insert_with(Usage::default).add(u),
            (Some(u), false) => self.usage = Some(u),
            (None, _) => {}
        }
        if let Some(r) = &output.reasoning {
            if !r.is_empty() {
                self.writer().reasoning(0, r);
            }
        }
        if let Some(c) = &output.content {
            if !c.is_empty() {
                self.writer().content(0, c);
            }
        }
        for (position, entry) in output.calls.iter().enumerate() {
            match self.calls.entry(position, entry, part) {
                Some(CallPiece::Start {
                    index,
                    id,
                    name,
                    arguments,
                }) => self
                    .writer()
                    .tool_call(0, index, Some(&id), Some(name), &arguments),
                Some(CallPiece::More { index, arguments }) => {
                    self.writer().tool_call(0, index, None, None, &arguments)
                }
                None => {}
            }
        }
        if let Some(f) = output.finish {
            self.finish = Some(f.to_owned());
        }
    }

    fn finish_chunk(&mut self) {
        if self.finish_sent {
            return;
        }
        self.finish_sent = true;
        let usage = self.usage.or(self.chunk_usage);
        let reason = output::finish_reason(
            self.finish.as_deref(),
            self.calls.any(),
            usage,
            self.max_tokens,
        );
        self.writer().finish(0, reason);
    }

    fn close(&mut self) {
        if self.done {
            return;
        }
        self.finish_chunk();
        let usage = self.usage.or(self.chunk_usage).unwrap_or_default();
        self.out.usage(usage.to_openai());
        self.out.done();
        self.done = true;
    }

    fn event(&mut self, sse: &SseEvent) -> Result<(), UpstreamError> {
        if self.done {
            return Ok(());
        }
        let data = sse.data.trim();
        if data == "[DONE]" {
            self.close();
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        if !self.salted {
            // Made-up ids are salted with the seed and the first event (Workers AI pads events
            // with random `p` text), not with how the network split the bytes.
            self.salted = true;
            self.salt(fnv(self.seed, data.as_bytes()));
        }
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            // Comments and keep-alives carry no JSON; a broken event is skipped, not fatal.
            return Ok(());
        };
        let output = output::read(&value, Part::Event)?;
        self.emit(&output, Part::Event);
        Ok(())
    }

    /// A whole answer as a stream.
    fn replay(&mut self) -> Result<(), UpstreamError> {
        let (value, salt) = parse_whole(&self.whole, self.seed)?;
        self.salt(salt);
        let answer = output::read(&value, Part::Whole)?;
        self.emit(&answer, Part::Whole);
        self.close();
        Ok(())
    }
}

impl StreamTranslator {
    /// Reads one upstream chunk into `self.out`.
    fn read(&mut self, upstream: Bytes) -> Result<(), UpstreamError> {
        if self.mode == Mode::Undecided {
            match upstream.iter().find(|b| !b.is_ascii_whitespace()) {
                None => {
                    self.whole.extend_from_slice(&upstream);
                    return Ok(());
                }
                Some(b'{' | b'"' | b'[') => self.mode = Mode::Whole,
                Some(_) => {
                    self.mode = Mode::Sse;
                    let held = std::mem::take(&mut self.whole);
                    for event in self.parser.feed(&held) {
                        self.event(&event)?;
                    }
                }
            }
        }
        match self.mode {
            Mode::Whole => {
                if self.whole.len() + upstream.len() > MAX_WHOLE_BODY {
                    return Err(UpstreamError::truncated(
                        "the Workers AI response is too large",
                    ));
                }
                self.whole.extend_from_slice(&upstream);
            }
            _ => {
                for event in self.parser.feed(&upstream) {
                    self.event(&event)?;
                }
                if self.parser.buffered() > MAX_PENDING {
                    return Err(UpstreamError::truncated(
                        "a Workers AI stream event exceeded the size limit",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads the end of the body into `self.out`.
    fn read_end(&mut self) -> Result<(), UpstreamError> {
        match self.mode {
            Mode::Whole => self.replay()?,
            Mode::Undecided => {
                return Err(UpstreamError::truncated(
                    "the Workers AI response was empty",
                ))
            }
            Mode::Sse => {
                if let Some(event) = self.parser.finish() {
                    self.event(&event)?;
                }
                if !self.done {
                    if self.finish.is_none() {
                        return Err(UpstreamError::truncated(
                            "the Workers AI stream ended before `data: [DONE]`",
                        ));
                    }
                    self.close();
                }
            }
        }
        Ok(())
    }
}

impl Translate for StreamTranslator {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let failure = self.read(upstream).err();
        let out = self.out.take();
        self.order.result(out, failure)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let failure = self.read_end().err();
        let out = self.out.take();
        self.order.result(out, failure)
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        self.order.take()
    }

    /// The last native (cumulative) usage event's, else the OpenAI-format chunks' summed.
    fn usage(&self) -> Option<Metered> {
        self.usage.or(self.chunk_usage).map(Usage::metered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{self, sse_payloads};
    use serde_json::json;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/workers_ai/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn run_split(input: &str, include_usage: bool, split: usize) -> Result<String, UpstreamError> {
        let mut t = StreamTranslator::new("@cf/m", 7, include_usage, 4096);
        let mut out = String::new();
        let bytes = input.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + split).min(bytes.len());
            let b = t.chunk(Bytes::copy_from_slice(&bytes[start..end]))?;
            out.push_str(std::str::from_utf8(&b).unwrap());
            start = end;
        }
        out.push_str(std::str::from_utf8(&t.end()?).unwrap());
        Ok(out)
    }

    fn run(input: &str, include_usage: bool) -> Result<String, UpstreamError> {
        run_split(input, include_usage, usize::MAX)
    }

    fn deltas(out: &str) -> Vec<Value> {
        sse_payloads(out)
            .iter()
            .filter_map(|p| p.pointer("/choices/0/delta").cloned())
            .collect()
    }

    fn finish(out: &str) -> Vec<Value> {
        sse_payloads(out)
            .iter()
            .filter_map(|p| p.pointer("/choices/0/finish_reason").cloned())
            .filter(|f| !f.is_null())
            .collect()
    }

    #[test]
    fn legacy_stream_exactly_with_usage() {
        let out = run(&fixture("stream_legacy.sse"), true).unwrap();
        let p = sse_payloads(&out);
        assert_eq!(
            p[0],
            json!({"id": p[0]["id"], "object": "chat.completion.chunk", "created": 7, "model": "@cf/m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}],
                   "usage": null})
        );
        let text: String = deltas(&out)
            .iter()
            .filter_map(|d| d.get("content").and_then(Value::as_str))
            .collect();
        assert_eq!(text, "Hello! How can?");
        assert_eq!(finish(&out), [json!("stop")]);
        let usage = &p[p.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 755, "completion_tokens": 10, "total_tokens": 765,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(p[p.len() - 1], json!("[DONE]"));
        // One id for the whole stream.
        assert!(p[..p.len() - 1].iter().all(|c| c["id"] == p[0]["id"]));
    }

    #[test]
    fn without_include_usage_there_is_no_usage_anywhere() {
        let out = run(&fixture("stream_legacy.sse"), false).unwrap();
        assert!(!out.contains("usage"), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn every_split_gives_the_same_output() {
        for name in [
            "stream_legacy.sse",
            "stream_openai.sse",
            "stream_openai_tools.sse",
        ] {
            let input = fixture(name);
            let whole = run(&input, true).unwrap();
            for split in [1, 2, 3, 5, 13, 64] {
                assert_eq!(
                    run_split(&input, true, split).unwrap(),
                    whole,
                    "{name} {split}"
                );
            }
        }
    }

    #[test]
    fn native_tool_call_stream() {
        let out = run(&fixture("stream_native_tools.sse"), false).unwrap();
        let d = deltas(&out);
        let id = d[1]["tool_calls"][0]["id"].as_str().unwrap();
        assert!(id.starts_with("call123::cf-wai-tool-call::"), "{id}");
        assert_eq!(
            d[1],
            json!({"tool_calls": [{"index": 0, "id": id, "type": "function",
                   "function": {"name": "get_weather", "arguments": "{\"location\": \"London\"}"}}]})
        );
        assert_eq!(finish(&out), [json!("tool_calls")]);
    }

    #[test]
    fn openai_format_stream_uses_the_cumulative_usage_and_keeps_reasoning_apart() {
        let out = run(&fixture("stream_openai.sse"), true).unwrap();
        let d = deltas(&out);
        assert!(d.contains(&json!({"reasoning_content": "Greeting."})));
        assert!(d.contains(&json!({"content": "Hi"})));
        assert_eq!(finish(&out), [json!("stop")]);
        let p = sse_payloads(&out);
        assert_eq!(p[0]["id"], "f962191d3d2f47418286b60056319eb5");
        assert_eq!(p[p.len() - 2]["usage"]["total_tokens"], 163);
    }

    #[test]
    fn openai_format_tool_fragments_and_the_null_sentinel() {
        let out = run(&fixture("stream_openai_tools.sse"), false).unwrap();
        let calls: Vec<Value> = deltas(&out)
            .iter()
            .filter_map(|d| d.get("tool_calls").cloned())
            .collect();
        let id = calls[0][0]["id"].as_str().unwrap();
        assert!(
            id.starts_with("chatcmpl-tool-1::cf-wai-tool-call::"),
            "{id}"
        );
        assert_eq!(
            calls,
            [
                json!([{"index": 0, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
                json!([{"index": 0, "function": {"arguments": "{\"city\": "}}]),
                json!([{"index": 0, "function": {"arguments": "\"Paris\"}"}}]),
            ]
        );
        assert_eq!(finish(&out), [json!("tool_calls")]);
    }

    #[test]
    fn flat_legacy_tool_calls_in_a_stream_get_ids_and_indexes() {
        let input = "data: {\"tool_calls\":[{\"name\":\"a\",\"arguments\":{\"x\":1}},{\"name\":\"b\",\"arguments\":{}}]}\n\ndata: [DONE]\n\n";
        let out = run(input, false).unwrap();
        let d = deltas(&out);
        assert_eq!(d[1]["tool_calls"][0]["index"], 0);
        assert_eq!(d[1]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(d[2]["tool_calls"][0]["index"], 1);
        assert_ne!(d[1]["tool_calls"][0]["id"], d[2]["tool_calls"][0]["id"]);
        assert_eq!(finish(&out), [json!("tool_calls")]);
    }

    #[test]
    fn a_whole_answer_to_a_streaming_request_becomes_a_stream() {
        let out = run(&fixture("output_legacy.json"), true).unwrap();
        let d = deltas(&out);
        assert_eq!(d[0], json!({"role": "assistant", "content": ""}));
        assert_eq!(d[1], json!({"content": "Hello!"}));
        assert_eq!(
            d[2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(finish(&out), [json!("tool_calls")]);
        let p = sse_payloads(&out);
        assert_eq!(p[p.len() - 2]["usage"]["total_tokens"], 15);
        assert_eq!(p[p.len() - 1], json!("[DONE]"));
        let out = run(&fixture("output_openai.json"), false).unwrap();
        assert!(deltas(&out).contains(&json!({"content": "Hi"})));
    }

    #[test]
    fn errors_before_content_fail_over_and_cut_streams_are_not_stop() {
        let e = run(
            "data: {\"error\":\"InferenceUpstreamError: 3040: Capacity temporarily exceeded\"}\n\n",
            false,
        )
        .unwrap_err();
        assert_eq!(e.status, 429);
        let e = run("data: {\"response\":\"Hel\"}\n\n", false).unwrap_err();
        assert_eq!(e.error.code.as_deref(), Some("stream_interrupted"));
        assert!(run("", false).is_err());
        // A finish reason without [DONE] is a complete answer.
        let out = run(
            "data: {\"response\":\"x\"}\n\ndata: {\"finish_reason\":\"stop\"}\n\n",
            false,
        )
        .unwrap();
        assert!(out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn a_late_error_event_follows_the_content_before_it() {
        let error =
            "data: {\"error\":\"InferenceUpstreamError: 3040: Capacity temporarily exceeded\"}";
        let client_sees = |chunks: &[&'static str]| {
            test_support::client_sees(Box::new(StreamTranslator::new("m", 1, false, 10)), chunks)
        };
        let with_error: &'static str =
            Box::leak(format!("data: {{\"response\":\" b\"}}\n\n{error}\n\n").into_boxed_str());
        // In one piece with content after the first token, and last without its blank line.
        for chunks in [
            vec!["data: {\"response\":\"a\"}\n\n", with_error],
            vec![
                "data: {\"response\":\"a\"}\n\ndata: {\"response\":\" b\"}\n\n",
                error,
            ],
        ] {
            let out = client_sees(&chunks).unwrap();
            let text: String = deltas(&out)
                .iter()
                .filter_map(|d| d.get("content").and_then(Value::as_str))
                .collect();
            assert_eq!(text, "a b", "{chunks:?}");
            let p = sse_payloads(&out);
            let message = p[p.len() - 2]["error"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(message.contains("Capacity temporarily exceeded"), "{out}");
            assert_eq!(p[p.len() - 1], json!("[DONE]"));
            assert!(finish(&out).is_empty());
        }
        assert!(client_sees(&[error]).is_err());
    }

    #[test]
    fn nothing_is_written_before_the_first_content() {
        let mut t = StreamTranslator::new("m", 1, false, 10);
        assert!(t
            .chunk(Bytes::from_static(
                b"data: {\"response\":\"\",\"p\":\"abc\"}\n\n"
            ))
            .unwrap()
            .is_empty());
        // Nor for an OpenAI-format role-only chunk or a usage-only event.
        assert!(t
            .chunk(Bytes::from_static(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
            ))
            .unwrap()
            .is_empty());
        assert!(t
            .chunk(Bytes::from_static(
                b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0,\"total_tokens\":1}}\n\n"
            ))
            .unwrap()
            .is_empty());
        assert!(!t
            .chunk(Bytes::from_static(b"data: {\"response\":\"a\"}\n\n"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn usage_is_the_last_native_event_else_the_openai_chunks_summed() {
        let metered = |input: &str, split: usize| {
            let mut t = StreamTranslator::new("@cf/m", 7, false, 4096);
            let bytes = input.as_bytes();
            for piece in bytes.chunks(split.max(1)) {
                let _ = t.chunk(Bytes::copy_from_slice(piece));
            }
            let _ = t.end();
            t.usage()
        };
        let legacy = fixture("stream_legacy.sse");
        for split in [1, 13, usize::MAX] {
            assert_eq!(
                metered(&legacy, split),
                Some(Metered::from_openai(755, 0, 10, 0))
            );
        }
        // workers-ai.md §4.2: the per-chunk usage is incremental, the native one cumulative
        // ("do not sum both").
        assert_eq!(
            metered(&fixture("stream_openai.sse"), usize::MAX),
            Some(Metered::from_openai(147, 0, 16, 0))
        );
        let chunks = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":32}}}\n\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":32},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\ndata: [DONE]\n\n";
        assert_eq!(
            metered(chunks, usize::MAX),
            Some(Metered {
                input: 8,
                cache_read: 32,
                cache_write: 0,
                output: 3,
                reasoning: 1,
            })
        );
        let none = "data: {\"response\":\"Hi\"}\n\ndata: [DONE]\n\n";
        assert_eq!(metered(none, usize::MAX), None);
        // A whole answer to a streamed request.
        assert_eq!(
            metered(
                r#"{"response":"Hi","usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
                usize::MAX
            ),
            Some(Metered::from_openai(12, 0, 3, 0))
        );
    }
}
