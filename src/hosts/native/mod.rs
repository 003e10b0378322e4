//! The native host: the same core as a normal server on tokio + hyper, for trying the proxy
//! locally, self-hosting it, and driving tests and benchmarks.
//!
//! It runs a thread per core, each with its own current-thread event loop, listener
//! (`SO_REUSEPORT`) and [`NativeHost`]: the core's futures are `!Send` by design (the Worker's
//! are), so nothing moves between threads. What every thread must see alike lives in
//! [`Shared`], behind one `Arc`.

pub mod cli;
pub mod dev_vars;
pub mod server;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioTimer;

use crate::core::host::{BodyError, Host, NetworkError, UpstreamRequest, UpstreamResponse};

/// How long an upstream may stay silent (before its headers, or between body bytes) before the
/// attempt is given up. Idle time, not total time: long streams must not be cut.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What every server thread shares: the secrets of `.dev.vars` now, and whatever state later
/// features must keep the same across threads.
#[derive(Debug, Default)]
pub struct Shared {
    dev_vars: HashMap<String, String>,
}

impl Shared {
    /// Shared state whose secrets come from the environment first, then from `dev_vars`.
    pub fn new(dev_vars: HashMap<String, String>) -> Arc<Self> {
        Arc::new(Self { dev_vars })
    }
}

/// One thread's outbound HTTP (its own connection pool, its connections' tasks on its own event
/// loop), secrets from the environment and `.dev.vars`, and stderr logging.
#[derive(Clone)]
pub struct NativeHost {
    inner: Rc<Inner>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Inner {
    client: HttpsClient,
    shared: Arc<Shared>,
    /// Secrets read so far, by name (`None`: not set): the environment is read once per name.
    secrets: RefCell<HashMap<String, Option<String>>>,
}

/// Runs the HTTP client's connection tasks on the calling thread's `LocalSet`, beside the
/// requests that use them: a body chunk a connection has read reaches the proxy in the same turn
/// of the loop, so chunks that arrived together leave together (see the server's `Gather`).
#[derive(Clone, Copy)]
struct LocalExecutor;

impl<F: Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for LocalExecutor {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

impl NativeHost {
    /// A host for the calling thread, which must be running a `tokio::task::LocalSet` when the
    /// host sends (the server's threads do).
    pub fn new(shared: Arc<Shared>) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let client = Client::builder(LocalExecutor)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            inner: Rc::new(Inner {
                client,
                shared,
                secrets: RefCell::new(HashMap::new()),
            }),
        })
    }
}

/// The error and its causes (kept short; never holds a key).
fn describe(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// An upstream body's data, given up after [`IDLE_TIMEOUT`] without a byte.
struct IdleBody {
    body: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for IdleBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.deadline
                        .as_mut()
                        .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                    // Trailers carry no data.
                    if let Ok(data) = frame.into_data() {
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(BodyError(describe(&e)))))
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    return match this.deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Some(Err(BodyError(format!(
                            "no data for {} s",
                            IDLE_TIMEOUT.as_secs()
                        ))))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Host for NativeHost {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, NetworkError> {
        let mut builder = hyper::Request::post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let outbound = builder
            .body(Full::new(request.body))
            .map_err(|e| NetworkError(describe(&e)))?;
        let response = tokio::time::timeout(IDLE_TIMEOUT, self.inner.client.request(outbound))
            .await
            .map_err(|_| {
                NetworkError(format!(
                    "no response headers within {} s",
                    IDLE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| NetworkError(describe(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = IdleBody {
            body: response.into_body(),
            deadline: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
        };
        Ok(UpstreamResponse {
            status,
            content_type,
            body: Box::new(body),
        })
    }

    fn secret(&self, name: &str) -> Option<String> {
        if let Some(value) = self.inner.secrets.borrow().get(name) {
            return value.clone();
        }
        let value = std::env::var(name)
            .ok()
            .or_else(|| self.inner.shared.dev_vars.get(name).cloned());
        self.inner
            .secrets
            .borrow_mut()
            .insert(name.to_owned(), value.clone());
        value
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// One `write` per line (`eprintln!` can make two), so threads' lines never interleave.
    fn log(&self, line: &str) {
        use std::io::Write;
        let mut out = String::with_capacity(line.len() + 1);
        out.push_str(line);
        out.push('\n');
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}
