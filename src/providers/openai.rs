//! OpenAI and OpenAI-compatible APIs: the request goes upstream with only `model` replaced
//! (and tool-call ids another provider minted made to fit, [`tool_ids`]), and the response
//! comes back byte for byte as it arrives.

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::core::error::ErrorObject;
use crate::core::host::UpstreamRequest;
use crate::core::provider::{PrepareError, Provider, SecretLookup};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::UpstreamError;
use crate::providers::output_limit;
use crate::providers::tool_ids::{self, Wire};
use crate::sse::SseParser;

/// OpenAI Chat Completions, passed through: `provider = "openai"` and `"openai-compatible"`.
pub struct OpenAi;

/// A pass-through request, ready for any key.
pub struct Prepared {
    /// The client's request with the target's model.
    body: Bytes,
    /// Whether the client asked for a stream.
    stream: bool,
}

impl Provider for OpenAi {
    type Prepared = Prepared;

    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        _secret: SecretLookup<'_>,
    ) -> Result<Prepared, PrepareError> {
        let body = request.body();
        let messages = tool_ids::portable_messages(body.get("messages"), Wire::OpenAi);
        let model = request.upstream_model(target);
        let requested = ["max_completion_tokens", "max_tokens"]
            .iter()
            .filter_map(|field| body.get(*field).and_then(Value::as_u64))
            .max();
        let max_tokens = requested
            .map(|requested| output_limit::clamp(target, &model, requested))
            .filter(|clamped| Some(*clamped) != requested);
        // A Messages request's translation is the proxy's own, so it is fitted to the model:
        // OpenAI's reasoning models take only `max_completion_tokens`, and the others refuse
        // `reasoning_effort` (a client's own OpenAI request goes as the client wrote it).
        let front_door = request.anthropic().is_some();
        let fitted = Fitted {
            completion_tokens: front_door && target.provider == "openai",
            no_effort: front_door && !reasoning_model(&model),
        };
        let body = if messages.is_none() && max_tokens.is_none() && fitted == Fitted::default() {
            request.to_json_with_model(&model)
        } else {
            let replaced = Replaced {
                body,
                model: &model,
                messages: messages.as_ref(),
                max_tokens: max_tokens.or(requested),
                fitted,
            };
            // Serialising in-memory JSON values into a Vec cannot fail.
            serde_json::to_vec(&replaced).unwrap_or_default()
        };
        Ok(Prepared {
            body: Bytes::from(body),
            stream: request.stream,
        })
    }

    /// `POST {base_url}/chat/completions` with the key as a bearer token.
    fn request(target: &'static Target, prepared: &Prepared, key: &str) -> UpstreamRequest {
        UpstreamRequest {
            url: format!("{}/chat/completions", target.base_url),
            headers: vec![
                ("authorization", format!("Bearer {key}")),
                ("content-type", "application/json".to_owned()),
                UpstreamRequest::accept(prepared.stream),
            ],
            body: prepared.body.clone(),
        }
    }

    fn failure(_prepared: &Prepared, status: u16, body: &[u8]) -> UpstreamError {
        UpstreamError::answered(status, ErrorObject::from_upstream(status, body))
    }

    fn translator(
        _target: &'static Target,
        prepared: &Prepared,
        _created: u64,
    ) -> Box<dyn Translate> {
        Box::new(PassThrough::new(prepared.stream))
    }
}

/// Models that take `reasoning_effort`, by id prefix (after any `vendor/`).
const REASONING_MODELS: [&str; 6] = ["o1", "o3", "o4", "gpt-5", "gpt-oss", "grok-3-mini"];

fn reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    REASONING_MODELS
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// How a front door's translated request is fitted to the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fitted {
    /// The budget goes as `max_completion_tokens`.
    completion_tokens: bool,
    /// `reasoning_effort` is left out.
    no_effort: bool,
}

/// The client's request with `model` replaced, and `messages` and the token budget where they
/// must change; every other field as sent, in its order.
struct Replaced<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    messages: Option<&'a Value>,
    /// The budget clamped to the target's output limit, for both of its field names.
    max_tokens: Option<u64>,
    fitted: Fitted,
}

impl Serialize for Replaced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.body.len()))?;
        for (key, value) in self.body {
            match key.as_str() {
                "model" => map.serialize_entry(key, self.model)?,
                "messages" if self.messages.is_some() => {
                    map.serialize_entry(key, &self.messages)?;
                }
                "max_tokens" if self.fitted.completion_tokens => {
                    map.serialize_entry("max_completion_tokens", &self.max_tokens)?;
                }
                "max_tokens" | "max_completion_tokens" if self.max_tokens.is_some() => {
                    map.serialize_entry(key, &self.max_tokens)?;
                }
                "reasoning_effort" if self.fitted.no_effort => {}
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Forwards every chunk unchanged. A whole (non-streamed) answer is held until it has all
/// arrived and parsed as JSON: the client gets no byte of it before that, so a body that is cut
/// off, malformed, or an in-band error still fails over. A stream is held back until its first
/// token, so that an
/// upstream answering 200 with an in-band error first (some OpenAI-compatible servers report
/// rate limits that way), or with only a role chunk and keep-alives before it stalls, still
/// fails over; the held bytes then go out as they came, with the token. After it, bytes go out
/// as they come, and only the last few are watched, to tell a stream that ended with
/// `data: [DONE]` from one that was cut off.
pub struct PassThrough {
    stream: bool,
    /// A whole answer's bytes so far.
    whole: Vec<u8>,
    /// Until the first token: the bytes so far and their events; `None` once released.
    head: Option<Head>,
    tail: Vec<u8>,
}

/// A stream's bytes before its first token, read event by event as they complete.
struct Head {
    bytes: Vec<u8>,
    events: SseParser,
}

const DONE: &[u8] = b"[DONE]";
const TAIL: usize = 32;
/// Held bytes beyond this are released without waiting for a token (a stream that sends this
/// much before one is not an OpenAI stream; this only bounds memory).
const MAX_HEAD: usize = 64 * 1024;

impl PassThrough {
    /// A pass-through for a streamed (`true`) or whole JSON response.
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            head: stream.then(|| Head {
                bytes: Vec::new(),
                events: SseParser::new(),
            }),
            tail: Vec::with_capacity(if stream { TAIL * 2 } else { 0 }),
            whole: Vec::new(),
        }
    }

    fn remember_tail(&mut self, bytes: &[u8]) {
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
        if self.tail.len() > TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    fn ended_with_done(&self) -> bool {
        let trimmed = self.tail.trim_ascii_end();
        trimmed.ends_with(DONE) && {
            let before = trimmed[..trimmed.len() - DONE.len()].trim_ascii_end();
            before.ends_with(b"data:")
        }
    }
}

impl Translate for PassThrough {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        if !self.stream {
            self.whole.extend_from_slice(&upstream);
            return Ok(Bytes::new());
        }
        let out = match self.head.as_mut() {
            None => upstream,
            Some(head) => {
                head.bytes.extend_from_slice(&upstream);
                let mut token = false;
                // Comments and blank lines make no event, so only data events are judged.
                for event in head.events.feed(&upstream) {
                    if is_token(&event.data)? {
                        token = true;
                        break;
                    }
                }
                if !token && head.bytes.len() < MAX_HEAD {
                    return Ok(Bytes::new());
                }
                Bytes::from(self.head.take().map(|h| h.bytes).unwrap_or_default())
            }
        };
        self.remember_tail(&out);
        Ok(out)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        if !self.stream {
            return whole_answer(std::mem::take(&mut self.whole));
        }
        // A stream that ended before any token is released here, then judged by its end (a
        // last event without its blank line is judged too).
        let held = match self.head.take() {
            Some(mut head) => {
                if let Some(event) = head.events.finish() {
                    is_token(&event.data)?;
                }
                head.bytes
            }
            None => Vec::new(),
        };
        self.remember_tail(&held);
        if self.stream && !self.ended_with_done() {
            return Err(UpstreamError::truncated(
                "the upstream closed the stream before `data: [DONE]`",
            ));
        }
        Ok(Bytes::from(held))
    }

    /// Once the first token is out, every byte passes unchanged (only the end is judged).
    fn relays(&self) -> bool {
        self.head.is_none()
    }
}

/// A whole answer, once it has all arrived: passed on if it is a JSON object that is not an
/// error, else the attempt's failure.
fn whole_answer(body: Vec<u8>) -> Result<Bytes, UpstreamError> {
    /// Parses the whole body (so malformed JSON is caught) but keeps only `error`.
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde::de::IgnoredAny>,
    }
    // serde reads a struct from a JSON array as well (`[null]` is a `Probe`): only an object
    // is an answer.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(UpstreamError::truncated(
            "the upstream's 200 answer is not a JSON object",
        ));
    }
    match serde_json::from_slice::<Probe>(&body) {
        Ok(Probe { error: None }) => Ok(Bytes::from(body)),
        Ok(Probe { error: Some(_) }) => {
            let text = String::from_utf8_lossy(&body);
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Err(in_band_error(&value, &text).unwrap_or_else(|| {
                UpstreamError::truncated("the upstream answered 200 with an error")
            }))
        }
        Err(e) => Err(UpstreamError::truncated(format!(
            "the upstream's 200 answer is not a JSON object: {e}"
        ))),
    }
}

/// Judges one data event before the first token: `Ok(true)` for a token, `Ok(false)` for an
/// event to hold, `Err` for an in-band error. A token is `[DONE]`, a finish reason, usage, or
/// a delta with text, reasoning, a refusal or a tool call; a role-only chunk (`{"role":
/// "assistant","content":""}`) or a chunk with no choices (Azure's `prompt_filter_results`) is
/// not. Data that is not JSON is a malformed stream: the attempt fails (after the first token
/// events are relayed unread, so only the head is judged).
fn is_token(data: &str) -> Result<bool, UpstreamError> {
    if data.trim() == "[DONE]" {
        return Ok(true);
    }
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Err(UpstreamError::in_band(
            502,
            ErrorObject::new(
                "the upstream sent a stream event that is not JSON",
                "upstream_error",
                None,
                Some("invalid_upstream_event"),
            ),
        ));
    };
    if let Some(error) = in_band_error(&value, data) {
        return Err(error);
    }
    let filled = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if filled(value.get("usage")) {
        return Ok(true);
    }
    let choices = value.get("choices").and_then(Value::as_array);
    Ok(choices.into_iter().flatten().any(|choice| {
        let delta = choice.get("delta");
        filled(choice.get("finish_reason"))
            || [
                "content",
                "reasoning_content",
                "reasoning",
                "refusal",
                "tool_calls",
                "function_call",
                "audio",
            ]
            .iter()
            .any(|field| filled(delta.and_then(|d| d.get(*field))))
    }))
}

/// An OpenAI-style `{"error": {...}}` payload (`data` as sent), as the failure it reports.
fn in_band_error(value: &Value, data: &str) -> Option<UpstreamError> {
    value.get("error").filter(|e| e.is_object())?;
    let error = ErrorObject::from_upstream(502, data.as_bytes());
    let rate_limited = [error.code.as_deref(), Some(error.kind.as_str())]
        .into_iter()
        .flatten()
        .any(|s| s.contains("rate_limit") || s == "429");
    Some(UpstreamError::in_band(
        if rate_limited { 429 } else { 502 },
        error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_answer_is_held_until_complete_and_valid() {
        let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#;
        let mut p = PassThrough::new(false);
        assert!(p
            .chunk(Bytes::from_static(&answer.as_bytes()[..20]))
            .unwrap()
            .is_empty());
        assert!(p
            .chunk(Bytes::from_static(&answer.as_bytes()[20..]))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap(), answer.as_bytes());
        for (body, status) in [
            (r#"{"id":"chatcmpl-1","choices":["#, 502),
            ("<html><body>502 Bad Gateway</body></html>", 502),
            // Found by fuzzing (openai_response): an array is JSON, but not an answer.
            ("[null]", 502),
            (" [] ", 502),
            (
                r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
                429,
            ),
        ] {
            let failure = feed(false, &[body]).unwrap_err();
            assert_eq!((failure.status, failure.in_band), (status, true), "{body}");
        }
    }

    #[test]
    fn a_malformed_event_before_the_first_token_fails_the_attempt() {
        let cut =
            "data: {\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\n\ndata: [DONE]\n\n";
        let failure = feed(true, &[cut]).unwrap_err();
        assert_eq!(
            failure.error.code.as_deref(),
            Some("invalid_upstream_event")
        );
        let html = "<html><body>502 Bad Gateway</body></html>";
        assert!(
            feed(true, &[html]).is_err(),
            "no event at all, then no [DONE]"
        );
    }

    fn feed(stream: bool, chunks: &[&'static str]) -> Result<String, UpstreamError> {
        let mut p = PassThrough::new(stream);
        let mut out = String::new();
        for c in chunks {
            out.push_str(std::str::from_utf8(&p.chunk(Bytes::from_static(c.as_bytes()))?).unwrap());
        }
        out.push_str(std::str::from_utf8(&p.end()?).unwrap());
        Ok(out)
    }

    #[test]
    fn forwards_bytes_unchanged_and_accepts_done_split_anywhere() {
        let sse = "data: {\"id\":\"chatcmpl-1\",\"choices\":[]}\n\ndata: [DONE]\n\n";
        for split in 0..sse.len() {
            let (a, b) = sse.split_at(split);
            let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
            let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
            assert_eq!(feed(true, &[a, b]).unwrap(), sse, "split at {split}");
        }
        assert!(feed(true, &["data: {}\r\n\r\ndata:[DONE]\r\n\r\n"]).is_ok());
    }

    #[test]
    fn a_stream_without_done_is_truncated() {
        let e = feed(true, &["data: {\"choices\":[]}\n\n"]).unwrap_err();
        assert_eq!(e.error.code.as_deref(), Some("stream_interrupted"));
        assert!(feed(true, &["data: {\"content\":\"[DONE]\"}\n\n"]).is_err());
    }

    const ROLE: &str = "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    const TOKEN: &str =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";

    /// What each call returns for `chunks`, fed one at a time.
    fn calls(chunks: &[&str]) -> Vec<Result<String, UpstreamError>> {
        let mut p = PassThrough::new(true);
        chunks
            .iter()
            .map(|c| {
                p.chunk(Bytes::from(c.to_string()))
                    .map(|b| String::from_utf8(b.to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn an_error_before_the_first_token_fails_the_attempt_and_later_ones_pass() {
        let first = feed(
            true,
            &[
                "data: {\"error\":{\"message\":\"slow down\",",
                "\"type\":\"rate_limit_error\",\"code\":null}}\n\n",
            ],
        );
        let e = first.unwrap_err();
        assert_eq!((e.status, e.error.message.as_str()), (429, "slow down"));
        // After a role-only chunk, still before any token.
        let after_role = calls(&[ROLE, "data: {\"error\":{\"message\":\"boom\"}}\n\n"]);
        assert_eq!(after_role[0].as_deref().ok(), Some(""));
        assert_eq!(after_role[1].as_ref().unwrap_err().error.message, "boom");
        let later = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n";
        assert_eq!(feed(true, &[later]).unwrap(), later);
    }

    #[test]
    fn a_role_chunk_and_keep_alives_are_held_then_sent_verbatim_with_the_first_token() {
        let out = calls(&[
            ROLE,
            ": keep-alive\n\n",
            &TOKEN[..20],
            &TOKEN[20..],
            "data: [DONE]\n\n",
        ]);
        let out: Vec<&str> = out.iter().map(|r| r.as_deref().unwrap()).collect();
        assert_eq!(
            out,
            [
                "",
                "",
                "",
                &format!("{ROLE}: keep-alive\n\n{TOKEN}")[..],
                "data: [DONE]\n\n"
            ]
        );
        // Reasoning, refusals and tool calls are tokens too.
        for delta in [
            r#"{"reasoning_content":"hm"}"#,
            r#"{"reasoning":"hm"}"#,
            r#"{"refusal":"no"}"#,
            r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}"#,
        ] {
            let event = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n");
            assert_eq!(
                calls(&[ROLE, &event])[1].as_deref().unwrap(),
                format!("{ROLE}{event}")
            );
        }
    }

    #[test]
    fn a_stream_without_content_commits_at_its_finish_usage_or_done() {
        let finish =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0,\"total_tokens\":1}}\n\n";
        for last in [finish, usage, "data: [DONE]\n\n"] {
            assert_eq!(
                calls(&[ROLE, last])[1].as_deref().unwrap(),
                format!("{ROLE}{last}")
            );
        }
        // Azure's prompt filter results and empty choices are not a token.
        let filter = "data: {\"choices\":[],\"prompt_filter_results\":[{\"prompt_index\":0}]}\n\n";
        assert_eq!(calls(&[filter])[0].as_deref().unwrap(), "");
        // A stream that ends held: released at its end, and judged by it.
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p
            .chunk(Bytes::from_static(b"data: [DONE]"))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap(), format!("{ROLE}data: [DONE]"));
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p.end().is_err());
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p
            .chunk(Bytes::from_static(
                b"data: {\"error\":{\"message\":\"late\"}}"
            ))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap_err().error.message, "late");
    }

    #[test]
    fn comments_before_the_first_data_event_decide_nothing() {
        let error = "data: {\"error\":{\"message\":\"Provider returned error\",\"code\":502}}\n\n";
        for comment in [
            ": OPENROUTER PROCESSING\n\n",
            ":\n\n",
            "\n\n",
            ": ping\r\n\r\n",
        ] {
            let out = calls(&[comment, error]);
            assert_eq!(out[0].as_deref().unwrap(), "", "{comment:?}");
            assert_eq!(
                out[1].as_ref().unwrap_err().error.message,
                "Provider returned error",
                "{comment:?}"
            );
            assert_eq!(
                feed(true, &[comment, TOKEN, "data: [DONE]\n\n"]).unwrap(),
                format!("{comment}{TOKEN}data: [DONE]\n\n")
            );
        }
    }

    #[test]
    fn the_core_does_not_commit_on_a_role_chunk_from_a_stalled_upstream() {
        use crate::core::host::{BodyError, UpstreamBody};
        use crate::core::stream::commit;
        use futures_util::{stream, FutureExt, StreamExt};
        let stalled = |chunks: Vec<&'static str>| -> UpstreamBody {
            let items: Vec<Result<Bytes, BodyError>> =
                chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
            Box::new(stream::iter(items).chain(stream::pending()))
        };
        let mut p = PassThrough::new(true);
        let mut body = stalled(vec![ROLE, ": keep-alive\n\n"]);
        // Still waiting for a token: the failover loop's first-token deadline decides.
        assert!(commit(&mut p, &mut body).now_or_never().is_none());
        let mut p = PassThrough::new(true);
        let mut body = stalled(vec![ROLE, TOKEN]);
        let committed = commit(&mut p, &mut body)
            .now_or_never()
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(committed.first, format!("{ROLE}{TOKEN}"));
        assert!(p.relays());
    }

    #[test]
    fn the_first_token_is_held_until_its_event_is_complete() {
        let mut p = PassThrough::new(true);
        assert!(p
            .chunk(Bytes::from_static(
                b"data: {\"choices\":[{\"delta\":{\"content\""
            ))
            .unwrap()
            .is_empty());
        assert!(!p.relays());
        assert_eq!(
            &p.chunk(Bytes::from_static(b":\"a\"}}]}\n\ndata: x"))
                .unwrap()[..],
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: x"
        );
        assert!(p.relays());
        assert_eq!(&p.chunk(Bytes::from_static(b"y")).unwrap()[..], b"y");
    }

    #[test]
    fn json_bodies_need_no_terminator() {
        assert_eq!(feed(false, &["{\"id\":", "1}"]).unwrap(), "{\"id\":1}");
    }

    #[test]
    fn tool_call_ids_minted_elsewhere_fit_openai_and_still_pair_up() {
        static TARGET: Target = Target {
            provider: "openai",
            model: "gpt-4o-mini",
            base_url: "https://api.openai.com/v1",
            vias: &[crate::core::route::Via::Key("OPENAI_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let signed = format!(
            "call_JPozaonvK7yzvdIPrJ7FyAk_0__thought__{}",
            "CiQB0e2Kb+/x=".repeat(40)
        );
        let wai =
            "chatcmpl-tool-0123456789abcdef0123456789abcdef::cf-wai-tool-call::00ff00ff00ff00ff";
        let request = serde_json::json!({"model": "fast", "temperature": 0, "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": signed, "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": wai, "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": signed, "content": "12"},
            {"role": "tool", "tool_call_id": wai, "content": "noon"}
        ], "stream": false});
        let req = ChatRequest::parse(request.to_string().as_bytes()).unwrap();
        let prepared = OpenAi::prepare(&TARGET, &req, &|_| None).unwrap();
        let sent: Value = serde_json::from_slice(&prepared.body).unwrap();
        let calls = sent["messages"][1]["tool_calls"].as_array().unwrap();
        for (call, result) in calls
            .iter()
            .zip([&sent["messages"][2], &sent["messages"][3]])
        {
            let id = call["id"].as_str().unwrap();
            assert!(id.len() <= 40, "{id}");
            assert_eq!(result["tool_call_id"], id);
        }
        assert_eq!(calls[0]["id"], "call_JPozaonvK7yzvdIPrJ7FyAk_0");
        // Everything else as sent, in order, with the target's model.
        let mut expected = request.clone();
        expected["model"] = "gpt-4o-mini".into();
        expected["messages"] = sent["messages"].clone();
        assert_eq!(prepared.body, serde_json::to_vec(&expected).unwrap());
    }

    #[test]
    fn a_messages_request_is_fitted_to_the_model_and_budgets_are_clamped() {
        const fn target(provider: &'static str, model: &'static str) -> Target {
            Target {
                provider,
                model,
                base_url: "https://api.openai.com/v1",
                vias: &[crate::core::route::Via::Key("K")],
                max_tokens: None,
                max_output_tokens: None,
                account_id: None,
                anthropic_betas: None,
                policy: crate::core::route::TargetPolicy::DEFAULT,
            }
        }
        static GPT4O: Target = target("openai", "gpt-4o");
        static O3: Target = target("openai", "o3");
        static COMPAT: Target = target("openai-compatible", "meta/llama-3.3-70b");
        let messages = br#"{"model":"claude-x","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}"#;
        let headers: Vec<(String, String)> = Vec::new();
        let req = crate::front::anthropic::chat_request(
            messages,
            &headers,
            crate::core::request::Operation::Complete,
        )
        .unwrap();
        let body = |target: &'static Target| {
            let prepared = OpenAi::prepare(target, &req, &|_| None).unwrap();
            String::from_utf8(prepared.body.to_vec()).unwrap()
        };
        // Above gpt-4o's 16,384 output tokens; no reasoning_effort for a model without it.
        assert_eq!(
            body(&GPT4O),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":16384}"#
        );
        assert_eq!(
            body(&O3),
            r#"{"model":"o3","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":32000,"reasoning_effort":"low"}"#
        );
        assert_eq!(
            body(&COMPAT),
            r#"{"model":"meta/llama-3.3-70b","messages":[{"role":"user","content":"hi"}],"max_tokens":32000}"#
        );
        // A client's own OpenAI request keeps its fields; only an impossible budget changes.
        let own = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":32000,"reasoning_effort":"low"}"#,
        )
        .unwrap();
        let prepared = OpenAi::prepare(&GPT4O, &own, &|_| None).unwrap();
        assert_eq!(
            &prepared.body[..],
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":16384,"reasoning_effort":"low"}"#
        );
    }

    #[test]
    fn request_replaces_model_and_sends_the_key_as_bearer() {
        static TARGET: Target = Target {
            provider: "openai-compatible",
            model: "nvidia/llama-3.1-nemotron-70b-instruct",
            base_url: "https://integrate.api.nvidia.com/v1",
            vias: &[crate::core::route::Via::Key("NVIDIA_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let req = ChatRequest::parse(
            br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        let prepared = OpenAi::prepare(&TARGET, &req, &|_| None).unwrap();
        let up = OpenAi::request(&TARGET, &prepared, "nv-secret");
        assert_eq!(
            up.url,
            "https://integrate.api.nvidia.com/v1/chat/completions"
        );
        assert_eq!(
            up.headers[0],
            ("authorization", "Bearer nv-secret".to_owned())
        );
        assert_eq!(
            &up.body[..],
            br#"{"model":"nvidia/llama-3.1-nemotron-70b-instruct","messages":[{"role":"user","content":"hi"}],"stream":true}"#
        );
    }
}
