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
    /// Whether every later upstream chunk goes to the client unchanged (a pass-through after
    /// its first event), so that a host may carry the rest of the body itself.
    fn relays(&self) -> bool {
        false
    }
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
            return Err(too_large());
        }
        self.body.extend_from_slice(&upstream);
        Ok(Bytes::new())
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        (self.convert)(&self.body)
    }
}

/// The error for a whole body over [`MAX_WHOLE_BODY`].
pub fn too_large() -> UpstreamError {
    UpstreamError::truncated(format!(
        "the upstream response is larger than {MAX_WHOLE_BODY} bytes"
    ))
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

/// The error a late failure of the upstream connection is reported as.
fn interrupted(reason: &str) -> UpstreamError {
    UpstreamError::truncated(format!(
        "the upstream connection failed mid-response: {reason}"
    ))
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

/// The logic of a client body after its first bytes, without its I/O: fed what the upstream
/// does (a chunk, its end, a failure), it says what the client gets next. The core's own pump
/// ([`ClientBody::into_stream`]) drives it; a host that reads the upstream itself (the Worker,
/// in the runtime's JavaScript) drives it directly, a call per chunk.
pub struct BodyDriver {
    translator: Box<dyn Translate>,
    framing: Framing,
    /// The last two bytes sent, to close a partial SSE event before an error event.
    tail: [u8; 2],
    tail_len: usize,
    on_late_failure: Option<LateFailureHook>,
    done: bool,
}

impl BodyDriver {
    /// The driver of what follows `committed`.
    fn new(
        committed: &Committed,
        translator: Box<dyn Translate>,
        framing: Framing,
        on_late_failure: LateFailureHook,
    ) -> Self {
        let mut driver = Self {
            translator,
            framing,
            tail: [0; 2],
            tail_len: 0,
            on_late_failure: Some(on_late_failure),
            done: committed.ended,
        };
        driver.remember(&committed.first);
        driver
    }

    /// Whether the body is over (ended, failed or aborted): nothing more is to be read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// How the client's body is framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The client's bytes for one upstream chunk (possibly none yet).
    pub fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, StreamAbort> {
        if self.done {
            return Ok(Bytes::new());
        }
        let result = self.translator.chunk(upstream);
        self.step(result)
    }

    /// The client's last bytes, the upstream body having ended.
    pub fn end(&mut self) -> Result<Bytes, StreamAbort> {
        if self.done {
            return Ok(Bytes::new());
        }
        let result = self.translator.end();
        self.done = true;
        self.step(result)
    }

    /// The client's last bytes, reading the upstream body having failed with `reason`.
    pub fn fail(&mut self, reason: &str) -> Result<Bytes, StreamAbort> {
        if self.done {
            return Ok(Bytes::new());
        }
        self.step(Err(interrupted(reason)))
    }

    fn step(&mut self, result: Result<Bytes, UpstreamError>) -> Result<Bytes, StreamAbort> {
        match result {
            Ok(out) => {
                self.remember(&out);
                Ok(out)
            }
            Err(error) => {
                self.done = true;
                if let Some(log) = self.on_late_failure.take() {
                    log(&error.error.message);
                }
                match self.framing {
                    Framing::Sse => Ok(sse_error_tail(
                        &error.error,
                        &self.tail[2 - self.tail_len..],
                    )),
                    Framing::Json => Err(StreamAbort(error.error.message)),
                }
            }
        }
    }

    fn remember(&mut self, out: &[u8]) {
        for &b in &out[out.len().saturating_sub(2)..] {
            self.tail = [self.tail[1], b];
            self.tail_len = (self.tail_len + 1).min(2);
        }
    }
}

/// The core's pump: `pending`, then what `driver` makes of the rest of `body`.
struct Pump {
    pending: Option<Bytes>,
    driver: BodyDriver,
    body: UpstreamBody,
    finished: bool,
}

impl Pump {
    async fn next(&mut self) -> Option<Result<Bytes, StreamAbort>> {
        if let Some(first) = self.pending.take() {
            return Some(Ok(first));
        }
        while !self.finished {
            let step = match self.body.next().await {
                Some(Ok(chunk)) => self.driver.chunk(chunk),
                Some(Err(e)) => self.driver.fail(&e.0),
                None => self.driver.end(),
            };
            self.finished = self.driver.is_done();
            match step {
                Ok(out) if out.is_empty() => continue,
                Ok(out) => return Some(Ok(out)),
                Err(abort) => {
                    self.finished = true;
                    return Some(Err(abort));
                }
            }
        }
        None
    }
}

/// An attempt's body once it has produced its first client bytes: those bytes, and what
/// produces the rest. A host sends it one of three ways: pumped through the core
/// ([`ClientBody::into_stream`], any host); or, when the upstream body is the host's own,
/// read by the host itself and fed to a [`BodyDriver`] ([`ClientBody::take_driver`]), or, for a
/// pass-through, carried unchanged ([`ClientBody::take_rest`]).
pub struct ClientBody {
    committed: Committed,
    translator: Box<dyn Translate>,
    body: UpstreamBody,
    framing: Framing,
    on_late_failure: LateFailureHook,
}

/// What a host needs to read the rest of a body itself: the bytes to send first, the rest of
/// the upstream body as the host's own type `T`, and the driver to feed it to.
pub struct DriverParts<T> {
    /// The bytes to send first.
    pub first: Bytes,
    /// The rest of the upstream body (already ended when `driver.is_done()`).
    pub rest: T,
    /// What the client gets from the rest.
    pub driver: BodyDriver,
}

/// What a host needs to carry the rest of a pass-through itself, the rest being its own `T`.
pub struct RelayParts<T> {
    /// The bytes to send first.
    pub first: Bytes,
    /// The rest of the upstream body, to send unchanged.
    pub rest: T,
    /// How the body is framed: what a failure of `rest` turns into ([`Framing::failure_tail`]).
    pub framing: Framing,
    /// To call once, with the reason, if `rest` fails.
    pub on_late_failure: LateFailureHook,
}

impl ClientBody {
    /// `committed`, then the rest of `body` through `translator`. `on_late_failure` is called
    /// once, with the reason, if the upstream fails after the commit point.
    pub fn new(
        committed: Committed,
        translator: Box<dyn Translate>,
        body: UpstreamBody,
        framing: Framing,
        on_late_failure: LateFailureHook,
    ) -> Self {
        Self {
            committed,
            translator,
            body,
            framing,
            on_late_failure,
        }
    }

    /// How the client's body is framed.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Whether the rest goes to the client unchanged (a pass-through after its first event).
    pub fn relays(&self) -> bool {
        self.translator.relays() && !self.committed.ended
    }

    /// The client's bytes as a stream, every upstream chunk through the translator.
    pub fn into_stream(self) -> BodyStream {
        let (first, driver, body) = self.into_driver();
        let pump = Pump {
            pending: Some(first),
            finished: driver.is_done(),
            driver,
            body,
        };
        Box::pin(stream::unfold(pump, |mut pump| async move {
            let item = pump.next().await?;
            Some((item, pump))
        }))
    }

    /// The parts for reading the rest in the host, if the upstream body is the host's own `T`;
    /// else the body, unchanged.
    pub fn take_driver<T: 'static>(self) -> Result<DriverParts<T>, ClientBody> {
        let (this, rest) = self.take::<T>()?;
        let (first, driver, _) = this.into_driver();
        Ok(DriverParts {
            first,
            rest,
            driver,
        })
    }

    /// The first bytes, the driver of what follows them, and the upstream body.
    fn into_driver(self) -> (Bytes, BodyDriver, UpstreamBody) {
        let driver = BodyDriver::new(
            &self.committed,
            self.translator,
            self.framing,
            self.on_late_failure,
        );
        (self.committed.first, driver, self.body)
    }

    /// The parts for carrying the rest of a pass-through unchanged, if the upstream body is the
    /// host's own `T`; else the body, unchanged. (Check [`ClientBody::relays`] first.)
    pub fn take_rest<T: 'static>(self) -> Result<RelayParts<T>, ClientBody> {
        let (this, rest) = self.take::<T>()?;
        Ok(RelayParts {
            first: this.committed.first,
            rest,
            framing: this.framing,
            on_late_failure: this.on_late_failure,
        })
    }

    /// The upstream body as `T`, with the rest of the parts (their body emptied).
    fn take<T: 'static>(self) -> Result<(ClientBody, T), ClientBody> {
        if !self.body.as_any().is::<T>() {
            return Err(self);
        }
        let Self {
            committed,
            translator,
            body,
            framing,
            on_late_failure,
        } = self;
        let rest = Self {
            committed,
            translator,
            body: Box::new(stream::empty()),
            framing,
            on_late_failure,
        };
        match body.into_any().downcast::<T>() {
            Ok(body) => Ok((rest, *body)),
            // Cannot happen (the type was just checked); were it to, the client would get the
            // first bytes and the translator's verdict on a body that ended there.
            Err(_) => Err(rest),
        }
    }
}

impl Framing {
    /// What ends a body whose upstream failed with `reason` after bytes the core did not
    /// watch (a relay the host carried): for SSE a blank line closes any partial event (an
    /// extra one is harmless between events), then the error event and `[DONE]`; `None` for
    /// JSON, which is aborted.
    pub fn failure_tail(self, reason: &str) -> Option<Bytes> {
        match self {
            Framing::Sse => {
                let mut tail = BytesMut::from(&b"\n\n"[..]);
                tail.extend_from_slice(&sse_error_tail(&interrupted(reason).error, b"\n\n"));
                Some(tail.freeze())
            }
            Framing::Json => None,
        }
    }
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
        Box::new(stream::iter(items))
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
        let s = ClientBody::new(
            c,
            Box::new(Identity),
            b,
            Framing::Sse,
            Box::new(move |m| sink.borrow_mut().push_str(m)),
        )
        .into_stream();
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
        let (out, abort) = run(collect(
            ClientBody::new(c, Box::new(Identity), b, Framing::Json, Box::new(|_| {}))
                .into_stream(),
        ));
        assert_eq!(out, "{\"id\":");
        assert!(abort.is_some());
    }
}
