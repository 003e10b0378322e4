//! The native host: the same core as a normal server on tokio + hyper, for trying the proxy
//! locally, self-hosting it, and driving tests and benchmarks.

pub mod cli;
pub mod dev_vars;
pub mod server;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::core::host::{BodyError, Host, NetworkError, UpstreamRequest, UpstreamResponse};

/// Outbound HTTP, secrets from the environment and `.dev.vars`, and stderr logging.
#[derive(Clone)]
pub struct NativeHost {
    inner: Rc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    dev_vars: HashMap<String, String>,
}

impl NativeHost {
    /// A host whose secrets come from the environment first, then from `dev_vars`.
    pub fn new(dev_vars: HashMap<String, String>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Idle time between body bytes, not total time: long streams must not be cut.
            .read_timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            inner: Rc::new(Inner { client, dev_vars }),
        })
    }
}

/// The error and its causes, without the URL (kept short; it never holds a key anyway).
fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    parts.join(": ")
}

impl Host for NativeHost {
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, NetworkError> {
        let mut builder = self.inner.client.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let response = builder
            .body(request.body)
            .send()
            .await
            .map_err(|e| NetworkError(describe(&e)))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes_stream()
            .map(|chunk: Result<Bytes, reqwest::Error>| chunk.map_err(|e| BodyError(describe(&e))));
        Ok(UpstreamResponse {
            status,
            content_type,
            body: Box::pin(body),
        })
    }

    fn secret(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.inner.dev_vars.get(name).cloned())
    }

    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn log(&self, line: &str) {
        eprintln!("{line}");
    }
}
