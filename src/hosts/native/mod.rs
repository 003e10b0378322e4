//! The native host: the same core as a normal server on tokio + hyper, for trying the proxy
//! locally, self-hosting it, and driving tests and benchmarks.
//!
//! It runs a thread per core, each with its own current-thread event loop, listener
//! (`SO_REUSEPORT`) and [`NativeHost`]: the core's futures are `!Send` by design (the Worker's
//! are), so nothing moves between threads. What every thread must see alike lives in
//! [`Shared`], behind one `Arc`.

pub mod cli;
pub mod connection;
pub mod dev_vars;
pub mod redis;
pub mod server;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicUsize;
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

use crate::core::health::KeyHealth;
use crate::core::host::{
    BodyError, Host, LimitsUnavailable, NetworkError, Timeouts, UpstreamRequest, UpstreamResponse,
};
use crate::core::limits::local::LocalLimits;
use crate::core::limits::{Ask, Counters, Grant, Refusal, Used};
use crate::core::metrics::Metrics;
use crate::core::recent::{LastHour, Recent};
use crate::core::record::UsageRecord;
use crate::core::route::{Client as LimitedClient, LimitsStore};
use crate::core::secrets::SecretCache;
use crate::hosts::native::redis::{RedisLimits, RedisUrl};

/// Random bits, different on every call and in every process: std seeds a thread's first
/// `RandomState` from the operating system and steps it for each one after.
pub(crate) fn random_bits() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// What every server thread shares: the secrets of `.dev.vars`, and the cool-down memory, so
/// that a key one thread saw fail is skipped by all.
#[derive(Debug, Default)]
pub struct Shared {
    dev_vars: HashMap<String, String>,
    health: KeyHealth,
    /// Client limits kept in this process (`[server] limits_store` unset).
    limits: LocalLimits,
    /// Prometheus metrics since the process started (`GET /metrics`).
    metrics: Metrics,
    /// The last hour of requests, for the status page.
    recent: Recent,
    /// The Redis server client limits are kept in instead of `limits` (`[server]
    /// limits_store`); each thread connects to it on its own.
    limits_store: Option<Arc<RedisUrl>>,
    /// Client connections open on every thread together (`max_connections`).
    pub(crate) open_connections: AtomicUsize,
}

impl Shared {
    /// Shared state whose secrets come from the environment first, then from `dev_vars`.
    pub fn new(dev_vars: HashMap<String, String>) -> Arc<Self> {
        Arc::new(Self {
            dev_vars,
            health: KeyHealth::new(),
            limits: LocalLimits::new(),
            metrics: Metrics::new(),
            recent: Recent::new(),
            limits_store: None,
            open_connections: AtomicUsize::new(0),
        })
    }

    /// Shared state as [`Shared::new`] makes it, with client limits kept where `store` says
    /// (`[server] limits_store`; a secret holding the URL is read as every secret is). The
    /// error says what is wrong without the URL, which may hold a password.
    pub fn with_limits_store(
        dev_vars: HashMap<String, String>,
        store: Option<LimitsStore>,
    ) -> Result<Arc<Self>, String> {
        let url = redis::store_url(store, |name| secret_value(&dev_vars, name))?;
        let mut shared = Self::new(dev_vars);
        Arc::get_mut(&mut shared)
            .ok_or("the shared state is in use before the server started")?
            .limits_store = url.map(Arc::new);
        Ok(shared)
    }

    /// The Redis server client limits are kept in, if any (`Display` shows no credentials).
    pub fn limits_store(&self) -> Option<&RedisUrl> {
        self.limits_store.as_deref()
    }
}

/// A secret's value by name: from the environment first, then from `.dev.vars`.
fn secret_value(dev_vars: &HashMap<String, String>, name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| dev_vars.get(name).cloned())
}

/// One thread's outbound HTTP (its own connection pool, its connections' tasks on its own event
/// loop), secrets from the environment and `.dev.vars`, and stderr logging.
#[derive(Clone)]
pub struct NativeHost {
    inner: Rc<Inner>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Inner {
    /// One client per connect timeout in use (a connector setting): routes.toml has few.
    clients: RefCell<Vec<(u64, HttpsClient)>>,
    shared: Arc<Shared>,
    /// Secrets read so far: the environment is read once per name.
    secrets: SecretCache,
    /// This thread's connections to the limits store, when there is one.
    redis: Option<RedisLimits>,
    /// Whether settling with the limits store failed on this thread yet (logged once).
    settle_failed: Cell<bool>,
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
        Ok(Self {
            inner: Rc::new(Inner {
                clients: RefCell::new(Vec::new()),
                redis: shared.limits_store.clone().map(RedisLimits::new),
                shared,
                secrets: SecretCache::new(),
                settle_failed: Cell::new(false),
            }),
        })
    }

    /// This thread's client that gives up connecting after `connect_ms`.
    fn client(&self, connect_ms: u64) -> HttpsClient {
        let mut clients = self.inner.clients.borrow_mut();
        if let Some((_, client)) = clients.iter().find(|(ms, _)| *ms == connect_ms) {
            return client.clone();
        }
        let client = build_client(Duration::from_millis(connect_ms));
        clients.push((connect_ms, client.clone()));
        client
    }
}

/// A pooled HTTP/1 and HTTP/2 client over TLS or plain TCP. It never follows redirects (hyper
/// has no such layer): a key must not travel to the host a `Location` names.
fn build_client(connect_timeout: Duration) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Client::builder(LocalExecutor)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
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

/// An upstream body's data, given up after `idle` without a byte or at the request's
/// deadline, whichever comes first.
struct IdleBody {
    body: Incoming,
    idle: Duration,
    /// The request's own deadline (`total_timeout`).
    end: tokio::time::Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl IdleBody {
    fn new(body: Incoming, timeouts: &Timeouts, now_ms: u64) -> Self {
        let now = tokio::time::Instant::now();
        let end = now + Duration::from_millis(timeouts.deadline_ms.saturating_sub(now_ms));
        let idle = Duration::from_millis(timeouts.idle_ms);
        Self {
            body,
            idle,
            end,
            timer: Box::pin(tokio::time::sleep_until(end.min(now + idle))),
        }
    }
}

impl Stream for IdleBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let next = tokio::time::Instant::now() + this.idle;
                    this.timer.as_mut().reset(next.min(this.end));
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
                    return match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) if tokio::time::Instant::now() >= this.end => {
                            Poll::Ready(Some(Err(BodyError::deadline())))
                        }
                        Poll::Ready(()) => {
                            Poll::Ready(Some(Err(BodyError::idle(this.idle.as_millis() as u64))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Host for NativeHost {
    async fn send(
        &self,
        request: UpstreamRequest,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, NetworkError> {
        let mut builder = hyper::Request::post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let outbound = builder
            .body(Full::new(request.body))
            .map_err(|e| NetworkError::Failed(describe(&e)))?;
        // Past the wait, the request's future is dropped, which cancels it.
        let response = tokio::time::timeout(
            Duration::from_millis(timeouts.headers_ms),
            self.client(timeouts.connect_ms).request(outbound),
        )
        .await
        .map_err(|_| NetworkError::NoHeaders)?
        .map_err(|e| NetworkError::Failed(describe(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = IdleBody::new(response.into_body(), &timeouts, self.now_ms());
        Ok(UpstreamResponse {
            status,
            content_type,
            retry_after,
            body: Box::new(body),
        })
    }

    async fn sleep(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn health(&self) -> &KeyHealth {
        &self.inner.shared.health
    }

    /// This process's limits, unless they are kept in Redis.
    fn local_limits(&self) -> Option<&LocalLimits> {
        match self.inner.redis {
            Some(_) => None,
            None => Some(&self.inner.shared.limits),
        }
    }

    /// In Redis when `limits_store` is set (unreachable: an error, never unlimited), else here.
    async fn reserve(
        &self,
        client: &'static LimitedClient,
        ask: Ask,
    ) -> Result<Result<Grant, Refusal>, LimitsUnavailable> {
        match &self.inner.redis {
            Some(redis) => redis.reserve(client, &ask).await,
            None => Ok(self.inner.shared.limits.reserve(client, &ask)),
        }
    }

    /// From Redis when `limits_store` is set (`None` when it does not answer), else from here.
    async fn client_counters(&self, client: &'static LimitedClient) -> Option<Counters> {
        match &self.inner.redis {
            Some(redis) => redis.counters(client).await.ok(),
            None => self.inner.shared.limits.counters(client.name),
        }
    }

    /// In Redis, on this thread's event loop, so the response never waits for it. A failure
    /// leaves the estimate counted in its window (its place in flight frees at its deadline)
    /// and is logged once per thread.
    fn settle(&self, client: &'static LimitedClient, grant: Grant, used: Used) {
        let Some(redis) = self.inner.redis.clone() else {
            self.inner.shared.limits.settle(client, &grant, &used);
            return;
        };
        let host = self.clone();
        tokio::task::spawn_local(async move {
            if let Err(LimitsUnavailable { why, .. }) = redis.settle(client, &grant, &used).await {
                if !host.inner.settle_failed.replace(true) {
                    host.log(&format!(
                        "client limits: settling a request of client `{}` failed ({why}); what it reserved stays counted in its window (logged once per thread)",
                        client.name
                    ));
                }
            }
        });
    }

    async fn last_hour(&self) -> LastHour {
        self.inner.shared.recent.last_hour("process", self.now_ms())
    }

    fn metrics_text(&self) -> Option<String> {
        Some(self.inner.shared.metrics.render())
    }

    fn record(&self, record: &UsageRecord) {
        self.inner.shared.metrics.observe(record);
        self.inner.shared.recent.observe(record);
    }

    fn secret(&self, name: &str) -> Option<Rc<str>> {
        self.inner
            .secrets
            .get_or_read(name, || secret_value(&self.inner.shared.dev_vars, name))
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
