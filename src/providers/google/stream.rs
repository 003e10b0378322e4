//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk` events.
//!
//! Each SSE event is a whole `GenerateContentResponse` carrying new parts only; there is no
//! `[DONE]` (the body just ends). Text and thought parts become content / reasoning deltas as
//! they arrive; a `functionCall` arrives whole and becomes one tool-call delta with id, name
//! and all arguments. `finishReason` and the cumulative usage are remembered and written when
//! the body ends — the finish chunk, the usage chunk (only with `include_usage`), `[DONE]` —
//! because on newer models the `STOP` comes in a later event than the call it finishes, and
//! because Google appends a raw JSON error (not SSE-framed) to a failing 200 stream even after
//! a `STOP`: such a response must end with the error, not with a finish chunk.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::core::stream::{InOrder, Translate};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;
use crate::sse::SseParser;

use super::ids::{completion_id, IdMinter};
use super::response::{arguments, block_refusal};
use super::wire::{ErrorEnvelope, Response, UsageMetadata};
use super::{finish_reason, in_band_error};
use crate::core::completion::ChunkWriter;

/// Longest incomplete event (or raw error body) held; a real event is a few kilobytes.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// What is known of one candidate (one OpenAI choice).
#[derive(Debug, Default)]
struct Choice {
    /// Tool calls emitted so far: the next call's `index`, and whether the finish is
    /// `tool_calls`.
    tools: u32,
    /// The `finishReason`, once it came.
    finish: Option<String>,
    /// The prompt was blocked: the finish is `content_filter`.
    blocked: bool,
}

/// Detects the raw JSON error Google appends to a 200 stream: a line that starts with `{`
/// outside any `data:` field. Everything from there on is kept until it parses.
#[derive(Debug, Default)]
struct RawError {
    mid_line: bool,
    body: Option<Vec<u8>>,
}

impl RawError {
    fn feed(&mut self, bytes: &[u8]) {
        if let Some(body) = &mut self.body {
            body.extend_from_slice(bytes);
            return;
        }
        for (i, &b) in bytes.iter().enumerate() {
            if !self.mid_line && b == b'{' {
                self.body = Some(bytes[i..].to_vec());
                return;
            }
            self.mid_line = !(b == b'\n' || b == b'\r');
        }
    }

    /// The error, once the captured text is a complete error envelope.
    fn parsed(&self) -> Option<UpstreamError> {
        let body = self.body.as_deref()?;
        if !body.trim_ascii_end().ends_with(b"}") {
            return None;
        }
        let envelope: ErrorEnvelope = serde_json::from_slice(body).ok()?;
        Some(in_band_error(&envelope.error))
    }

    fn len(&self) -> usize {
        self.body.as_ref().map_or(0, Vec::len)
    }
}

/// The streaming translator.
pub struct StreamTranslator {
    parser: SseParser,
    raw: RawError,
    created: u64,
    fallback_model: String,
    /// Its id and model are set from the first event (`responseId`, `modelVersion`).
    out: ChunkWriter,
    ids: IdMinter,
    choices: BTreeMap<u32, Choice>,
    usage: UsageMetadata,
    /// The last `usageMetadata` with counts (a later one is cumulative), for the meter.
    last_usage: Option<UsageMetadata>,
    /// A failure after output that is already the client's goes out after that output.
    order: InOrder,
}

impl StreamTranslator {
    /// A translator stamping `created` (Unix seconds) on every chunk; `model` names the
    /// model until Gemini does.
    pub fn new(created: u64, model: &str, include_usage: bool) -> Self {
        let mut out = ChunkWriter::new(created, include_usage);
        out.model = model.to_owned();
        Self {
            parser: SseParser::new(),
            raw: RawError::default(),
            created,
            fallback_model: model.to_owned(),
            out,
            ids: IdMinter::new(created),
            choices: BTreeMap::new(),
            usage: UsageMetadata::default(),
            last_usage: None,
            order: InOrder::default(),
        }
    }

    fn event(&mut self, data: &str) -> Result<(), UpstreamError> {
        if data.trim().is_empty() {
            return Ok(());
        }
        let response: Response = serde_json::from_str(data).map_err(|e| {
            UpstreamError::truncated(format!("unreadable Gemini stream event: {e}"))
        })?;
        if let Some(error) = &response.error {
            return Err(in_band_error(error));
        }
        if self.out.id.is_empty() {
            self.out.id = completion_id(response.response_id.as_deref(), self.created);
        }
        if let Some(model) = response.model_version.as_deref().filter(|m| !m.is_empty()) {
            if self.out.model == self.fallback_model {
                self.out.model = model.to_owned();
            }
        }
        if let Some(usage) = &response.usage_metadata {
            self.usage.merge(usage);
            // `{"trafficType": …}` alone counts nothing.
            if *usage != UsageMetadata::default() {
                self.last_usage = Some(*usage);
            }
        }
        if response.candidates.is_empty() {
            if let Some(refusal) = block_refusal(&response) {
                self.choices.entry(0).or_default().blocked = true;
                self.out.refusal(0, &refusal);
            }
            return Ok(());
        }
        let rid = response.response_id.clone();
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate.index.unwrap_or(position as u32);
            if self.choices.get(&index).is_some_and(|c| c.finish.is_some()) {
                continue;
            }
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if let Some(call) = &part.function_call {
                    let id = self.ids.id(
                        rid.as_deref(),
                        call.id.as_deref(),
                        part.thought_signature.as_deref(),
                    );
                    let choice = self.choices.entry(index).or_default();
                    let tool = choice.tools;
                    choice.tools = choice.tools.saturating_add(1);
                    let args = arguments(&call.args);
                    self.out
                        .tool_call(index, tool, Some(&id), Some(&call.name), &args);
                } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                    // Every choice that said something must finish: `close` checks them all.
                    self.choices.entry(index).or_default();
                    if part.thought == Some(true) {
                        self.out.reasoning(index, text);
                    } else {
                        self.out.content(index, text);
                    }
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref().filter(|r| !r.is_empty()) {
                self.choices.entry(index).or_default().finish = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    /// The finish chunks, the usage chunk (if asked for) and `[DONE]`.
    fn close(&mut self) -> Result<(), UpstreamError> {
        let finishes: Vec<(u32, &'static str)> = self
            .choices
            .iter()
            .map(|(&index, c)| match (&c.finish, c.blocked) {
                (_, true) => Some((index, "content_filter")),
                (Some(reason), _) => Some((index, finish_reason(Some(reason), c.tools > 0))),
                (None, _) => None,
            })
            .collect::<Option<_>>()
            .filter(|f: &Vec<_>| !f.is_empty())
            .ok_or_else(|| {
                UpstreamError::truncated("the Gemini stream ended before its finishReason")
            })?;
        for (index, reason) in finishes {
            self.out.finish(index, reason);
        }
        self.out.usage(self.usage.to_openai());
        self.out.done();
        Ok(())
    }

    /// The output so far, or `failure`: dropped (so the core fails over) while nothing has
    /// reached the client, else returned now with the failure right after it.
    fn result(&mut self, failure: Option<UpstreamError>) -> Result<Bytes, UpstreamError> {
        let out = self.out.take();
        self.order.result(out, failure)
    }
}

impl Translate for StreamTranslator {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        self.raw.feed(&upstream);
        let mut failure = None;
        for event in self.parser.feed(&upstream) {
            if let Err(e) = self.event(&event.data) {
                failure = Some(e);
                break;
            }
        }
        if failure.is_none() {
            failure = self.raw.parsed();
        }
        if failure.is_none() && self.parser.buffered() + self.raw.len() > MAX_PENDING {
            failure = Some(UpstreamError::truncated(
                "a Gemini stream event exceeded the size limit",
            ));
        }
        self.result(failure)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        self.order.deferred()?;
        let mut failure = None;
        if let Some(event) = self.parser.finish() {
            failure = self.event(&event.data).err();
        }
        if failure.is_none() && self.raw.body.is_some() {
            let raw = String::from_utf8_lossy(self.raw.body.as_deref().unwrap_or_default());
            let snippet: String = raw.trim().chars().take(300).collect();
            failure = Some(self.raw.parsed().unwrap_or_else(|| {
                UpstreamError::truncated(format!(
                    "the Gemini stream ended with text that is not an event: {snippet}"
                ))
            }));
        }
        if failure.is_none() {
            failure = self.close().err();
        }
        self.result(failure)
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        self.order.take()
    }

    fn usage(&self) -> Option<Metered> {
        self.last_usage.as_ref().map(UsageMetadata::metered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::EarlyFailure;
    use crate::providers::test_support::{self, sse_payloads};
    use serde_json::{json, Value};

    const TEXT: &str = include_str!("../../../tests/fixtures/google/text.sse");
    const THINKING: &str = include_str!("../../../tests/fixtures/google/thinking.sse");
    const SPLIT_CALL: &str = include_str!("../../../tests/fixtures/google/function_call_split.sse");
    const ONE_CHUNK_CALL: &str =
        include_str!("../../../tests/fixtures/google/function_call_one_chunk.sse");
    const PARALLEL: &str = include_str!("../../../tests/fixtures/google/parallel_calls.sse");
    const BLOCKED: &str = include_str!("../../../tests/fixtures/google/prompt_blocked.sse");
    const SAFETY: &str = include_str!("../../../tests/fixtures/google/safety_finish.sse");
    const MID_ERROR: &str = include_str!("../../../tests/fixtures/google/midstream_error.sse");
    const FIRST_ERROR: &str = include_str!("../../../tests/fixtures/google/error_first.sse");

    /// Feeds `pieces` then ends; returns what the client got and the failure, if any.
    fn run_pieces(pieces: &[&[u8]], include_usage: bool) -> (String, Option<UpstreamError>) {
        let mut t = StreamTranslator::new(1_700_000_000, "gemini-target", include_usage);
        let mut out = String::new();
        for piece in pieces {
            match t.chunk(Bytes::copy_from_slice(piece)) {
                Ok(b) => out.push_str(std::str::from_utf8(&b).unwrap()),
                Err(e) => return (out, Some(e)),
            }
        }
        match t.end() {
            Ok(b) => {
                out.push_str(std::str::from_utf8(&b).unwrap());
                (out, None)
            }
            Err(e) => (out, Some(e)),
        }
    }

    fn run(stream: &str, include_usage: bool) -> (String, Option<UpstreamError>) {
        run_pieces(&[stream.as_bytes()], include_usage)
    }

    /// Real traffic separates events with `\r\n\r\n`.
    fn crlf(stream: &str) -> String {
        stream.replace('\n', "\r\n")
    }

    fn deltas(out: &str) -> Vec<Value> {
        sse_payloads(out)
            .iter()
            .filter_map(|e| e["choices"].get(0).map(|c| c["delta"].clone()))
            .collect()
    }

    #[test]
    fn text_stream_exactly_with_usage() {
        let (out, err) = run(&crlf(TEXT), true);
        assert!(err.is_none(), "{err:?}");
        let head = r#"{"id":"chatcmpl-JPozaonvK7yzvdIPrJ7FyAk","object":"chat.completion.chunk","created":1700000000,"model":"gemini-2.5-flash","#;
        let expected = [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":"A wooden"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{"content":" boardwalk through a meadow."},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#""choices":[],"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
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
        let (out, _) = run(TEXT, false);
        let events = sse_payloads(&out);
        assert_eq!(events.len(), 5);
        for e in &events[..4] {
            assert!(e.get("usage").is_none());
            assert_eq!(e["choices"].as_array().unwrap().len(), 1);
        }
        assert_eq!(events[4], "[DONE]");
    }

    #[test]
    fn split_at_every_byte_gives_the_same_output() {
        for stream in [crlf(PARALLEL), crlf(TEXT)] {
            let (whole, _) = run(&stream, true);
            let bytes = stream.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                let (out, err) = run_pieces(&[a, b], true);
                assert!(err.is_none());
                // Minted ids differ only when the response has no id; these fixtures have one.
                assert_eq!(out, whole, "split at {split}");
            }
        }
    }

    #[test]
    fn a_call_whose_stop_comes_in_a_later_event_finishes_with_tool_calls() {
        let (out, err) = run(&crlf(SPLIT_CALL), true);
        assert!(err.is_none());
        let events = sse_payloads(&out);
        assert_eq!(
            events[1]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "call_r1_0__thought__CiQB0e2Kb...", "type": "function",
                                   "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Paris\"}"}}]})
        );
        assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            events[3]["usage"],
            json!({"prompt_tokens": 107, "completion_tokens": 179, "total_tokens": 286,
                   "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 148}})
        );
        assert_eq!(events[0]["model"], "gemini-3.5-flash");
        assert_eq!(events[0]["id"], "chatcmpl-r1");
        // Exactly one finish chunk.
        let finishes = events
            .iter()
            .filter(|e| {
                e["choices"]
                    .get(0)
                    .is_some_and(|c| !c["finish_reason"].is_null())
            })
            .count();
        assert_eq!(finishes, 1);
    }

    #[test]
    fn a_call_and_stop_in_one_event_keeps_gemini_id() {
        let (out, _) = run(ONE_CHUNK_CALL, false);
        let events = sse_payloads(&out);
        assert_eq!(
            events[1]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "call_signed__thought__tool-signature"
        );
        assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
        // No modelVersion: the target's model.
        assert_eq!(events[0]["model"], "gemini-target");
    }

    #[test]
    fn parallel_calls_are_numbered_across_events_after_text() {
        let (out, _) = run(&crlf(PARALLEL), false);
        let d = deltas(&out);
        assert_eq!(d[1], json!({"content": "Let me check both."}));
        let calls: Vec<(Value, Value, Value, Value)> = d
            .iter()
            .filter_map(|d| d["tool_calls"].get(0))
            .map(|c| {
                (
                    c["index"].clone(),
                    c["id"].clone(),
                    c["function"]["name"].clone(),
                    c["function"]["arguments"].clone(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (
                    json!(0),
                    json!("call_par1_0__thought__CiQB0e2Kb..."),
                    json!("get_current_weather"),
                    json!("{\"location\":\"Paris\"}")
                ),
                (
                    json!(1),
                    json!("call_par1_1"),
                    json!("get_current_weather"),
                    json!("{\"location\":\"London\"}")
                ),
                (
                    json!(2),
                    json!("call_par1_2"),
                    json!("get_local_time"),
                    json!("{\"location\":\"Paris\"}")
                ),
            ]
        );
        let events = sse_payloads(&out);
        assert_eq!(
            events[events.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }

    #[test]
    fn thoughts_are_reasoning_content_never_content() {
        let (out, _) = run(THINKING, true);
        let d = deltas(&out);
        assert_eq!(
            d[1],
            json!({"reasoning_content": "**Finding the GCD**\n\nI need the common divisors."})
        );
        assert_eq!(d[2], json!({"content": "The GCD is 21."}));
        assert_eq!(d.len(), 4);
        let events = sse_payloads(&out);
        assert_eq!(
            events[4]["usage"]["completion_tokens_details"]["reasoning_tokens"],
            40
        );
        assert_eq!(events[4]["usage"]["completion_tokens"], 46);
    }

    #[test]
    fn a_blocked_prompt_is_a_refusal_and_content_filter() {
        let (out, err) = run(&crlf(BLOCKED), false);
        assert!(err.is_none());
        let events = sse_payloads(&out);
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert_eq!(
            events[1]["choices"][0]["delta"],
            json!({"refusal": "Gemini blocked the prompt (SAFETY)."})
        );
        assert_eq!(events[2]["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn a_safety_finish_is_content_filter() {
        let (out, _) = run(SAFETY, false);
        let events = sse_payloads(&out);
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Here is how");
        assert_eq!(events[2]["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn an_error_appended_after_content_ends_the_stream_with_that_error() {
        // Fed as the network delivers it: the events, then the raw JSON object.
        let stream = crlf(MID_ERROR);
        let cut = stream.find("{\r\n").unwrap();
        let (out, err) = run_pieces(
            &[&stream.as_bytes()[..cut], &stream.as_bytes()[cut..]],
            true,
        );
        let e = err.unwrap();
        assert_eq!(e.status, 503);
        assert_eq!(
            e.error.message,
            "The model is overloaded. Please try again later."
        );
        assert_eq!(e.error.code.as_deref(), Some("unavailable"));
        // The text reached the client; no finish chunk and no [DONE] came before the error.
        assert_eq!(deltas(&out)[1], json!({"content": "Okay"}));
        assert!(!out.contains("finish_reason\":\"stop") && !out.contains("[DONE]"));
    }

    #[test]
    fn an_error_in_the_same_piece_as_sent_content_comes_after_it() {
        let mut t = StreamTranslator::new(1, "g", false);
        let (head, _) = TEXT.split_at(TEXT.find("\n\n").unwrap() + 2);
        let first = t.chunk(Bytes::from(head.to_owned())).unwrap();
        assert!(!first.is_empty());
        let rest = format!(
            "{}{}",
            &TEXT[head.len()..TEXT.rfind("data:").unwrap()],
            FIRST_ERROR
        );
        let second = t.chunk(Bytes::from(rest)).unwrap();
        assert!(std::str::from_utf8(&second).unwrap().contains("boardwalk"));
        // Taken right after that output, or else returned by the next call.
        assert_eq!(t.failure().unwrap().status, 503);
        assert!(t.failure().is_none());
        let mut t = StreamTranslator::new(1, "g", false);
        t.chunk(Bytes::from(head.to_owned())).unwrap();
        t.chunk(Bytes::from(format!(
            "{}{}",
            &TEXT[head.len()..TEXT.rfind("data:").unwrap()],
            FIRST_ERROR
        )))
        .unwrap();
        assert_eq!(t.end().unwrap_err().status, 503);
    }

    const ERROR_EVENT: &str = "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}";

    fn client_sees(chunks: &[&'static str]) -> Result<String, EarlyFailure> {
        let translator = StreamTranslator::new(1_700_000_000, "gemini-target", false);
        test_support::client_sees(Box::new(translator), chunks)
    }

    #[test]
    fn empty_events_do_not_commit() {
        let empty = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\",\"thoughtSignature\":\"s\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3},\"responseId\":\"r\"}\r\n\r\n";
        let mut t = StreamTranslator::new(1, "g", false);
        assert!(t.chunk(Bytes::from(empty)).unwrap().is_empty());
        assert!(t.chunk(Bytes::from("data: {}\r\n\r\n")).unwrap().is_empty());
        let Err(EarlyFailure::InBand(e)) = client_sees(&[empty, ERROR_EVENT]) else {
            panic!("expected an in-band failure");
        };
        assert_eq!(e.status, 503);
    }

    #[test]
    fn an_error_event_at_the_very_end_without_its_blank_line_reaches_the_client() {
        let text = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Okay\"}]}}],\"responseId\":\"r\"}\r\n\r\n";
        for chunks in [
            vec![text, ERROR_EVENT],
            vec![Box::leak(format!("{text}{ERROR_EVENT}").into_boxed_str())],
        ] {
            let out = client_sees(&chunks).unwrap();
            let events = sse_payloads(&out);
            assert_eq!(deltas(&out)[1], json!({"content": "Okay"}));
            assert_eq!(
                events[events.len() - 2]["error"]["message"],
                "The model is overloaded. Please try again later."
            );
            assert_eq!(events[events.len() - 1], "[DONE]");
            assert!(!out.contains("finish_reason\":\"stop"));
        }
        // Before any content it is the attempt's failure.
        let Err(EarlyFailure::InBand(e)) = client_sees(&[ERROR_EVENT]) else {
            panic!("expected an in-band failure");
        };
        assert_eq!(e.status, 503);
    }

    #[test]
    fn a_stream_that_ends_mid_answer_without_its_blank_line_ends_with_an_error() {
        // The last event (content, no finishReason) is read at the end of the body; the stream
        // was cut, so the client gets that content, then the error and `[DONE]`.
        let out = client_sees(&[
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Okay\"}]}}],\"responseId\":\"r\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" then\"}]}}],\"responseId\":\"r\"}",
        ])
        .unwrap();
        let events = sse_payloads(&out);
        assert_eq!(deltas(&out)[2], json!({"content": " then"}));
        assert_eq!(
            events[events.len() - 2]["error"]["code"],
            "stream_interrupted"
        );
        assert_eq!(events[events.len() - 1], "[DONE]");
    }

    #[test]
    fn an_error_before_any_content_fails_the_attempt_over() {
        let (out, err) = run(FIRST_ERROR, false);
        assert!(out.is_empty());
        assert_eq!(err.unwrap().status, 503);
        // Even when it shares a network piece with content nothing was sent yet.
        let (out, err) = run(MID_ERROR, false);
        assert!(out.is_empty());
        assert_eq!(err.unwrap().status, 503);
        // An SSE-framed error event too.
        let (out, err) = run(
            "data: {\"error\": {\"code\": 429, \"message\": \"Resource has been exhausted (e.g. check quota).\", \"status\": \"RESOURCE_EXHAUSTED\"}}\n\n",
            false,
        );
        assert!(out.is_empty());
        assert_eq!(err.unwrap().status, 429);
    }

    #[test]
    fn truncated_or_garbled_streams_are_errors() {
        let cut = &TEXT[..TEXT.rfind("data:").unwrap()];
        let (_, err) = run(cut, false);
        assert_eq!(
            err.unwrap().error.code.as_deref(),
            Some("stream_interrupted")
        );
        let (_, err) = run("", false);
        assert!(err.is_some());
        let (_, err) = run("data: {not json\n\n", false);
        assert_eq!(err.unwrap().status, 502);
        let (_, err) = run(&format!("{TEXT}{{\"half\": "), false);
        assert!(err.unwrap().error.message.contains("not an event"));
        // A final event without its blank line is still read.
        let (out, err) = run(TEXT.trim_end(), false);
        assert!(err.is_none() && out.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn usage_keeps_the_largest_counts_when_a_later_event_carries_fewer() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1,\"thoughtsTokenCount\":3,\"cachedContentTokenCount\":4}}\r\n\r\n",
            "data: {\"usageMetadata\":{\"trafficType\":\"ON_DEMAND\"}}\r\n\r\n",
        );
        let (out, err) = run(stream, true);
        assert!(err.is_none());
        let events = sse_payloads(&out);
        assert_eq!(
            events[events.len() - 2]["usage"],
            json!({"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11,
                   "prompt_tokens_details": {"cached_tokens": 4},
                   "completion_tokens_details": {"reasoning_tokens": 3}})
        );
    }

    #[test]
    fn arbitrary_bytes_and_mangled_fixtures_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let fixtures = [TEXT, PARALLEL, SPLIT_CALL, MID_ERROR, BLOCKED, THINKING];
        for round in 0..400 {
            let mut bytes = fixtures[round % fixtures.len()].as_bytes().to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = (next() % 256) as u8;
            }
            let cut = (next() as usize) % bytes.len();
            let _ = run_pieces(&[&bytes[..cut], &bytes[cut..]], round % 2 == 0);
            let mut t = super::super::response::json_translator(1, "g");
            let _ = t.chunk(Bytes::from(bytes)).and_then(|_| t.end());
        }
    }

    #[test]
    fn several_candidates_are_several_choices() {
        let stream = concat!(
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]},\"index\":0},{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"index\":1}],\"responseId\":\"n2\"}\r\n\r\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"STOP\",\"index\":0},{\"content\":{\"parts\":[{\"text\":\"\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":1}],\"responseId\":\"n2\"}\r\n\r\n",
        );
        let (out, err) = run(stream, false);
        assert!(err.is_none());
        let finishes: Vec<(Value, Value)> = sse_payloads(&out)
            .iter()
            .filter_map(|e| e["choices"].get(0))
            .filter(|c| !c["finish_reason"].is_null())
            .map(|c| (c["index"].clone(), c["finish_reason"].clone()))
            .collect();
        assert_eq!(
            finishes,
            vec![(json!(0), json!("stop")), (json!(1), json!("length"))]
        );
    }

    #[test]
    fn usage_is_the_last_usage_metadata_with_counts() {
        let metered = |stream: &str| {
            let mut t = StreamTranslator::new(1_700_000_000, "gemini-target", false);
            let _ = t.chunk(Bytes::from(stream.to_owned()));
            let _ = t.end();
            t.usage()
        };
        assert_eq!(metered(TEXT), Some(Metered::from_gemini(19, 0, 9, 0)));
        // A first `{"trafficType": …}` counts nothing; thoughts are output, apart from the
        // candidates.
        let split = metered(SPLIT_CALL).unwrap();
        assert_eq!(split, Metered::from_gemini(107, 0, 31, 148));
        assert_eq!(
            (split.output, split.reasoning, split.total()),
            (179, 148, 286)
        );
        assert_eq!(metered(THINKING), Some(Metered::from_gemini(12, 0, 6, 40)));
        // The last report wins (gemini.md §4.1: 2304, then 2301 + 1), even when an error
        // follows it.
        assert_eq!(
            metered(MID_ERROR),
            Some(Metered::from_gemini(2301, 0, 1, 0))
        );
        assert_eq!(metered(FIRST_ERROR), None);
        let none = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"STOP\",\"index\":0}]}\n\n";
        assert_eq!(metered(none), None);
        // The cached share of the prompt is apart.
        let cached = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":2304,\"cachedContentTokenCount\":2048,\"candidatesTokenCount\":9,\"totalTokenCount\":2313}}\n\n";
        assert_eq!(
            metered(cached),
            Some(Metered {
                input: 256,
                cache_read: 2048,
                cache_write: 0,
                output: 9,
                reasoning: 0,
            })
        );
    }
}
