//! OpenAI and OpenAI-compatible APIs: the request goes upstream with only `model` replaced,
//! and the response comes back byte for byte as it arrives.

use bytes::Bytes;

use crate::core::host::UpstreamRequest;
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::{InBandError, Translate};

/// The upstream body: the client's request with the target's model.
pub fn body(target: &Target, request: &ChatRequest) -> Bytes {
    Bytes::from(request.to_json_with_model(target.model))
}

/// `POST {base_url}/chat/completions` with the key as a bearer token.
pub fn request(target: &Target, body: &Bytes, key: &str, stream: bool) -> UpstreamRequest {
    UpstreamRequest {
        url: format!("{}/chat/completions", target.base_url),
        headers: vec![
            ("authorization", format!("Bearer {key}")),
            ("content-type", "application/json".to_owned()),
            (
                "accept",
                if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                }
                .to_owned(),
            ),
        ],
        body: body.clone(),
    }
}

/// Forwards every chunk unchanged. For a stream it watches only the last few bytes, to tell
/// a stream that ended with `data: [DONE]` from one that was cut off.
pub struct PassThrough {
    stream: bool,
    tail: Vec<u8>,
}

const DONE: &[u8] = b"[DONE]";
const TAIL: usize = 32;

impl PassThrough {
    /// A pass-through for a streamed (`true`) or whole JSON response.
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            tail: Vec::with_capacity(TAIL * 2),
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
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, InBandError> {
        if self.stream {
            self.tail
                .extend_from_slice(&upstream[upstream.len().saturating_sub(TAIL)..]);
            if self.tail.len() > TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
        Ok(upstream)
    }

    fn end(&mut self) -> Result<Bytes, InBandError> {
        if self.stream && !self.ended_with_done() {
            return Err(InBandError::truncated(
                "the upstream closed the stream before `data: [DONE]`",
            ));
        }
        Ok(Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stream: bool, chunks: &[&'static str]) -> Result<String, InBandError> {
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
    fn json_bodies_need_no_terminator() {
        assert_eq!(feed(false, &["{\"id\":", "1}"]).unwrap(), "{\"id\":1}");
    }

    #[test]
    fn request_replaces_model_and_sends_the_key_as_bearer() {
        let target = Target {
            provider: crate::core::route::Provider::OpenAiCompatible,
            model: "nvidia/llama-3.1-nemotron-70b-instruct",
            base_url: "https://integrate.api.nvidia.com/v1",
            api_keys: &["NVIDIA_KEY_1"],
            max_tokens: None,
        };
        let req = ChatRequest::parse(
            br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        let up = request(&target, &body(&target, &req), "nv-secret", true);
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
