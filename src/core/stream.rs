//! Turning an upstream body into the client's body as it arrives.
//!
//! A provider supplies a [`Translate`] (identity for OpenAI pass-through). The core feeds it
//! upstream chunks until it yields the first client bytes: that is the commit point, and a
//! translator reaches it only with the first token (see [`Translate`]). A failure before it is
//! an attempt failure, so failover stays transparent (and the failover loop races the commit
//! against its first-token deadline); after it, the client has bytes, so a streamed response is
//! closed with an OpenAI in-stream error event and `data: [DONE]` (never a fake
//! `finish_reason`; see [`crate::sse::cut`] for a failure in the middle of an event), and a JSON
//! body is aborted.

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use crate::core::error::ErrorObject;
use crate::core::host::UpstreamBody;
use crate::core::http::{BodyStream, StreamAbort};
use crate::core::meter::BodyEnd;
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;
use crate::front::anthropic::error as anthropic_error;
use crate::sse::cut::{self, OpenEvent};

/// Translates an upstream response body, chunk by chunk, into the client's body.
///
/// A streaming translator writes nothing until the upstream sends its first token: an event
/// with text, reasoning, a refusal, a tool call, or a finish reason, usage or the stream's final
/// event (so a stream with no content at all still commits, at its end). Role-only chunks,
/// keep-alives, comments and empty events are held, and go out first, in order, with the first
/// token: until then, an in-band error or a stalled upstream is an attempt failure that fails
/// over. An error is returned from the call that finds it: before the first token, with
/// everything held dropped; after it, the output that came before it in the same upstream
/// piece is returned and the error is taken right after it ([`Translate::failure`], [`InOrder`]).
pub trait Translate {
    /// Client bytes for one upstream chunk (possibly empty while an event is incomplete, or
    /// before the first token).
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError>;
    /// Client bytes once the upstream body has ended (a last event without its blank line is
    /// read here); an error if it ended too early, or with an error.
    fn end(&mut self) -> Result<Bytes, UpstreamError>;
    /// A failure found after the output the last call returned, reported right after it.
    fn failure(&mut self) -> Option<UpstreamError> {
        None
    }
    /// The usage the upstream reported so far (complete once the body ended).
    fn usage(&self) -> Option<Metered> {
        None
    }
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
        collect_whole(&mut self.body, &upstream)?;
        Ok(Bytes::new())
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        (self.convert)(&self.body)
    }
}

/// Orders a translator's failure after the output that came before it in the same upstream
/// piece: while nothing has reached the client the output is dropped with it (the attempt
/// fails over); after that, the output is returned and the failure kept for
/// [`Translate::failure`] (or, if nobody takes it, for the next call).
#[derive(Debug, Default)]
pub struct InOrder {
    /// Client bytes were returned: from now on a failure is reported after them.
    sent: bool,
    /// A failure found while output was pending.
    deferred: Option<UpstreamError>,
}

impl InOrder {
    /// The failure kept from the previous call, to return before reading anything more.
    pub fn deferred(&mut self) -> Result<(), UpstreamError> {
        self.deferred.take().map_or(Ok(()), Err)
    }

    /// The failure kept after the last output ([`Translate::failure`]).
    pub fn take(&mut self) -> Option<UpstreamError> {
        self.deferred.take()
    }

    /// What a call returns: `out`, or `failure` (now, or kept to follow `out`).
    pub fn result(
        &mut self,
        out: Bytes,
        failure: Option<UpstreamError>,
    ) -> Result<Bytes, UpstreamError> {
        match failure {
            Some(e) if !self.sent || out.is_empty() => Err(e),
            Some(e) => {
                self.deferred = Some(e);
                Ok(out)
            }
            None => {
                self.sent |= !out.is_empty();
                Ok(out)
            }
        }
    }
}

/// Adds `piece` to a whole body being collected, unless that would take it past
/// [`MAX_WHOLE_BODY`] ([`too_large`]).
pub fn collect_whole(body: &mut Vec<u8>, piece: &[u8]) -> Result<(), UpstreamError> {
    if body.len() + piece.len() > MAX_WHOLE_BODY {
        return Err(too_large());
    }
    body.extend_from_slice(piece);
    Ok(())
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
    /// An Anthropic Messages event stream: a late failure becomes an `event: error` (the
    /// translators write whole events, so no event is ever open when it comes).
    AnthropicSse,
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

/// Feeds upstream chunks into `translator` until it produces client bytes (a failure that
/// follows them in the same piece is still the attempt's: nothing has reached the client).
pub async fn commit(
    translator: &mut dyn Translate,
    body: &mut UpstreamBody,
) -> Result<Committed, EarlyFailure> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                let out = translator.chunk(chunk).map_err(EarlyFailure::InBand)?;
                if let Some(failure) = translator.failure() {
                    return Err(EarlyFailure::InBand(failure));
                }
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
                if let Some(failure) = translator.failure() {
                    return Err(EarlyFailure::InBand(failure));
                }
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

/// The SSE bytes that close a stream after a late failure, `open` being the event the client
/// is in the middle of (`None` if unknown): the error, in an event the SDKs parse (they raise on
/// a payload with an `error` key), then `[DONE]` ([`cut::error_tail`]).
pub fn sse_error_tail(error: &ErrorObject, open: Option<&[u8]>) -> Bytes {
    // Serialising plain strings and options into a Vec cannot fail.
    let error = serde_json::to_vec(error).unwrap_or_default();
    Bytes::from(cut::error_tail(open, &error))
}

/// Called once, with the reason, when an upstream fails after the commit point.
pub type LateFailureHook = Box<dyn FnOnce(&str)>;

/// Calls a body's [`BodyEnd`] once: with the translator's usage when the body ends, or with
/// none when whatever holds it is dropped first.
#[derive(Default)]
pub struct EndGuard(Option<BodyEnd>);

impl EndGuard {
    /// A guard around `on_end` (none: a body nobody meters).
    pub fn new(on_end: Option<BodyEnd>) -> Self {
        Self(on_end)
    }

    /// Reports the body's end with `usage`, if not reported yet.
    pub fn finish(&mut self, usage: Option<Metered>) {
        if let Some(on_end) = self.0.take() {
            on_end(usage);
        }
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The logic of a client body after its first bytes, without its I/O: fed what the upstream
/// does (a chunk, its end, a failure), it says what the client gets next. The core's own pump
/// ([`ClientBody::into_stream`]) drives it; a host that reads the upstream itself (the Worker,
/// in the runtime's JavaScript) drives it directly, a call per chunk.
pub struct BodyDriver {
    translator: Box<dyn Translate>,
    framing: Framing,
    /// The SSE event the client is in the middle of, to put the error into it.
    open: OpenEvent,
    on_late_failure: Option<LateFailureHook>,
    on_end: EndGuard,
    done: bool,
    /// The client already has the stream's `data: [DONE]`: whatever the upstream does next
    /// (a reset after its last event) cannot change the answer.
    answered: bool,
}

/// How every SSE answer the client gets ends.
const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

/// How every Anthropic event stream ends.
const MESSAGE_STOP_EVENT: &[u8] = b"data: {\"type\":\"message_stop\"}\n\n";

impl BodyDriver {
    /// The driver of what follows `committed`.
    fn new(
        committed: &Committed,
        translator: Box<dyn Translate>,
        framing: Framing,
        on_late_failure: LateFailureHook,
        on_end: EndGuard,
    ) -> Self {
        let mut driver = Self {
            translator,
            framing,
            open: OpenEvent::new(),
            on_late_failure: Some(on_late_failure),
            on_end,
            done: committed.ended,
            answered: false,
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
        let out = self.step(result);
        if self.done {
            self.finish();
        }
        out
    }

    /// The client's last bytes, the upstream body having ended.
    pub fn end(&mut self) -> Result<Bytes, StreamAbort> {
        if self.done {
            return Ok(Bytes::new());
        }
        let result = self.translator.end();
        self.done = true;
        let out = self.step(result);
        self.finish();
        out
    }

    /// Reports the body's end to its meter, with the usage the translator saw.
    fn finish(&mut self) {
        let usage = self.translator.usage();
        self.on_end.finish(usage);
    }

    /// The client's last bytes, reading the upstream body having failed with `reason`.
    pub fn fail(&mut self, reason: &str) -> Result<Bytes, StreamAbort> {
        if self.answered {
            self.done = true;
        }
        if self.done {
            self.finish();
            return Ok(Bytes::new());
        }
        let out = self.step(Err(interrupted(reason)));
        self.finish();
        out
    }

    fn step(&mut self, result: Result<Bytes, UpstreamError>) -> Result<Bytes, StreamAbort> {
        let (out, failure) = match result {
            Ok(out) => (out, self.translator.failure()),
            Err(error) => (Bytes::new(), Some(error)),
        };
        self.remember(&out);
        let Some(error) = failure else {
            return Ok(out);
        };
        self.done = true;
        if self.answered {
            // The client has the answer's last event: what the upstream did after it (bytes
            // past `[DONE]`, a reset) changes nothing, and an error tail would contradict it.
            return Ok(out);
        }
        if let Some(log) = self.on_late_failure.take() {
            log(&error.error.message);
        }
        match self.framing {
            Framing::Sse if out.is_empty() => Ok(sse_error_tail(&error.error, self.open.bytes())),
            Framing::Sse => {
                let tail = sse_error_tail(&error.error, self.open.bytes());
                let mut both = Vec::with_capacity(out.len() + tail.len());
                both.extend_from_slice(&out);
                both.extend_from_slice(&tail);
                Ok(Bytes::from(both))
            }
            Framing::AnthropicSse => {
                let open = self.open.bytes().is_some_and(|open| !open.is_empty());
                let tail = anthropic_error::sse_tail(error.status, &error.error, open);
                let mut both = Vec::with_capacity(out.len() + tail.len());
                both.extend_from_slice(&out);
                both.extend_from_slice(&tail);
                Ok(Bytes::from(both))
            }
            Framing::Json => Err(StreamAbort(error.error.message)),
        }
    }

    fn remember(&mut self, out: &[u8]) {
        match self.framing {
            Framing::Sse => {
                self.open.feed(out);
                self.answered |= out.ends_with(DONE_EVENT);
            }
            Framing::AnthropicSse => {
                self.open.feed(out);
                self.answered |= out.ends_with(MESSAGE_STOP_EVENT) || ends_with_error_event(out);
            }
            Framing::Json => {}
        }
    }
}

impl Drop for BodyDriver {
    /// A body dropped before its end (the client left) reports the usage seen so far.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether the last whole event in `out` is an Anthropic `error` event: relayed from an
/// Anthropic upstream, it ends the stream as surely as `message_stop` (the API may close the
/// connection after it).
fn ends_with_error_event(out: &[u8]) -> bool {
    let Some(body) = out.strip_suffix(b"\n\n") else {
        return false;
    };
    let start = body
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map_or(0, |i| i + 2);
    body[start..].starts_with(b"event: error\n")
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
    on_end: EndGuard,
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
    /// To finish when `rest` has ended (nothing reads its usage: the host carries it unread).
    pub on_end: EndGuard,
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
            on_end: EndGuard::default(),
        }
    }

    /// The same body, reporting its end (and its usage) to `on_end`.
    pub fn with_end(mut self, on_end: Option<BodyEnd>) -> Self {
        self.on_end = EndGuard::new(on_end);
        self
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
            self.on_end,
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
            on_end: this.on_end,
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
            on_end,
        } = self;
        let rest = Self {
            committed,
            translator,
            body: Box::new(stream::empty()),
            framing,
            on_late_failure,
            on_end,
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
    /// JSON, which is aborted. If the relay ended mid-event the SDKs then raise a JSON decode
    /// error rather than this error: prefer [`Framing::failure_tail_after`].
    pub fn failure_tail(self, reason: &str) -> Option<Bytes> {
        self.failure_tail_after(reason, b"", false)
    }

    /// What ends a body whose upstream failed with `reason`, `relayed` being the last bytes
    /// the client got. The rule for a host that relays: keep the bytes since the start of the
    /// body (`from_start`), or a suffix of what was sent that reaches back past the last blank
    /// line (`\n\n`, `\r\r` or `\r\n\r\n`), e.g. the last chunks sent, up to 64 KiB; the tail
    /// then puts the error into the event the client is in the middle of, so the SDKs read it
    /// ([`crate::sse::cut`]). Without a blank line in a suffix, the event's beginning is
    /// unknown and the tail is [`Framing::failure_tail`]'s.
    pub fn failure_tail_after(
        self,
        reason: &str,
        relayed: &[u8],
        from_start: bool,
    ) -> Option<Bytes> {
        match self {
            Framing::Sse => {
                let mut open = if from_start {
                    OpenEvent::new()
                } else {
                    OpenEvent::unknown()
                };
                open.feed(relayed);
                Some(sse_error_tail(&interrupted(reason).error, open.bytes()))
            }
            Framing::AnthropicSse => {
                let mut open = if from_start {
                    OpenEvent::new()
                } else {
                    OpenEvent::unknown()
                };
                open.feed(relayed);
                // Unknown counts as open: a blank line between events dispatches nothing.
                let open = open.bytes().is_none_or(|open| !open.is_empty());
                Some(anthropic_error::sse_tail(
                    502,
                    &interrupted(reason).error,
                    open,
                ))
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

    /// Runs `chunks` (then a reset) through a committed identity SSE body.
    fn late_failure(chunks: &[&'static str]) -> (String, String) {
        let mut b = body(chunks, Some("reset"));
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
        let logged = logged.borrow().clone();
        (out, logged)
    }

    const RESET: &str = r#"{"message":"the upstream connection failed mid-response: reset","type":"upstream_error","param":null,"code":"stream_interrupted"}"#;

    #[test]
    fn a_late_failure_mid_event_puts_the_error_into_that_event_then_done() {
        // Cut inside a chunk's JSON: the SDKs would fail to parse `{"b"` and never read an
        // error event after it, so the half chunk is completed into one that carries the error.
        let (out, logged) = late_failure(&["data: {\"a\":1}\n\n", "data: {\"b\""]);
        assert_eq!(
            out,
            format!(
                "data: {{\"a\":1}}\n\ndata: {{\"b\":null,\"error\":{RESET}}}\n\ndata: [DONE]\n\n"
            )
        );
        assert_eq!(logged, "the upstream connection failed mid-response: reset");
        // Between events: the error event of its own.
        let (out, _) = late_failure(&["data: {\"a\":1}\n", "\n"]);
        assert_eq!(
            out,
            format!("data: {{\"a\":1}}\n\ndata: {{\"error\":{RESET}}}\n\ndata: [DONE]\n\n")
        );
        // A whole chunk without its blank line is delivered whole, then the error.
        let (out, _) = late_failure(&["data: {\"a\":1}\r\n\r\ndata: {}\r\n"]);
        assert_eq!(
            out,
            format!("data: {{\"a\":1}}\r\n\r\ndata: {{}}\r\n\ndata: {{\"error\":{RESET}}}\n\ndata: [DONE]\n\n")
        );
    }

    #[test]
    fn a_failure_after_done_changes_nothing_and_is_not_logged() {
        let (out, logged) = late_failure(&["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]);
        assert_eq!(out, "data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(logged, "");
        // [DONE] in the first bytes the client got.
        let (out, logged) = late_failure(&["data: {\"a\":1}\n\ndata: [DONE]\n\n"]);
        assert_eq!(out, "data: {\"a\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(logged, "");
    }

    /// Passes chunks through, and calls the end of the body an error: the translator's view
    /// of bytes that came after the answer's last event.
    struct FailsAtEnd;
    impl Translate for FailsAtEnd {
        fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
            Ok(upstream)
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            Err(UpstreamError::truncated("bytes after the last event"))
        }
    }

    #[test]
    fn a_translator_failure_after_the_last_event_adds_no_tail_in_either_framing() {
        for (framing, last) in [
            (Framing::Sse, "data: [DONE]\n\n"),
            (
                Framing::AnthropicSse,
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ),
        ] {
            let mut b = body(&["data: {\"a\":1}\n\n", last, ": keep-alive\n\n"], None);
            let c = run(commit(&mut FailsAtEnd, &mut b)).ok().unwrap();
            let s = ClientBody::new(c, Box::new(FailsAtEnd), b, framing, Box::new(|_| {}))
                .into_stream();
            let (out, abort) = run(collect(s));
            assert_eq!(abort, None);
            assert_eq!(out, format!("data: {{\"a\":1}}\n\n{last}: keep-alive\n\n"));
        }
    }

    #[test]
    fn a_reset_after_a_relayed_anthropic_error_event_adds_nothing() {
        const ERROR: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let mut b = body(&["event: ping\ndata: {}\n\n", ERROR], Some("reset"));
        let c = run(commit(&mut Identity, &mut b)).ok().unwrap();
        let logged = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        let sink = logged.clone();
        let s = ClientBody::new(
            c,
            Box::new(Identity),
            b,
            Framing::AnthropicSse,
            Box::new(move |m| sink.borrow_mut().push_str(m)),
        )
        .into_stream();
        let (out, abort) = run(collect(s));
        assert_eq!(abort, None);
        assert_eq!(out, format!("event: ping\ndata: {{}}\n\n{ERROR}"));
        assert_eq!(logged.borrow().as_str(), "");
        assert!(!ends_with_error_event(b"event: error\ndata: {}\n"));
        assert!(!ends_with_error_event(
            b"event: error\ndata: {}\n\nevent: ping\ndata: {}\n\n"
        ));
    }

    #[test]
    fn a_relay_failure_tail_uses_the_bytes_relayed_when_they_reach_an_event_start() {
        let tail = |relayed: &[u8], from_start| {
            let t = Framing::Sse
                .failure_tail_after("reset", relayed, from_start)
                .unwrap();
            String::from_utf8(t.to_vec()).unwrap()
        };
        let completed = format!(":null,\"error\":{RESET}}}\n\ndata: [DONE]\n\n");
        assert_eq!(tail(b"data: {\"a\":1}\n\ndata: {\"b\"", false), completed);
        assert_eq!(tail(b"data: {\"b\"", true), completed);
        // A suffix without a blank line: where the event began is unknown.
        let unknown = format!("\n\ndata: {{\"error\":{RESET}}}\n\ndata: [DONE]\n\n");
        assert_eq!(tail(b"ta: {\"b\"", false), unknown);
        assert_eq!(Framing::Sse.failure_tail("reset").unwrap(), unknown);
        assert_eq!(Framing::Json.failure_tail_after("reset", b"{", true), None);
    }

    /// Fails on an upstream chunk that starts with `data: {"b"`, after passing it on.
    struct FailsAfterB(InOrder);
    impl Translate for FailsAfterB {
        fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
            self.0.deferred()?;
            let failure = upstream
                .starts_with(b"data: {\"b\"")
                .then(|| UpstreamError::truncated("bang"));
            self.0.result(upstream, failure)
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            self.0.deferred()?;
            Ok(Bytes::new())
        }
        fn failure(&mut self) -> Option<UpstreamError> {
            self.0.take()
        }
    }

    #[test]
    fn a_failure_after_sent_output_follows_it_at_once() {
        // The upstream then stalls: the error must not wait for its next event.
        let items: Vec<Result<Bytes, BodyError>> = ["data: {\"a\":1}\n\n", "data: {\"b\":2}\n\n"]
            .into_iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        let mut b: UpstreamBody = Box::new(stream::iter(items).chain(stream::pending()));
        let mut t = FailsAfterB(InOrder::default());
        let c = run(commit(&mut t, &mut b)).ok().unwrap();
        let s = ClientBody::new(c, Box::new(t), b, Framing::Sse, Box::new(|_| {})).into_stream();
        let (out, abort) = run(collect(s));
        assert_eq!(abort, None);
        assert_eq!(
            out,
            "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: {\"error\":{\"message\":\"bang\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_interrupted\"}}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn in_order_keeps_a_failure_behind_output_already_committed() {
        let failure = || UpstreamError::truncated("x");
        let mut order = InOrder::default();
        // Before anything was sent, output and failure go together (the attempt fails over).
        assert!(order
            .result(Bytes::from_static(b"a"), Some(failure()))
            .is_err());
        assert_eq!(
            &order.result(Bytes::from_static(b"a"), None).unwrap()[..],
            b"a"
        );
        assert_eq!(
            &order
                .result(Bytes::from_static(b"b"), Some(failure()))
                .unwrap()[..],
            b"b"
        );
        assert!(order.deferred().is_err());
        assert!(order.deferred().is_ok());
        assert!(order.result(Bytes::new(), Some(failure())).is_err());
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
