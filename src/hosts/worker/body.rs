//! Bodies between the runtime and the core. A client's request body is read whole, up to a cap
//! ([`read_body`]). An answer not wanted as a stream is read whole in
//! JavaScript, in the same promise as its `fetch` ([`JsBody::whole`]). A stream is read in Rust
//! until the core has its first bytes ([`JsBody`]); then the runtime carries the rest: read in
//! JavaScript and fed to the core's driver a chunk at a time ([`translate`]), or a
//! pass-through's unchanged ([`relay`]: piped in the runtime's own code, unless
//! `PROXY_RELAY=watch`). The Workers runtime meters CPU, and a Rust future awaiting a JavaScript
//! promise costs several calls across the boundary per chunk.
//!
//! Every upstream body is timed by a [`Watch`] (JavaScript, below): one timer per body, re-armed
//! at most once per idle period, ends the body with [`BodyError::idle`] after `idle_ms` without
//! a chunk and with [`BodyError::deadline`] at `deadline_ms`, aborting the upstream fetch. The
//! watch travels with the body: in Rust while [`JsBody`] reads it, then to the JavaScript that
//! carries the rest, so the same limits hold on every path, and whoever holds it last closes it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{self, ReadableStream};

use super::binding::js_error_text;
use crate::core::host::{BodyError, Timeouts};
use crate::core::http::StreamAbort;
use crate::core::stream::{
    too_large, BodyDriver, DriverParts, EndGuard, Framing, LateFailureHook, RelayParts,
    MAX_WHOLE_BODY,
};

// One attempt's limits, and then its body. Made before the request is sent, it owns the
// request's `AbortController` and first bounds the wait for the response (`headersMs`): past it,
// the request is aborted and `expired` is 3. `attach()` gives it the response's body: `read()`
// then gives the next chunk, `undefined` at the end, or rejects; after a rejection `expired`
// says whether the watch caused it (1: idle, 2: deadline), so the reader can report the timeout
// rather than the abort it caused.
//
// One timer serves the whole attempt: it is set once, no later than `idleMs` after the request
// began (or its deadline), and when it fires early it is set again for what is left. Timers are
// a measurable part of a request's CPU in workerd, and the headers and the body used one each.
//
// Idle counts only while a read is pending, from when it started: a client that reads slowly
// (a translated stream is pulled by the client) is not an upstream that went silent.
//
// `relay()` hands the stream to the runtime's pipe, whose chunks no JavaScript sees: from then
// on only the deadline is enforced, not idle. Seeing each chunk takes JavaScript per chunk, and
// that is what the pipe saves: measured under workerd (benches/load's upstream, 4 connections),
// the proxy's pass-through costs 10 µs of CPU per event through the pipe against 42 µs when
// every chunk goes through `translatedStream` (1,000-event streams; 2.4x on paced ones), and a
// bare JavaScript read loop, a TransformStream or a tee into a DigestStream cost 33-46 µs against
// the pipe's 9. The pipe cannot be sampled instead: one stopped with a signal and resumed loses
// the chunk in flight.
//
// `close()` stops the timer and aborts the request: the core dropped the body, gave up on the
// request, or the client went away. A body read to its end only has its timer stopped: aborting
// a finished fetch and cancelling its finished stream still cost the runtime a tenth of a JSON
// request's CPU.
#[wasm_bindgen(inline_js = r#"
const MAX_DELAY = 2147483647;

export class Watch {
  constructor(headersMs, idleMs, deadlineMs) {
    this.controller = new AbortController();
    this.stream = null;
    this.reader = null;
    this.idle = idleMs > 0 ? idleMs : Infinity;
    this.deadline = deadlineMs;
    this.last = Date.now();
    this.headersAt = Math.min(this.last + headersMs, deadlineMs);
    this.attached = false;
    this.reading = false;
    this.expired = 0;
    this.finished = false;
    this.timer = null;
    this.arrived = (read) => {
      this.reading = false;
      if (this.expired) throw new Error("expired");
      if (read.done) {
        this.finished = true;
        this.stop();
        return undefined;
      }
      return read.value;
    };
    this.arm();
  }

  // The response's body (none: the attempt is over).
  attach(stream) {
    this.attached = true;
    this.stream = stream ?? null;
    if (this.stream === null) {
      this.finished = true;
      this.stop();
    }
  }

  read() {
    return this.begin().then(this.arrived);
  }

  // The reader's own promise for the next chunk, to be passed to `arrived` once settled: what
  // `read()` does, without a promise of its own per chunk (the translated stream's loop).
  begin() {
    // Expired before this read began (a binding's stream, with no fetch to abort, would wait).
    if (this.expired) return Promise.reject(new Error("expired"));
    if (this.reader === null) this.reader = this.stream.getReader();
    this.reading = true;
    this.last = Date.now();
    return this.reader.read();
  }

  // Reads the attached body to its end into `answer.body`, in one promise: the module is
  // entered once for the whole body, not once per chunk. A failure leaves what was read, and
  // its reason in `answer.failure`. Past `limit` bytes it stops reading and keeps nothing, so
  // that an oversized answer never reaches the module's memory (which never shrinks); the
  // watch, closed when the body is dropped, aborts the rest.
  whole(answer, limit) {
    const chunks = [];
    let size = 0;
    const done = () => {
      answer.body = joined(chunks, size);
      return answer;
    };
    const next = (read) => {
      const chunk = this.arrived(read);
      if (chunk === undefined) return done();
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return this.begin().then(next);
      answer.failure = `the upstream response is larger than ${limit} bytes`;
      return answer;
    };
    return this.begin().then(next).catch((e) => {
      answer.failure = text(e);
      return done();
    });
  }

  arm() {
    const now = Date.now();
    const idleAt = (this.reading ? this.last : now) + this.idle;
    const due = Math.min(idleAt, this.attached ? this.deadline : this.headersAt);
    this.timer = setTimeout(() => this.check(), Math.max(0, Math.min(due - now, MAX_DELAY)));
  }

  check() {
    this.timer = null;
    const now = Date.now();
    if (!this.attached) {
      if (now >= this.headersAt) return this.expire(3);
    } else {
      if (now >= this.deadline) return this.expire(2);
      if (this.reading && now - this.last >= this.idle) return this.expire(1);
    }
    this.arm();
  }

  expire(kind) {
    this.expired = kind;
    const reason = new Error(kind === 2 ? "deadline passed" : kind === 3 ? "no headers" : "idle");
    this.controller.abort(reason);
    // A binding's stream has no fetch to abort: cancelling ends the pending read.
    if (this.reader !== null) this.reader.cancel(reason).catch(() => {});
  }

  stop() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  relay() {
    this.idle = Infinity;
    if (this.reader !== null) {
      this.reader.releaseLock();
      this.reader = null;
    }
    this.stop();
    this.arm();
    return this.stream;
  }

  close() {
    this.stop();
    if (this.finished) return;
    this.controller.abort();
    if (this.reader !== null) this.reader.cancel().catch(() => {});
    else if (this.stream !== null && !this.stream.locked) this.stream.cancel().catch(() => {});
  }
}

function text(e) {
  return String(e && e.message ? e.message : e);
}

// A request body, read only when the core asks (after the token) and never past `max` bytes:
// `null` when it is longer. A declared length was checked before (and the runtime delivers no
// more than it declares), so that body is read in one call; a chunked one is counted chunk by
// chunk and cancelled at the cap, so a client cannot make the Worker hold more than `max`.
export async function readBody(request, max) {
  if (request.headers.get("content-length") !== null) {
    const whole = await request.arrayBuffer();
    return whole.byteLength > max ? null : new Uint8Array(whole);
  }
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return joined(chunks, total);
}

// `chunks`, `size` bytes in all, as one array.
function joined(chunks, size) {
  if (chunks.length === 1) return chunks[0];
  const all = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

// The client's body for a pass-through: `first`, then the rest of the upstream stream piped by
// the runtime. If the upstream fails midway (or the watch's deadline aborts it), the body ends
// with `end`'s bytes (the core's error event and `[DONE]`). All in JavaScript: the request's I/O
// context may be gone when the pipe settles, and a Rust future waiting on it would never be
// woken (nor freed). The pipe needs no signal of its own: the watch's deadline aborts the fetch,
// which errors the pipe's source (a relayed body is always a fetch's: only pass-throughs are
// relayed). The request waits for the pipe to settle (`ctx.waitUntil`): the pipe resolves after
// the client has the last byte, when nothing else holds the request's I/O context, and without
// it the code after it would never run, and `end` (which reports the body's end: the usage
// log, the client's limits settled) never be freed.
export function relayStream(first, watch, end, ctx) {
  const rest = watch.relay();
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  const settled = writer.write(first)
    .then(() => {
      writer.releaseLock();
      return rest.pipeTo(writable, { preventAbort: true });
    })
    .then(() => {
      watch.finished = true;
      watch.close();
      end.free();
    }, (e) => {
      const expired = watch.expired;
      watch.close();
      const tail = expired ? end.expired(expired) : end.failed(text(e));
      end.free();
      const last = writable.getWriter();
      return last.write(tail).then(() => last.close());
    })
    .catch(() => {});
  ctx.waitUntil(settled);
  return readable;
}

// The client's stream for a translated body, read and fed to a `Translation` in the runtime's
// JavaScript: per upstream chunk the reader's own `read()` and one synchronous call into the
// module, with no Rust future and no promise of the proxy's own in between. A client that goes away frees
// the translation at once (a read still pending then finds it gone and stops).
export function translatedStream(first, watch, translation) {
  let gone = false;
  return new ReadableStream({
    start(controller) {
      if (first.length > 0) controller.enqueue(first);
      if (translation.done()) {
        gone = true;
        translation.free();
        watch.close();
        controller.close();
      }
    },
    async pull(controller) {
      try {
        for (;;) {
          let chunk, failure, failed = false;
          try {
            chunk = watch.arrived(await watch.begin());
          } catch (e) {
            failed = true;
            failure = e;
          }
          if (gone) return;
          const out = failed
            ? (watch.expired ? translation.expired(watch.expired) : translation.fail(text(failure)))
            : chunk === undefined ? translation.end() : translation.chunk(chunk);
          if (out.length > 0) controller.enqueue(out);
          if (translation.done()) {
            gone = true;
            translation.free();
            watch.close();
            controller.close();
            return;
          }
          if (out.length > 0) return;
        }
      } catch (e) {
        controller.error(e);
        watch.close();
        if (!gone) {
          gone = true;
          translation.free();
        }
      }
    },
    cancel() {
      watch.close();
      if (!gone) {
        gone = true;
        translation.free();
      }
    },
  }, { highWaterMark: 0 });
}
"#)]
extern "C" {
    /// The limits of one attempt, then its body (see the JavaScript above).
    #[derive(Clone)]
    pub type Watch;

    #[wasm_bindgen(constructor, catch)]
    fn new(headers_ms: f64, idle_ms: f64, deadline_ms: f64) -> Result<Watch, JsValue>;

    /// Gives the watch the response's body (`None`: it has none).
    #[wasm_bindgen(method)]
    pub fn attach(this: &Watch, stream: Option<&ReadableStream>);

    #[wasm_bindgen(method, catch)]
    fn read(this: &Watch) -> Result<Promise, JsValue>;

    /// 0, or which limit stopped the attempt: 1 idle, 2 the deadline, 3 no headers in time.
    #[wasm_bindgen(method, getter)]
    pub fn expired(this: &Watch) -> u8;

    /// Stops the timer and, unless the body was read to its end, aborts the request.
    #[wasm_bindgen(method)]
    pub fn close(this: &Watch);

    #[wasm_bindgen(js_name = relayStream, catch)]
    fn relay_stream(
        first: &Uint8Array,
        watch: &Watch,
        end: RelayEnd,
        ctx: &JsValue,
    ) -> Result<ReadableStream, JsValue>;

    /// A request's body, at most `max` bytes (see the JavaScript above): a promise of its
    /// bytes, or of `null` when it is longer.
    #[wasm_bindgen(js_name = readBody)]
    pub fn read_body(request: &web_sys::Request, max: f64) -> Promise;

    #[wasm_bindgen(js_name = translatedStream)]
    fn translated_stream(
        first: &Uint8Array,
        watch: &Watch,
        translation: Translation,
    ) -> ReadableStream;
}

/// [`Watch::expired`] when the response's headers did not come in time.
pub const NO_HEADERS: u8 = 3;

/// The error a watch's expiry `kind` stands for in a body (`None`: the watch did not expire).
fn expiry(kind: u8, idle_ms: u64) -> Option<BodyError> {
    match kind {
        1 => Some(BodyError::idle(idle_ms)),
        2 => Some(BodyError::deadline()),
        _ => None,
    }
}

/// An upstream body read in Rust, one `read()` per chunk, until the core has what it needs;
/// [`JsBody::into_watch`] gives it, with its limits, to the JavaScript that carries the rest.
/// Dropping it abandons the body: the watch aborts the upstream fetch.
pub struct JsBody {
    watch: Option<Watch>,
    idle_ms: u64,
    pending: Option<JsFuture>,
    /// What was read ahead ([`JsBody::whole`]), given before anything is read: last first.
    ahead: Vec<Result<Bytes, BodyError>>,
    done: bool,
}

impl Watch {
    /// The watch of an attempt about to be sent under `timeouts`: it bounds the wait for the
    /// response by `timeouts.headers_ms`, then the body.
    pub fn start(timeouts: Timeouts) -> Result<Watch, JsValue> {
        Watch::new(
            timeouts.headers_ms as f64,
            timeouts.idle_ms as f64,
            timeouts.deadline_ms as f64,
        )
    }
}

impl JsBody {
    /// `stream`, the body of the response `watch` waited for, read under its limits (`idle_ms`
    /// as in the [`Timeouts`] the watch was started with).
    pub fn new(watch: Watch, stream: &ReadableStream, idle_ms: u64) -> Self {
        watch.attach(Some(stream));
        Self {
            watch: Some(watch),
            idle_ms,
            pending: None,
            ahead: Vec::new(),
            done: false,
        }
    }

    /// A body `watch` has read to its end ([`Watch`]'s `whole`): `bytes`, then, if reading
    /// failed, the failure.
    pub fn whole(watch: Watch, bytes: Bytes, failure: Option<String>, idle_ms: u64) -> Self {
        let mut ahead = Vec::with_capacity(2);
        if let Some(reason) = failure {
            let kind = watch.expired();
            ahead.push(Err(expiry(kind, idle_ms).unwrap_or(BodyError(reason))));
        }
        if !bytes.is_empty() {
            ahead.push(Ok(bytes));
        }
        Self {
            watch: Some(watch),
            idle_ms,
            pending: None,
            ahead,
            done: true,
        }
    }

    /// The body from where reading stopped, with its watch, for JavaScript to carry on.
    fn into_watch(mut self) -> Result<Watch, JsValue> {
        self.watch
            .take()
            .ok_or_else(|| JsValue::from_str("the body was handed on"))
    }

    fn error(&self, e: &JsValue) -> BodyError {
        let kind = self.watch.as_ref().map_or(0, |w| w.expired());
        expiry(kind, self.idle_ms).unwrap_or_else(|| BodyError(js_error_text(e)))
    }
}

impl Stream for JsBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.ahead.pop() {
            return Poll::Ready(Some(item));
        }
        if this.done {
            return Poll::Ready(None);
        }
        let pending = match (this.pending.take(), &this.watch) {
            (Some(pending), _) => pending,
            (None, Some(watch)) => match watch.read() {
                Ok(promise) => JsFuture::from(promise),
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(this.error(&e))));
                }
            },
            (None, None) => {
                this.done = true;
                return Poll::Ready(None);
            }
        };
        let pending = this.pending.insert(pending);
        let result = match Pin::new(pending).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        this.pending = None;
        match result {
            Ok(chunk) if chunk.is_undefined() => {
                this.done = true;
                Poll::Ready(None)
            }
            Ok(chunk) => Poll::Ready(Some(Ok(Bytes::from(
                chunk.unchecked_into::<Uint8Array>().to_vec(),
            )))),
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Err(this.error(&e))))
            }
        }
    }
}

impl Drop for JsBody {
    /// A body the core stopped reading (an error answer it did not need, a stream it gave up
    /// on) is aborted upstream, so the runtime lets the connection go; a finished one only has
    /// its timer stopped.
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.close();
        }
    }
}

/// What ends a relayed SSE body whose upstream failed (for [`relay`]'s JavaScript). Freeing it
/// (the JavaScript does once the pipe has settled, either way) reports the body's end to its
/// meter: the request's limits are settled then.
#[wasm_bindgen]
pub struct RelayEnd {
    framing: Framing,
    on_late_failure: Option<LateFailureHook>,
    idle_ms: u64,
    /// Reports the end when dropped (nothing reads a relayed body's usage).
    _on_end: EndGuard,
}

#[wasm_bindgen]
impl RelayEnd {
    /// Reports the failure and gives the bytes that end the body.
    pub fn failed(&mut self, reason: &str) -> Vec<u8> {
        if let Some(log) = self.on_late_failure.take() {
            log(reason);
        }
        // The runtime's pipe does not show what it relayed, so where an event was cut is
        // unknown: the tail closes any partial event with a blank line first.
        self.framing
            .failure_tail(reason)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// The bytes that end the body when the watch's limit `kind` stopped it.
    pub fn expired(&mut self, kind: u8) -> Vec<u8> {
        let reason = expiry(kind, self.idle_ms).unwrap_or_else(BodyError::deadline);
        self.failed(&reason.0)
    }
}

/// The client's body for an SSE pass-through: `first`, then the rest of the upstream stream
/// piped by the runtime, with no proxy code per chunk (the default; `PROXY_RELAY=watch` reads
/// it chunk by chunk instead). `ctx` is the request's `ExecutionContext`, which waits for the
/// pipe.
pub fn relay(parts: RelayParts<JsBody>, ctx: &JsValue) -> Result<ReadableStream, JsValue> {
    let RelayParts {
        first,
        rest,
        framing,
        on_late_failure,
        on_end,
    } = parts;
    let idle_ms = rest.idle_ms;
    let watch = rest.into_watch()?;
    relay_stream(
        &Uint8Array::from(&first[..]),
        &watch,
        RelayEnd {
            framing,
            on_late_failure: Some(on_late_failure),
            idle_ms,
            _on_end: on_end,
        },
        ctx,
    )
}

/// A whole JSON body: `first` and what the driver makes of the rest, read to the end. (A JSON
/// answer is small and of no use until complete: reading it here costs less than handing it to
/// the runtime, and a failure can still be answered as an error.)
pub async fn collect(parts: DriverParts<JsBody>) -> Result<Bytes, String> {
    let DriverParts {
        first,
        mut rest,
        mut driver,
    } = parts;
    let mut body = BytesMut::from(&first[..]);
    while !driver.is_done() {
        let out = match rest.next().await {
            Some(Ok(chunk)) if body.len() + chunk.len() > MAX_WHOLE_BODY => {
                driver.fail(&too_large().error.message)
            }
            Some(Ok(chunk)) => driver.chunk(chunk),
            Some(Err(e)) => driver.fail(&e.0),
            None => driver.end(),
        };
        body.extend_from_slice(&out.map_err(|abort| abort.0)?);
    }
    Ok(body.freeze())
}

/// A [`BodyDriver`] for the JavaScript that reads a translated body ([`translate`]).
#[wasm_bindgen]
pub struct Translation {
    driver: BodyDriver,
    idle_ms: u64,
}

#[wasm_bindgen]
impl Translation {
    /// The client's bytes for one upstream chunk; throws to abort a JSON body.
    pub fn chunk(&mut self, upstream: &[u8]) -> Result<Vec<u8>, JsValue> {
        aborting(self.driver.chunk(Bytes::copy_from_slice(upstream)))
    }

    /// The client's last bytes, the upstream having ended.
    pub fn end(&mut self) -> Result<Vec<u8>, JsValue> {
        aborting(self.driver.end())
    }

    /// The client's last bytes, reading the upstream having failed with `reason`.
    pub fn fail(&mut self, reason: &str) -> Result<Vec<u8>, JsValue> {
        aborting(self.driver.fail(reason))
    }

    /// The client's last bytes, the watch's limit `kind` having stopped the upstream.
    pub fn expired(&mut self, kind: u8) -> Result<Vec<u8>, JsValue> {
        let reason = expiry(kind, self.idle_ms).unwrap_or_else(BodyError::deadline);
        aborting(self.driver.fail(&reason.0))
    }

    /// Whether the body is over.
    pub fn done(&self) -> bool {
        self.driver.is_done()
    }
}

fn aborting(step: Result<Bytes, StreamAbort>) -> Result<Vec<u8>, JsValue> {
    step.map(Vec::from)
        .map_err(|abort| JsValue::from_str(&abort.0))
}

/// The client's stream for a translated body that the runtime reads (see
/// [`translated_stream`]).
pub fn translate(parts: DriverParts<JsBody>) -> Result<ReadableStream, JsValue> {
    let DriverParts {
        first,
        rest,
        driver,
    } = parts;
    let idle_ms = rest.idle_ms;
    let watch = rest.into_watch()?;
    Ok(translated_stream(
        &Uint8Array::from(&first[..]),
        &watch,
        Translation { driver, idle_ms },
    ))
}
