//! Bodies between the runtime and the core. An upstream's `ReadableStream` is read in Rust
//! until the core has its first bytes ([`JsBody`]); then the runtime carries the rest: a
//! pass-through's unchanged ([`relay`]: piped in the runtime's own code), a translated one
//! read in JavaScript and fed to the core's driver a chunk at a time ([`translate`]), a JSON
//! answer read whole ([`collect`]). The Workers runtime meters CPU, and a Rust future awaiting
//! a JavaScript promise costs several calls across the boundary per chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use worker::js_sys::{Reflect, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::{ReadableStream, ReadableStreamDefaultReader};

use super::binding::js_error_text;
use crate::core::host::BodyError;
use crate::core::http::StreamAbort;
use crate::core::stream::{
    too_large, BodyDriver, DriverParts, Framing, LateFailureHook, RelayParts, MAX_WHOLE_BODY,
};

/// An upstream body read in Rust, one `read()` per chunk, until the core has what it needs;
/// [`JsBody::into_stream`] gives the stream back, unlocked, for the runtime to carry the rest.
pub struct JsBody {
    stream: Option<ReadableStream>,
    reader: Option<ReadableStreamDefaultReader>,
    pending: Option<JsFuture>,
    done: bool,
}

impl JsBody {
    /// A body reading `stream`.
    pub fn new(stream: ReadableStream) -> Self {
        Self {
            stream: Some(stream),
            reader: None,
            pending: None,
            done: false,
        }
    }

    /// The stream, from where reading stopped, with the reader's lock released (an empty
    /// one for an upstream that sent no body).
    pub fn into_stream(mut self) -> Result<ReadableStream, JsValue> {
        if let Some(reader) = self.reader.take() {
            reader.release_lock();
        }
        match self.stream.take() {
            Some(stream) => Ok(stream),
            None => ReadableStream::new(),
        }
    }

    fn read(&mut self) -> Result<JsFuture, JsValue> {
        let reader = match &self.reader {
            Some(reader) => reader,
            None => {
                let stream = self
                    .stream
                    .as_ref()
                    .ok_or_else(|| JsValue::from_str("the body was handed on"))?;
                self.reader.insert(
                    stream
                        .get_reader()
                        .unchecked_into::<ReadableStreamDefaultReader>(),
                )
            }
        };
        Ok(JsFuture::from(reader.read()))
    }
}

impl Stream for JsBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let pending = match this.pending.take() {
            Some(pending) => pending,
            None => match this.read() {
                Ok(pending) => pending,
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(BodyError(js_error_text(&e)))));
                }
            },
        };
        let pending = this.pending.insert(pending);
        let result = match Pin::new(pending).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        this.pending = None;
        let chunk = result.and_then(|read| {
            let done = Reflect::get(&read, &JsValue::from_str("done"))?;
            if done.as_bool() == Some(true) {
                return Ok(None);
            }
            let value = Reflect::get(&read, &JsValue::from_str("value"))?;
            Ok(Some(Bytes::from(
                value.unchecked_into::<Uint8Array>().to_vec(),
            )))
        });
        match chunk {
            Ok(Some(bytes)) => Poll::Ready(Some(Ok(bytes))),
            Ok(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError(js_error_text(&e)))))
            }
        }
    }
}

impl Drop for JsBody {
    /// A body the core stopped reading (an error answer it did not need) is cancelled, so the
    /// runtime can let the upstream connection go.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.cancel();
        } else if let Some(stream) = self.stream.take() {
            let _ = stream.cancel();
        }
    }
}

// The client's body for a pass-through: `first`, then the rest of the upstream stream piped by
// the runtime. If the upstream fails midway, the body ends with `end.failed(reason)`'s bytes (the
// core's error event and `[DONE]`). All in JavaScript: the request's I/O context may be gone
// when the pipe settles, and a Rust future waiting on it would never be woken (nor freed).
#[wasm_bindgen(inline_js = r#"
export function relayStream(first, rest, end) {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  writer.write(first)
    .then(() => {
      writer.releaseLock();
      return rest.pipeTo(writable, { preventAbort: true });
    })
    .then(() => end.free(), (e) => {
      const tail = end.failed(String(e && e.message ? e.message : e));
      end.free();
      const last = writable.getWriter();
      return last.write(tail).then(() => last.close());
    })
    .catch(() => {});
  return readable;
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = relayStream)]
    fn relay_stream(first: &Uint8Array, rest: &ReadableStream, end: RelayEnd) -> ReadableStream;
}

/// What ends a relayed SSE body whose upstream failed (for [`relay`]'s JavaScript).
#[wasm_bindgen]
pub struct RelayEnd {
    framing: Framing,
    on_late_failure: Option<LateFailureHook>,
}

#[wasm_bindgen]
impl RelayEnd {
    /// Reports the failure and gives the bytes that end the body.
    pub fn failed(&mut self, reason: &str) -> Vec<u8> {
        if let Some(log) = self.on_late_failure.take() {
            log(reason);
        }
        self.framing
            .failure_tail(reason)
            .map(Vec::from)
            .unwrap_or_default()
    }
}

/// The client's body for an SSE pass-through: `first`, then the rest of the upstream stream
/// piped by the runtime, with no proxy code per chunk.
pub fn relay(parts: RelayParts<JsBody>) -> Result<ReadableStream, JsValue> {
    let RelayParts {
        first,
        rest,
        framing,
        on_late_failure,
    } = parts;
    let rest = rest.into_stream()?;
    Ok(relay_stream(
        &Uint8Array::from(&first[..]),
        &rest,
        RelayEnd {
            framing,
            on_late_failure: Some(on_late_failure),
        },
    ))
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

// The client's stream for a translated body, read and fed to a `Translation` in the runtime's
// JavaScript: per upstream chunk one `read()` and one synchronous call into the module, with
// no Rust future and no promise of the proxy's own in between.
#[wasm_bindgen(inline_js = r#"
export function translatedStream(first, rest, translation) {
  const reader = rest.getReader();
  return new ReadableStream({
    start(controller) {
      if (first.length > 0) controller.enqueue(first);
      if (translation.done()) {
        translation.free();
        controller.close();
      }
    },
    async pull(controller) {
      try {
        for (;;) {
          let read;
          try {
            read = await reader.read();
          } catch (e) {
            read = { failed: String(e && e.message ? e.message : e) };
          }
          const out = read.failed !== undefined ? translation.fail(read.failed)
            : read.done ? translation.end() : translation.chunk(read.value);
          if (out.length > 0) controller.enqueue(out);
          if (translation.done()) {
            translation.free();
            controller.close();
            if (!read.done) reader.cancel().catch(() => {});
            return;
          }
          if (out.length > 0) return;
        }
      } catch (e) {
        controller.error(e);
        reader.cancel().catch(() => {});
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = translatedStream)]
    fn translated_stream(
        first: &Uint8Array,
        rest: &ReadableStream,
        translation: Translation,
    ) -> ReadableStream;
}

/// A [`BodyDriver`] for the JavaScript that reads a translated body ([`translate`]).
#[wasm_bindgen]
pub struct Translation(BodyDriver);

#[wasm_bindgen]
impl Translation {
    /// The client's bytes for one upstream chunk; throws to abort a JSON body.
    pub fn chunk(&mut self, upstream: &[u8]) -> Result<Vec<u8>, JsValue> {
        aborting(self.0.chunk(Bytes::copy_from_slice(upstream)))
    }

    /// The client's last bytes, the upstream having ended.
    pub fn end(&mut self) -> Result<Vec<u8>, JsValue> {
        aborting(self.0.end())
    }

    /// The client's last bytes, reading the upstream having failed with `reason`.
    pub fn fail(&mut self, reason: &str) -> Result<Vec<u8>, JsValue> {
        aborting(self.0.fail(reason))
    }

    /// Whether the body is over.
    pub fn done(&self) -> bool {
        self.0.is_done()
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
    let rest = rest.into_stream()?;
    Ok(translated_stream(
        &Uint8Array::from(&first[..]),
        &rest,
        Translation(driver),
    ))
}
