//! Outbound `fetch` for [`Host::send`](crate::core::host::Host::send), and the timer behind
//! [`Host::sleep`](crate::core::host::Host::sleep).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::{self, prelude::wasm_bindgen, JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::Response;

use super::binding::js_error_text;
use super::body::{JsBody, Watch, NO_HEADERS};
use crate::core::host::{NetworkError, Timeouts, UpstreamRequest, UpstreamResponse};
use crate::core::stream::MAX_WHOLE_BODY;

// The request is built in JavaScript from the headers as one string, so that sending costs one
// call into the runtime rather than one per header and option. `redirect: "manual"`: a 3xx
// reaches the core as the attempt's answer (a failure); following it would send the key to
// wherever the Location points.
#[wasm_bindgen(inline_js = r#"
export function upstreamFetch(url, headers, body, watch) {
  const pairs = headers.split("\n");
  const init = new Headers();
  for (let i = 0; i + 1 < pairs.length; i += 2) init.set(pairs[i], pairs[i + 1]);
  const signal = watch.controller.signal;
  return fetch(url, { method: "POST", headers: init, body, redirect: "manual", signal });
}

// For an answer wanted whole: the response's head and its body read to the end (see the watch's
// `whole`), in the one promise the module awaits. Each promise a Rust future awaits costs two
// closures and a microtask, and a JSON answer used to take three (the headers, its one chunk,
// its end).
export function upstreamFetchWhole(url, headers, body, watch, limit) {
  return upstreamFetch(url, headers, body, watch).then((response) => {
    const head = response.headers;
    const answer = {
      status: response.status,
      contentType: head.get("content-type"),
      retryAfter: head.get("retry-after"),
      body: null,
      failure: null,
    };
    watch.attach(response.body);
    return response.body === null ? answer : watch.whole(answer, limit);
  });
}

// Cancelling also settles the promise: a Rust future on a promise that never settles is never
// freed (wasm-bindgen's JsFuture and its callbacks hold each other until the promise settles),
// and the core drops a timer on nearly every stream (the first-token deadline it did not need).
export class Timer {
  constructor(ms) {
    this.id = null;
    this.resolve = null;
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
      this.id = setTimeout(resolve, ms);
    });
  }

  cancel() {
    clearTimeout(this.id);
    this.resolve();
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = upstreamFetch, catch)]
    fn upstream_fetch(
        url: &str,
        headers: &str,
        body: &Uint8Array,
        watch: &Watch,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(js_name = upstreamFetchWhole, catch)]
    fn upstream_fetch_whole(
        url: &str,
        headers: &str,
        body: &Uint8Array,
        watch: &Watch,
        limit: f64,
    ) -> Result<Promise, JsValue>;

    /// What `upstreamFetchWhole` resolves to: the response's head and its whole body.
    type Answer;

    #[wasm_bindgen(method, getter)]
    fn status(this: &Answer) -> u16;

    #[wasm_bindgen(method, getter, js_name = contentType)]
    fn content_type(this: &Answer) -> Option<String>;

    #[wasm_bindgen(method, getter, js_name = retryAfter)]
    fn retry_after(this: &Answer) -> Option<String>;

    /// The bytes read (`None`: the response had no body).
    #[wasm_bindgen(method, getter)]
    fn body(this: &Answer) -> Option<Uint8Array>;

    /// Why reading the body stopped short, if it did.
    #[wasm_bindgen(method, getter)]
    fn failure(this: &Answer) -> Option<String>;

    /// A `setTimeout` whose promise is `done`.
    type Timer;

    #[wasm_bindgen(constructor)]
    fn new(ms: f64) -> Timer;

    #[wasm_bindgen(method, getter)]
    fn done(this: &Timer) -> Promise;

    #[wasm_bindgen(method)]
    fn cancel(this: &Timer);
}

fn network(e: JsValue) -> NetworkError {
    NetworkError::Failed(js_error_text(&e))
}

/// Closes the attempt's watch when dropped, which aborts the request: the core gave up on it
/// or it failed. Disarmed once the body (and with it the watch) is handed on.
struct CloseOnDrop(Option<Watch>);

impl CloseOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(watch) = self.0.take() {
            watch.close();
        }
    }
}

/// `request`'s headers as `name\nvalue\n...` for [`upstream_fetch`]. Values are trimmed of the
/// whitespace `Headers.set` would strip anyway; one with a line break inside cannot be sent, and
/// is refused by name only (it may be a key).
fn header_lines(request: &UpstreamRequest) -> Result<String, NetworkError> {
    let mut lines = String::with_capacity(256);
    for (name, value) in &request.headers {
        let value = value.trim_matches([' ', '\t', '\r', '\n']);
        if value.contains(['\r', '\n']) {
            return Err(NetworkError::Failed(format!(
                "the `{name}` header's value contains a line break"
            )));
        }
        lines.push_str(name);
        lines.push('\n');
        lines.push_str(value);
        lines.push('\n');
    }
    Ok(lines)
}

/// Sends `request` and waits for the response headers, at most `timeouts.headers_ms`, and for
/// an answer not wanted as a stream, its whole body too. The connection and the headers share
/// that wait: `fetch` does not tell connecting from waiting, so `timeouts.connect_ms` is left to
/// it. One [`Watch`] times the wait and then the body.
pub async fn send(
    request: UpstreamRequest,
    timeouts: Timeouts,
) -> Result<UpstreamResponse, NetworkError> {
    let headers = header_lines(&request)?;
    let watch = Watch::start(timeouts).map_err(network)?;
    let guard = CloseOnDrop(Some(watch.clone()));
    let body = Uint8Array::from(&request.body[..]);
    if !request.stream {
        let promise =
            upstream_fetch_whole(&request.url, &headers, &body, &watch, MAX_WHOLE_BODY as f64)
                .map_err(network)?;
        let answer: Answer = answered(&watch, JsFuture::from(promise).await)?;
        guard.disarm();
        let bytes = answer
            .body()
            .map_or_else(Bytes::new, |bytes| Bytes::from(bytes.to_vec()));
        return Ok(UpstreamResponse {
            status: answer.status(),
            content_type: answer.content_type(),
            retry_after: answer.retry_after(),
            body: Box::new(JsBody::whole(
                watch,
                bytes,
                answer.failure(),
                timeouts.idle_ms,
            )),
        });
    }
    let promise = upstream_fetch(&request.url, &headers, &body, &watch).map_err(network)?;
    let response: Response = answered(&watch, JsFuture::from(promise).await)?;
    let head = response.headers();
    let content_type = head.get("content-type").ok().flatten();
    let retry_after = head.get("retry-after").ok().flatten();
    // From here the body holds the watch, and closes it when dropped.
    guard.disarm();
    let body: crate::core::host::UpstreamBody = match response.body() {
        Some(stream) => Box::new(JsBody::new(watch, &stream, timeouts.idle_ms)),
        // A response without a body (204, or an error with none) reads as empty.
        None => {
            watch.attach(None);
            Box::new(futures_util::stream::empty::<Result<Bytes, _>>())
        }
    };
    Ok(UpstreamResponse {
        status: response.status(),
        content_type,
        retry_after,
        body,
    })
}

/// What the fetch's promise settled to, as `T`; a rejection is the failure to get an answer
/// (no headers in time, if the watch says so).
fn answered<T: JsCast>(
    watch: &Watch,
    settled: Result<JsValue, JsValue>,
) -> Result<T, NetworkError> {
    match settled {
        Ok(value) => Ok(value.unchecked_into()),
        Err(_) if watch.expired() == NO_HEADERS => Err(NetworkError::NoHeaders),
        Err(e) => Err(network(e)),
    }
}

/// Resolves after a `setTimeout`; dropped early, it clears the timer (the core races it against
/// a stream's first token, the host a binding's answer, and those deadlines are minutes long).
pub struct Sleep {
    timer: Timer,
    done: JsFuture,
}

impl Sleep {
    /// A sleep of `ms` milliseconds.
    pub fn new(ms: u64) -> Self {
        // setTimeout takes a signed 32-bit delay; longer ones would fire at once.
        let timer = Timer::new(ms.min(i32::MAX as u64) as f64);
        let done = JsFuture::from(timer.done());
        Self { timer, done }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.get_mut().done).poll(cx).map(|_| ())
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.timer.cancel();
    }
}
