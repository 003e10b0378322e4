//! What the core needs from the runtime it runs in: outbound HTTP, secrets, a clock and a log.
//! The Workers host and the native host each implement [`Host`]; the core knows neither.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

/// An upstream request, fully built by a provider.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Absolute URL.
    pub url: String,
    /// Headers to send (credentials included; never log these).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Bytes,
}

impl UpstreamRequest {
    /// The `accept` header for a streamed or a whole response.
    pub fn accept(stream: bool) -> (&'static str, String) {
        let kind = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        ("accept", kind.to_owned())
    }
}

/// A failure reading an upstream body after its headers arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

/// An upstream body, read as it arrives.
pub type UpstreamBody = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>>>>;

/// An upstream response whose body has not been read yet.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: UpstreamBody,
}

/// A failure to get any response (DNS, connect, TLS, reset before headers, timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkError(pub String);

/// Why a call through the Workers AI binding produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiRunError {
    /// This host has no AI binding (the native host never has one): the attempt fails over.
    Unavailable(String),
    /// `run()` threw or its promise rejected; the error's text, which embeds Workers AI's
    /// internal code (`InferenceUpstreamError: 3040: Capacity temporarily exceeded`).
    Thrown(String),
}

/// The runtime the core runs in.
///
/// Futures here are deliberately not `Send`: the Workers runtime is single-threaded and its
/// JS futures are `!Send`, so the native host runs the core on a current-thread runtime too.
#[allow(async_fn_in_trait)]
pub trait Host: Clone + 'static {
    /// Sends a request and returns once the response headers have arrived.
    async fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, NetworkError>;
    /// A secret's value by name, if set.
    fn secret(&self, name: &str) -> Option<String>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Writes one log line. Callers never pass secret values.
    fn log(&self, line: &str);
    /// Runs `model` through the Workers AI binding (`env.AI.run(model, inputs)`), `inputs` being
    /// the model's input as JSON. The answer is handed back as if it were an HTTP response so the
    /// failover loop and the translators treat binding and REST alike: an output object as its
    /// JSON (`application/json`), a `ReadableStream` (when `inputs` asks for `stream: true`) as
    /// its SSE bytes (`text/event-stream`). Hosts without a binding keep this default.
    async fn run_ai(&self, model: &str, inputs: Bytes) -> Result<UpstreamResponse, AiRunError> {
        let _ = (model, inputs);
        Err(AiRunError::Unavailable(
            "this host has no Workers AI binding; give the target `api_keys` and `account_id` to use the REST API"
                .to_owned(),
        ))
    }
}
