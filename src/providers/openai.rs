//! OpenAI and OpenAI-compatible APIs: the request goes upstream with only `model` replaced,
//! and the response comes back byte for byte as it arrives.

use bytes::Bytes;

use crate::core::error::ErrorObject;
use crate::core::host::UpstreamRequest;
use crate::core::provider::{PrepareError, Provider, SecretLookup};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::UpstreamError;

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
        Ok(Prepared {
            body: Bytes::from(request.to_json_with_model(target.model)),
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

/// Forwards every chunk unchanged. A stream's first event is held back until it is complete,
/// so that an upstream answering 200 with an in-band error first (some OpenAI-compatible
/// servers report rate limits that way) still fails over; after it, bytes go out as they come,
/// and only the last few are watched, to tell a stream that ended with `data: [DONE]` from
/// one that was cut off.
pub struct PassThrough {
    stream: bool,
    /// The first event, while incomplete; `None` once it has been released.
    head: Option<Vec<u8>>,
    tail: Vec<u8>,
}

const DONE: &[u8] = b"[DONE]";
const TAIL: usize = 32;
/// A first event longer than this is released without inspection.
const MAX_HEAD: usize = 64 * 1024;

impl PassThrough {
    /// A pass-through for a streamed (`true`) or whole JSON response.
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            head: stream.then(Vec::new),
            tail: Vec::with_capacity(TAIL * 2),
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
            return Ok(upstream);
        }
        let out = match self.head.as_mut() {
            None => upstream,
            Some(head) => {
                head.extend_from_slice(&upstream);
                match first_event_end(head) {
                    None if head.len() < MAX_HEAD => return Ok(Bytes::new()),
                    None => {}
                    Some(end) => {
                        if let Some(error) = in_band_error(&head[..end]) {
                            return Err(error);
                        }
                    }
                }
                Bytes::from(self.head.take().unwrap_or_default())
            }
        };
        self.remember_tail(&out);
        Ok(out)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        // A stream that was one unterminated event is released here, then judged by its end.
        let held = self.head.take().filter(|h| !h.is_empty());
        if let Some(head) = &held {
            if let Some(error) = in_band_error(head) {
                return Err(error);
            }
            self.remember_tail(head);
        }
        if self.stream && !self.ended_with_done() {
            return Err(UpstreamError::truncated(
                "the upstream closed the stream before `data: [DONE]`",
            ));
        }
        Ok(held.map(Bytes::from).unwrap_or_default())
    }

    /// Once the first event is out, every byte passes unchanged (only the end is judged).
    fn relays(&self) -> bool {
        self.head.is_none()
    }
}

/// Where the first SSE event ends (after its blank line), if it is complete.
fn first_event_end(bytes: &[u8]) -> Option<usize> {
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

/// An OpenAI-style `data: {"error": {...}}` event, as the failure it reports.
fn in_band_error(event: &[u8]) -> Option<UpstreamError> {
    let text = std::str::from_utf8(event).ok()?;
    let data: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim_start)
        .collect::<Vec<_>>()
        .join("\n");
    let value: serde_json::Value = serde_json::from_str(&data).ok()?;
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

    fn feed(stream: bool, chunks: &[&'static str]) -> Result<String, UpstreamError> {
        let mut p = PassThrough::new(stream);
        let mut out = String::new();
        for c in chunks {
            out.push_str(std::str::from_utf8(&p.chunk(Bytes::from_static(c.as_bytes()))?).unwrap());
        }
        p.end()?;
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

    #[test]
    fn an_error_as_the_first_event_fails_the_attempt_and_later_ones_pass() {
        let first = feed(
            true,
            &[
                "data: {\"error\":{\"message\":\"slow down\",",
                "\"type\":\"rate_limit_error\",\"code\":null}}\n\n",
            ],
        );
        let e = first.unwrap_err();
        assert_eq!((e.status, e.error.message.as_str()), (429, "slow down"));
        let later = "data: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n";
        assert_eq!(feed(true, &[later]).unwrap(), later);
    }

    #[test]
    fn the_first_event_is_held_until_complete() {
        let mut p = PassThrough::new(true);
        assert!(p
            .chunk(Bytes::from_static(b"data: {\"a\""))
            .unwrap()
            .is_empty());
        assert_eq!(
            &p.chunk(Bytes::from_static(b":1}\n\ndata: x")).unwrap()[..],
            b"data: {\"a\":1}\n\ndata: x"
        );
        assert_eq!(&p.chunk(Bytes::from_static(b"y")).unwrap()[..], b"y");
    }

    #[test]
    fn json_bodies_need_no_terminator() {
        assert_eq!(feed(false, &["{\"id\":", "1}"]).unwrap(), "{\"id\":1}");
    }

    #[test]
    fn request_replaces_model_and_sends_the_key_as_bearer() {
        static TARGET: Target = Target {
            provider: "openai-compatible",
            model: "nvidia/llama-3.1-nemotron-70b-instruct",
            base_url: "https://integrate.api.nvidia.com/v1",
            vias: &[crate::core::route::Via::Key("NVIDIA_KEY_1")],
            max_tokens: None,
            account_id: None,
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
