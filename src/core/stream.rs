//! Turning an upstream body into the client's body as it arrives.
//!
//! A provider supplies a [`Translate`] (identity for OpenAI pass-through). The core feeds it
//! upstream chunks until it yields the first client bytes: that is the commit point. A
//! failure before it is an attempt failure, so failover stays transparent; after it, the
//! client has bytes, so a streamed response is closed with an OpenAI in-stream error event and
//! `data: [DONE]` (never a fake `finish_reason`), and a JSON body is aborted.

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};

use crate::core::error::ErrorObject;
use crate::core::host::UpstreamBody;
use crate::core::http::{BodyStream, StreamAbort};
use crate::core::verdict::UpstreamError;

/// Translates an upstream response body, chunk by chunk, into the client's body.
pub trait Translate {
    /// Client bytes for one upstream chunk (possibly empty while an event is incomplete).
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError>;
    /// Client bytes once the upstream body has ended; an error if it ended too early.
    fn end(&mut self) -> Result<Bytes, UpstreamError>;
}

/// Largest non-streaming upstream body a translator collects; far above any real completion,
/// it only bounds memory.
pub const MAX_WHOLE_BODY: usize = 32 * 1024 * 1024;

/// Translates a non-streaming body, which can only be converted once complete: collects it
/// (up to [`MAX_WHOLE_BODY`]) and hands it to `convert` when the upstream ends.
pub struct WholeBody<F> {
    body: Vec<u8>,
    convert: F,
}

impl<F: FnMut(&[u8]) -> Result<Bytes, UpstreamError>> WholeBody<F> {
    /// A translator that will pass the whole body to `convert`.
    pub fn new(convert: F) -> Self {
        Self {
            body: Vec::new(),
            convert,
        }
    }
}

impl<F: FnMut(&[u8]) -> Result<Bytes, UpstreamError>> Translate for WholeBody<F> {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        if self.body.len() + upstream.len() > MAX_WHOLE_BODY {
            return Err(UpstreamError::truncated(format!(
                "the upstream response is larger than {MAX_WHOLE_BODY} bytes"
            )));
        }
        self.body.extend_from_slice(&upstream);
        Ok(Bytes::new())
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        (self.convert)(&self.body)
    }
}

/// How the client's body is framed, which decides what a late failure looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`: a late failure becomes an error event and `data: [DONE]`.
    Sse,
    /// One JSON document: a late failure aborts the connection.
    Json,
}

/// Why an attempt failed before anything reached the client.
#[derive(Debug, Clone, PartialEq)]
pub enum EarlyFailure {
    /// The upstream reported an error in-band (or its body was cut or unreadable).
    InBand(UpstreamError),
    /// Reading the body failed (connection reset, timeout).
    Body(String),
}

/// The first client bytes of a committed attempt.
pub struct Committed {
    /// Bytes to send first.
    pub first: Bytes,
    /// Whether the upstream body is already fully consumed.
    pub ended: bool,
}

/// Feeds upstream chunks into `translator` until it produces client bytes.
pub async fn commit(
    translator: &mut dyn Translate,
    body: &mut UpstreamBody,
) -> Result<Committed, EarlyFailure> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                let out = translator.chunk(chunk).map_err(EarlyFailure::InBand)?;
                if !out.is_empty() {
                    return Ok(Committed {
                        first: out,
                        ended: false,
                    });
                }
            }
            Some(Err(e)) => return Err(EarlyFailure::Body(e.0)),
            None => {
                let out = translator.end().map_err(EarlyFailure::InBand)?;
                if out.is_empty() {
                    return Err(EarlyFailure::InBand(UpstreamError::truncated(
                        "the upstream response ended before any data",
                    )));
                }
                return Ok(Committed {
                    first: out,
                    ended: true,
                });
            }
        }
    }
}

/// The SSE bytes that close a stream after a late failure: finish any partial event, then an
/// OpenAI error event (the SDKs raise on a payload with an `error` key), then `[DONE]`.
pub fn sse_error_tail(error: &ErrorObject, output_tail: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    if !output_tail.is_empty() && !output_tail.ends_with(b"\n\n") {
        out.extend_from_slice(if output_tail.ends_with(b"\n") {
            b"\n"
        } else {
            b"\n\n"
        });
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&error.to_json());
    out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
    out.freeze()
}

/// Called once, with the reason, when an upstream fails after the commit point.
pub type LateFailureHook = Box<dyn FnOnce(&str)>;

struct Pump {
    pending: Option<Bytes>,
    translator: Box<dyn Translate>,
    body: UpstreamBody,
    ended: bool,
    done: bool,
    framing: Framing,
    tail: [u8; 2],
    tail_len: usize,
    on_late_failure: Option<LateFailureHook>,
}

impl Pump {
    fn remember(&mut self, out: &[u8]) {
        for &b in &out[out.len().saturating_sub(2)..] {
            self.tail = [self.tail[1], b];
            self.tail_len = (self.tail_len + 1).min(2);
        }
    }

    fn fail(&mut self, error: UpstreamError) -> Option<Result<Bytes, StreamAbort>> {
        self.done = true;
        if let Some(log) = self.on_late_failure.take() {
            log(&error.error.message);
        }
        match self.framing {
            Framing::Sse => Some(Ok(sse_error_tail(
                &error.error,
                &self.tail[2 - self.tail_len..],
            ))),
            Framing::Json => Some(Err(StreamAbort(error.error.message))),
        }
    }

    async fn next(&mut self) -> Option<Result<Bytes, StreamAbort>> {
        if let Some(first) = self.pending.take() {
            self.remember(&first);
            return Some(Ok(first));
        }
        while !self.done {
            if self.ended {
                self.done = true;
                return None;
            }
            let result = match self.body.next().await {
                Some(Ok(chunk)) => self.translator.chunk(chunk),
                Some(Err(e)) => Err(UpstreamError::truncated(format!(
                    "the upstream connection failed mid-response: {}",
                    e.0
                ))),
                None => {
                    self.ended = true;
                    self.translator.end()
                }
            };
            match result {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => {
                    self.remember(&out);
                    return Some(Ok(out));
                }
                Err(error) => return self.fail(error),
            }
        }
        None
    }
}

/// The client's body: `first`, then the rest of the upstream body through `translator`.
/// `on_late_failure` is called once, with the reason, if the upstream fails after commit.
pub fn client_body(
    committed: Committed,
    translator: Box<dyn Translate>,
    body: UpstreamBody,
    framing: Framing,
    on_late_failure: LateFailureHook,
) -> BodyStream {
    let pump = Pump {
        pending: Some(committed.first),
        translator,
        body,
        ended: committed.ended,
        done: false,
        framing,
        tail: [0; 2],
        tail_len: 0,
        on_late_failure: Some(on_late_failure),
    };
    Box::pin(stream::unfold(pump, |mut pump| async move {
        let item = pump.next().await?;
        Some((item, pump))
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::host::BodyError;

    /// An upstream body made of the given chunks, optionally failing after them.
    pub fn body(chunks: &[&'static str], fail: Option<&str>) -> UpstreamBody {
        let mut items: Vec<Result<Bytes, BodyError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        if let Some(f) = fail {
            items.push(Err(BodyError(f.to_owned())));
        }
        Box::pin(stream::iter(items))
    }

    struct Identity;
    impl Translate for Identity {
        fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
            Ok(upstream)
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            Ok(Bytes::new())
        }
    }

    async fn collect(mut s: BodyStream) -> (String, Option<StreamAbort>) {
        let mut out = String::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.push_str(std::str::from_utf8(&b).unwrap()),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("test streams are ready immediately")
    }

    #[test]
    fn commit_skips_empty_chunks_and_fails_on_empty_body() {
        let mut b = body(&["", "data: x\n\n"], None);
        let c = run(commit(&mut Identity, &mut b)).ok().unwrap();
        assert_eq!(&c.first[..], b"data: x\n\n");
        let mut empty = body(&[], None);
        assert!(matches!(
            run(commit(&mut Identity, &mut empty)),
            Err(EarlyFailure::InBand(_))
        ));
        let mut broken = body(&[], Some("reset"));
        assert_eq!(
            run(commit(&mut Identity, &mut broken)).err(),
            Some(EarlyFailure::Body("reset".into()))
        );
    }

    #[test]
    fn late_sse_failure_closes_the_partial_event_then_errors_then_done() {
        let mut b = body(&["data: {\"a\":1}\n\n", "data: {\"b\""], Some("reset"));
        let c = run(commit(&mut Identity, &mut b)).ok().unwrap();
        let logged = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        let sink = logged.clone();
        let s = client_body(
            c,
            Box::new(Identity),
            b,
            Framing::Sse,
            Box::new(move |m| sink.borrow_mut().push_str(m)),
        );
        let (out, abort) = run(collect(s));
        assert_eq!(abort, None);
        assert_eq!(
            out,
            "data: {\"a\":1}\n\ndata: {\"b\"\n\ndata: {\"error\":{\"message\":\"the upstream connection failed mid-response: reset\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(
            logged.borrow().as_str(),
            "the upstream connection failed mid-response: reset"
        );
    }

    #[test]
    fn late_json_failure_aborts() {
        let mut b = body(&["{\"id\":"], Some("reset"));
        let c = run(commit(&mut Identity, &mut b)).ok().unwrap();
        let (out, abort) = run(collect(client_body(
            c,
            Box::new(Identity),
            b,
            Framing::Json,
            Box::new(|_| {}),
        )));
        assert_eq!(out, "{\"id\":");
        assert!(abort.is_some());
    }
}
