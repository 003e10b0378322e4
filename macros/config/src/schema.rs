//! The validated contents of routes.toml. Once a file reaches these types it is known good.
//!
//! They are `'static` because they are what the proxy compiles in: the macro writes a parsed
//! file back out as `static` data of these same types, so routes.toml's schema has one
//! definition. (The parser leaks what it parses to get there; see [`crate::parse`].)

use std::fmt;

/// The whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutesFile {
    /// Name of the secret holding the proxy's own bearer token (`[server] auth_token`).
    pub auth_token: &'static str,
    /// What the proxy logs (`[server] log`, `log_format`).
    pub log: LogConfig,
    /// Limits on a whole request, all attempts together (`[server] total_timeout`,
    /// `max_subrequests`).
    pub limits: RequestLimits,
    /// The native server's limits on client connections (`[server] header_read_timeout`, ...).
    pub server: ServerLimits,
    /// Routes in file order.
    pub routes: &'static [Route],
    /// Clients with their own tokens (`[clients.NAME]`), in file order.
    pub clients: &'static [Client],
    /// Model prices from the file (`[prices."MODEL"]`); the built-in table covers the rest.
    pub prices: &'static [Price],
    /// Where the native host keeps client limits shared by several instances
    /// (`[server] limits_store`); `None`: in process.
    pub limits_store: Option<LimitsStore>,
}

/// A store of client limits shared by several native instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsStore {
    /// A Redis server at this `redis://host:port[/db]` URL (no credentials in routes.toml).
    RedisUrl(&'static str),
    /// A Redis server whose URL (credentials included) is the value of this secret.
    RedisSecret(&'static str),
}

/// What the proxy logs, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Which requests are logged.
    pub level: LogLevel,
    /// How a request is written.
    pub format: LogFormat,
}

/// Which requests are logged (`[server] log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// None.
    Off,
    /// Only failed attempts and requests that failed.
    Errors,
    /// Every attempt of every request.
    Info,
}

/// How a request is written (`[server] log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per attempt: `route=.. target=.. provider=.. model=.. key=.. status=.. ms=..`.
    Text,
    /// One JSON object per request, its attempts in a list.
    Json,
}

impl LogLevel {
    /// Every level, with the name routes.toml uses for it.
    pub const NAMES: [(&'static str, LogLevel); 3] = [
        ("off", LogLevel::Off),
        ("errors", LogLevel::Errors),
        ("info", LogLevel::Info),
    ];
}

impl LogFormat {
    /// Every format, with the name routes.toml uses for it.
    pub const NAMES: [(&'static str, LogFormat); 2] =
        [("text", LogFormat::Text), ("json", LogFormat::Json)];
}

impl LogConfig {
    /// What is logged when routes.toml says nothing: every attempt, as text.
    pub const DEFAULT: LogConfig = LogConfig {
        level: LogLevel::Info,
        format: LogFormat::Text,
    };

    /// Reads `LEVEL` or `LEVEL,FORMAT` (`errors`, `info,json`), as the `PROXY_LOG` variable
    /// overrides routes.toml at run time; `None` if it is not that.
    pub fn parse(text: &str) -> Option<Self> {
        let (level, format) = match text.split_once(',') {
            Some((level, format)) => (level, Some(format)),
            None => (text, None),
        };
        Some(LogConfig {
            level: named(level, &LogLevel::NAMES)?,
            format: match format {
                Some(format) => named(format, &LogFormat::NAMES)?,
                None => LogFormat::Text,
            },
        })
    }
}

/// The value called `name` in `names`.
pub fn named<T: Copy>(name: &str, names: &[(&str, T)]) -> Option<T> {
    names
        .iter()
        .find(|(n, _)| *n == name.trim())
        .map(|(_, v)| *v)
}

/// A model name clients send, and the targets tried for it in order.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    /// The `model` value clients send; ending in `*`, a pattern (see [`Route::pattern_prefix`]).
    pub name: &'static str,
    /// Targets, tried in order until one answers.
    pub targets: &'static [Target],
}

impl Route {
    /// What a pattern route's name starts with before its final `*` (`"claude-"` for
    /// `claude-*`, `""` for the catch-all `*`); `None` for a route reached by its exact name.
    pub fn pattern_prefix(&self) -> Option<&'static str> {
        self.name.strip_suffix('*')
    }
}

/// One upstream model on one provider, and the ways to reach it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The provider's name in routes.toml ([`crate::providers::PROVIDERS`]).
    pub provider: &'static str,
    /// The provider's model id, sent upstream in place of the route name; in a pattern route,
    /// each [`Target::STAR`] in it stands for the text the route name's `*` matched.
    pub model: &'static str,
    /// Base URL without a trailing slash (OpenAI-style ones include `/v1`).
    pub base_url: &'static str,
    /// How to reach it, tried in order: its `api_keys`, or the provider's binding when the list
    /// is empty and the provider has one.
    pub vias: &'static [Via],
    /// Completion-token budget to send when the client sets none (providers that need one).
    pub max_tokens: Option<u32>,
    /// The most output tokens the model can produce; a client asking for more is clamped to it.
    pub max_output_tokens: Option<u32>,
    /// Name of the secret holding the account id the provider's URL names (`cloudflare-ai` over
    /// REST only).
    pub account_id: Option<&'static str>,
    /// The `anthropic-beta` values forwarded to this target, the rest being dropped; `None`: the
    /// proxy's default list (`anthropic` only).
    pub anthropic_betas: Option<&'static [&'static str]>,
    /// Deadlines, key strategy, retries and cool-downs: the target's own, else `[server]`'s.
    pub policy: TargetPolicy,
}

impl Target {
    /// The placeholder in a pattern route's `model` for the text its name's `*` matched.
    pub const STAR: &'static str = "{*}";

    /// The largest `max_output_tokens` routes.toml accepts: beyond any model's output, so a
    /// larger value is a typo.
    pub const MAX_OUTPUT_TOKENS: u32 = 10_000_000;
}

/// How a target's attempts are timed, ordered, retried and remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    /// How long each step of an attempt may take (`connect_timeout`, `headers_timeout`,
    /// `first_token_timeout`, `idle_timeout`).
    pub deadlines: Deadlines,
    /// Which healthy key is tried first (`key_strategy`).
    pub key_strategy: KeyStrategy,
    /// Same-key retries after a 5xx or a network error (`retry`).
    pub retry: RetryPolicy,
    /// How long a failing key is skipped (`cooldown`).
    pub cooldown: CooldownPolicy,
}

impl TargetPolicy {
    /// When neither the target nor `[server]` says anything.
    pub const DEFAULT: TargetPolicy = TargetPolicy {
        deadlines: Deadlines::DEFAULT,
        key_strategy: KeyStrategy::Ordered,
        retry: RetryPolicy::DEFAULT,
        cooldown: CooldownPolicy::DEFAULT,
    };
}

/// Limits on a whole request, all its attempts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// The whole request, every attempt included, in ms (`total_timeout`).
    pub total_timeout_ms: u64,
    /// Most upstream calls one request may make (`max_subrequests`): the Workers platform
    /// allows 50 per request on the Free plan.
    pub max_subrequests: u32,
}

impl RequestLimits {
    /// When routes.toml says nothing: 15 minutes, and the Free plan's 50 subrequests.
    pub const DEFAULT: RequestLimits = RequestLimits {
        total_timeout_ms: 900_000,
        max_subrequests: 50,
    };
}

/// What the native server allows one client connection; the Workers runtime sets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From a connection's first byte (or its opening) to its request headers' end, in ms
    /// (`header_read_timeout`).
    pub header_read_timeout_ms: u64,
    /// For a request's whole body, in ms (`body_read_timeout`).
    pub body_read_timeout_ms: u64,
    /// How long an idle connection is kept open for its next request, in ms
    /// (`keep_alive_timeout`; 0: one request per connection).
    pub keep_alive_timeout_ms: u64,
    /// Open client connections, all threads together (`max_connections`).
    pub max_connections: u32,
    /// The request line and headers together, in bytes (`max_header_bytes`).
    pub max_header_bytes: u32,
    /// How long running requests may finish after SIGTERM or SIGINT, in ms
    /// (`shutdown_timeout`).
    pub shutdown_timeout_ms: u64,
}

impl ServerLimits {
    /// The smallest `max_header_bytes`: hyper's read buffer cannot be smaller.
    pub const MIN_HEADER_BYTES: u32 = 8 * 1024;
    /// The largest `max_header_bytes`.
    pub const MAX_HEADER_BYTES: u32 = 1024 * 1024;

    /// When routes.toml says nothing. A slow phone still sends 16 MiB in a minute; a
    /// connection reused by an SDK's pool stays warm for a minute; a stream gets 30 s to end
    /// on shutdown, as an orchestrator's default grace period allows.
    pub const DEFAULT: ServerLimits = ServerLimits {
        header_read_timeout_ms: 10_000,
        body_read_timeout_ms: 60_000,
        keep_alive_timeout_ms: 60_000,
        max_connections: 4_096,
        max_header_bytes: 32 * 1024,
        shutdown_timeout_ms: 30_000,
    };
}

/// How long each step of one attempt may take, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Connecting, TCP and TLS (`connect_timeout`).
    pub connect_ms: u64,
    /// From sending to the response headers (`headers_timeout`).
    pub headers_ms: u64,
    /// From sending to a stream's first event that carries text, reasoning or a tool call
    /// (`first_token_timeout`).
    pub first_token_ms: u64,
    /// Between two chunks of a body (`idle_timeout`).
    pub idle_ms: u64,
}

impl Deadlines {
    /// When routes.toml says nothing. Generous: a non-streamed reasoning answer can take
    /// minutes before its headers, and a thinking model can be silent as long before its first
    /// token; a hung upstream is still given up in bounded time.
    pub const DEFAULT: Deadlines = Deadlines {
        connect_ms: 10_000,
        headers_ms: 600_000,
        first_token_ms: 300_000,
        idle_ms: 120_000,
    };
}

/// Which healthy key of a target is tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStrategy {
    /// In `api_keys` order.
    Ordered,
    /// Each request starts one key further along, spreading load over the healthy keys.
    RoundRobin,
    /// A session id (the `x-session-id` header, the request's `user`, or Anthropic's
    /// `metadata.user_id`) picks the key, so a conversation stays on one key and keeps its
    /// provider's prompt cache warm.
    Sticky,
}

impl KeyStrategy {
    /// Every strategy, with the name routes.toml uses for it.
    pub const NAMES: [(&'static str, KeyStrategy); 3] = [
        ("ordered", KeyStrategy::Ordered),
        ("round-robin", KeyStrategy::RoundRobin),
        ("sticky", KeyStrategy::Sticky),
    ];
}

/// Same-key retries after a 5xx or a network error, with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries on the same key after the first try (0: off).
    pub attempts: u32,
    /// The first backoff's upper bound, in ms; it doubles on each retry.
    pub base_ms: u64,
    /// The largest backoff, in ms.
    pub max_ms: u64,
}

impl RetryPolicy {
    /// Off: a failing key hands over to the next one at once.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 0,
        base_ms: 200,
        max_ms: 2_000,
    };
}

/// How long a failing key × model is skipped, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// After a 429 without a `Retry-After` hint; doubled on each repeat.
    pub rate_limited_ms: u64,
    /// After 401/403/402 or a key-invalid answer.
    pub rejected_ms: u64,
    /// After a 5xx, a network error or a timeout.
    pub failed_ms: u64,
    /// The longest cool-down, hints included (0: keys never cool down).
    pub max_ms: u64,
}

impl CooldownPolicy {
    /// When routes.toml says nothing.
    pub const DEFAULT: CooldownPolicy = CooldownPolicy {
        rate_limited_ms: 5_000,
        rejected_ms: 600_000,
        failed_ms: 5_000,
        max_ms: 600_000,
    };
}

/// One way to reach a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An API key: the name of the secret holding it (never its value).
    Key(&'static str),
    /// A binding the host provides, by name (the Worker's `env.AI`).
    Binding(&'static str),
}

/// How logs and failure messages name a via: the key's secret name, or `binding:NAME`.
impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Key(name) => f.write_str(name),
            Via::Binding(name) => write!(f, "binding:{name}"),
        }
    }
}

/// A client of the proxy (`[clients.NAME]`): its own tokens, the routes it may use, and its
/// limits. The name, not a token, is what the limits count under, so rotating a token keeps
/// the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The table's name (`ci-bot` in `[clients.ci-bot]`).
    pub name: &'static str,
    /// Names of the secrets holding its tokens (never their values); any one opens the proxy.
    pub tokens: &'static [&'static str],
    /// The route names and patterns it may use (`routes`); `None`: every route.
    pub routes: Option<&'static [&'static str]>,
    /// Requests started per calendar minute (`requests_per_minute`).
    pub requests_per_minute: Option<u32>,
    /// Input + output tokens per calendar minute (`tokens_per_minute`).
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once (`max_concurrent`).
    pub max_concurrent: Option<u32>,
    /// Spend per period (`budget = { usd = 25.0, per = "month" }`).
    pub budget: Option<Budget>,
}

impl Client {
    /// Whether the client may use the route named `route_name` (a route's own name, `*` and
    /// all, not the model the client sent): every route without `routes`, else a route some
    /// entry allows (see [`Client::entry_allows`]).
    pub fn allows(&self, route_name: &str) -> bool {
        self.routes.is_none_or(|entries| {
            entries
                .iter()
                .any(|entry| Client::entry_allows(entry, route_name))
        })
    }

    /// Whether one entry of `routes` allows the route named `route_name`: an entry equal to
    /// the name does, and an entry ending in `*` allows every route whose name starts with
    /// what comes before it (`claude-*` allows `claude-opus` and the pattern route
    /// `claude-opus-*`; `*` allows every route).
    pub fn entry_allows(entry: &str, route_name: &str) -> bool {
        entry == route_name
            || entry
                .strip_suffix('*')
                .is_some_and(|prefix| route_name.starts_with(prefix))
    }

    /// Whether the client has any limit to enforce (a client without is only a token and an
    /// allow-list, and costs no limiter round trip).
    pub fn limited(&self) -> bool {
        self.requests_per_minute.is_some()
            || self.tokens_per_minute.is_some()
            || self.max_concurrent.is_some()
            || self.budget.is_some()
    }
}

/// A spending limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most the client may spend per period, in pico-USD (`usd` × 10¹²): integer
    /// counters add up exactly in every store.
    pub pico_usd: u64,
    /// The period, in UTC calendar terms.
    pub per: BudgetPeriod,
}

/// The period a [`Budget`] renews on (`per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPeriod {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl BudgetPeriod {
    /// Every period, with the name routes.toml uses for it.
    pub const NAMES: [(&'static str, BudgetPeriod); 2] =
        [("day", BudgetPeriod::Day), ("month", BudgetPeriod::Month)];
}

/// What a model costs (`[prices."MODEL"]`, or the built-in table), in pico-USD per token, which
/// is USD per million tokens × 10⁶: `input = 3.0` is 3,000,000, and `0.01875` still an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// The upstream model id the price is for.
    pub model: &'static str,
    /// Input tokens not read from a cache.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's prompt cache (Anthropic).
    pub cache_write: u64,
}
