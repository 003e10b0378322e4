//! What the core needs from the runtime it runs in: outbound HTTP, secrets, a clock and a log.
//! The Workers host and the native host each implement [`Host`]; the core knows neither.

use std::any::Any;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::Stream;

use crate::core::health::{Cooldown, KeyHealth};
use crate::core::limits::local::LocalLimits;
use crate::core::limits::{Ask, Counters, Grant, Refusal, Used};
use crate::core::recent::LastHour;
use crate::core::record::UsageRecord;
use crate::core::route::Client;

/// An upstream request, fully built by a provider.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    /// Absolute URL.
    pub url: String,
    /// Headers to send (credentials included; never log these).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Bytes,
    /// Whether the answer is wanted as a stream; if not, a host may read the whole answer
    /// before handing it over (the Worker does, in the same promise as the `fetch`).
    pub stream: bool,
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

/// The limits a host enforces on one attempt: its connection, the wait for its answer to begin,
/// and its body. (The core races a stream's first token against [`Host::sleep`] itself.) The
/// host enforces them because it can do so for less: on the Worker, one timer per attempt
/// serves the headers and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest time to connect (TCP and TLS). A host that cannot tell connecting from waiting
    /// for headers (the Worker's `fetch`) leaves it to `headers_ms`.
    pub connect_ms: u64,
    /// Longest wait, from the call, for the response headers (a binding's answer): the call
    /// then ends with [`NetworkError::NoHeaders`] ([`BindingError::NoAnswer`]) and is abandoned.
    pub headers_ms: u64,
    /// Longest silence between two body chunks: the body then ends with a [`BodyError`].
    pub idle_ms: u64,
    /// When the whole request must be over, in ms since the epoch: the body then ends with a
    /// [`BodyError`].
    pub deadline_ms: u64,
}

/// A failure reading an upstream body after its headers arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub String);

impl BodyError {
    /// The body stayed silent longer than `idle_timeout`.
    pub fn idle(ms: u64) -> Self {
        Self(format!("no data for {} (idle_timeout)", seconds(ms)))
    }

    /// The request's `total_timeout` passed while the body was still coming.
    pub fn deadline() -> Self {
        Self(DEADLINE_PASSED.to_owned())
    }

    /// Whether this is the request's deadline passing, after which nothing can be retried.
    pub fn is_deadline(&self) -> bool {
        self.0 == DEADLINE_PASSED
    }
}

const DEADLINE_PASSED: &str = "the request's total_timeout passed";

/// `1.5 s`, `30 s`: a duration in ms as routes.toml writes it.
pub fn seconds(ms: u64) -> String {
    // In integers: formatting an f64 would link float printing into the Worker (~15 KB).
    let (whole, fraction) = (ms / 1000, ms % 1000);
    if fraction == 0 {
        format!("{whole} s")
    } else {
        let fraction = format!("{fraction:03}");
        format!("{whole}.{} s", fraction.trim_end_matches('0'))
    }
}

/// An upstream body, read as it arrives. The host that made it may take it back
/// ([`BodySource::into_any`]) to carry the rest itself (the Worker hands a pass-through to the
/// runtime).
pub type UpstreamBody = Box<dyn BodySource>;

/// What an [`UpstreamBody`] is made of: any byte stream the host can recognise again.
pub trait BodySource: Stream<Item = Result<Bytes, BodyError>> + Unpin {
    /// The source itself, for the host that made it to recognise.
    fn as_any(&self) -> &dyn Any;
    /// The source itself, for the host that made it to take back.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Stream<Item = Result<Bytes, BodyError>> + Unpin + 'static> BodySource for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// An upstream response whose body has not been read yet.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
    /// The `retry-after` header, if any, as sent.
    pub retry_after: Option<String>,
    /// The body.
    pub body: UpstreamBody,
}

/// A failure to get any response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    /// DNS, connect, TLS, a reset before the headers: the host's description.
    Failed(String),
    /// No response headers within [`Timeouts::headers_ms`].
    NoHeaders,
}

/// A call to a binding the host provides: `env[binding][method](...args)` on the Worker.
#[derive(Debug, Clone)]
pub struct BindingCall {
    /// The method to call on the binding.
    pub method: &'static str,
    /// The arguments, each as JSON text: the host hands them over as plain values.
    pub args: Vec<Bytes>,
}

/// Why a binding call produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingError {
    /// This host has no such binding (the native host has none): the attempt fails over.
    Unavailable(String),
    /// The call threw, or its promise rejected: the error's text, which the provider reads.
    Thrown(String),
    /// No answer within [`Timeouts::headers_ms`].
    NoAnswer,
}

/// The store of client limits could not answer; the message says why (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsUnavailable {
    /// Why.
    pub why: String,
    /// The deployment has no store at all (a binding missing): a configuration error, where
    /// the others are outages.
    pub unconfigured: bool,
}

impl LimitsUnavailable {
    /// The store is configured but did not answer.
    pub fn unreachable(why: String) -> Self {
        Self {
            why,
            unconfigured: false,
        }
    }

    /// There is no store to ask.
    pub fn unconfigured(why: String) -> Self {
        Self {
            why,
            unconfigured: true,
        }
    }
}

/// The runtime the core runs in.
///
/// Futures here are deliberately not `Send`: the Workers runtime is single-threaded and its
/// JS futures are `!Send`, so the native host runs the core on a current-thread runtime too.
#[allow(async_fn_in_trait)]
pub trait Host: Clone + 'static {
    /// Sends a request and returns once the response headers have arrived, or with
    /// [`NetworkError::NoHeaders`] once `timeouts.headers_ms` have passed without them.
    /// Dropping the future (or, later, the body) abandons the request: the host cancels it
    /// upstream.
    async fn send(
        &self,
        request: UpstreamRequest,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, NetworkError>;
    /// Calls the binding named `binding`. Its answer comes back as if it were an HTTP response,
    /// so the failover loop and the translators treat bindings and HTTP alike: a value as its
    /// JSON (`application/json`), a byte stream as its bytes (`text/event-stream`); no answer
    /// within `timeouts.headers_ms` is [`BindingError::NoAnswer`]. Hosts without bindings keep
    /// this default.
    async fn call_binding(
        &self,
        binding: &str,
        call: BindingCall,
        timeouts: Timeouts,
    ) -> Result<UpstreamResponse, BindingError> {
        let _ = (call, timeouts);
        Err(BindingError::Unavailable(format!(
            "this host has no `{binding}` binding (bindings exist on the Worker only); use a target with `api_keys` here"
        )))
    }
    /// Resolves after `ms` milliseconds.
    async fn sleep(&self, ms: u64);
    /// The cool-down memory of this process (native) or isolate (Worker).
    fn health(&self) -> &KeyHealth;
    /// Merges the cool-downs other instances shared into [`Host::health`], when this host shares
    /// them and its copy is stale. Hosts that share nothing keep this default.
    async fn refresh_health(&self) {}
    /// Shares a cool-down this instance just recorded with other instances, without delaying
    /// the response. Hosts that share nothing keep this default.
    fn share_cooldown(&self, key: &str, cooldown: Cooldown) {
        let _ = (key, cooldown);
    }
    /// This process's (native) or isolate's (Worker) store of client limits; `None` for a host
    /// that keeps none (a test host), where a limited client is refused.
    fn local_limits(&self) -> Option<&LocalLimits> {
        None
    }
    /// Reserves `ask` against `client`'s limits in the store they are kept in: by default
    /// [`Host::local_limits`]. An error: the store cannot be reached, and the request is
    /// refused rather than let through unlimited.
    async fn reserve(
        &self,
        client: &'static Client,
        ask: Ask,
    ) -> Result<Result<Grant, Refusal>, LimitsUnavailable> {
        match self.local_limits() {
            Some(limits) => Ok(limits.reserve(client, &ask)),
            None => Err(LimitsUnavailable::unconfigured(
                "this host keeps no client limits".to_owned(),
            )),
        }
    }
    /// Settles a grant [`Host::reserve`] gave, without delaying the response.
    fn settle(&self, client: &'static Client, grant: Grant, used: Used) {
        if let Some(limits) = self.local_limits() {
            limits.settle(client, &grant, &used);
        }
    }
    /// A client's counters as the limits store holds them now (for the status page).
    async fn client_counters(&self, client: &'static Client) -> Option<Counters> {
        self.local_limits()
            .and_then(|limits| limits.counters(client.name))
    }
    /// The last hour of usage records as this host keeps them (for the status page).
    async fn last_hour(&self) -> LastHour {
        LastHour::none()
    }
    /// The Prometheus metrics this host keeps, rendered; `None` on a host that keeps none.
    fn metrics_text(&self) -> Option<String> {
        None
    }
    /// Whether every request's exact usage is wanted (metrics, analytics), even where reading it
    /// costs: an OpenAI stream is then read event by event instead of relayed unread.
    fn wants_usage(&self) -> bool {
        true
    }
    /// Takes one request's usage record (metrics, analytics); hosts that keep none ignore it.
    fn record(&self, record: &UsageRecord) {
        let _ = record;
    }
    /// A secret's value by name, if set; shared, as hosts read each name once and a request
    /// asks for several.
    fn secret(&self, name: &str) -> Option<Rc<str>>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Writes one log line. Callers never pass secret values.
    fn log(&self, line: &str);
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn seconds_are_written_as_a_float_would_be() {
        assert_eq!(seconds(30_000), "30 s");
        assert_eq!(seconds(1_500), "1.5 s");
        assert_eq!(seconds(250), "0.25 s");
        assert_eq!(seconds(1), "0.001 s");
        assert_eq!(seconds(61_230), "61.23 s");
        assert_eq!(seconds(0), "0 s");
    }
}
