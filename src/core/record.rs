//! One usage record per completed request: who asked, what answered, what it used and cost.
//! The core writes it to the log (one JSON line per request with `log_format = "json"`) and
//! hands it to the host ([`crate::core::host::Host::record`]): Prometheus metrics natively,
//! Analytics Engine on the Worker, and the status page's last hour on both.

use serde::Serialize;

use crate::core::usage::Metered;

/// What a request that reached a route used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRecord {
    /// When it ended, in ms since the epoch.
    pub at_ms: u64,
    /// The client (`[clients.NAME]`), or `operator`.
    pub client: &'static str,
    /// The route it named.
    pub route: &'static str,
    /// The API it came in through: `openai` or `anthropic`.
    pub api: &'static str,
    /// The 1-based index of the target that answered in its route; 0 when none did.
    pub target: usize,
    /// That target's provider (`-` when none answered).
    pub provider: &'static str,
    /// The model that target was asked for.
    pub model: String,
    /// The key's secret name (or `binding:NAME`) it went through.
    pub key: String,
    /// The status the client got.
    pub status: u16,
    /// Upstream calls made.
    pub attempts: u32,
    /// Input tokens not read from or written to a cache.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// The reasoning share of the output.
    pub reasoning_tokens: u64,
    /// Whether the token counts are the provider's own (else none were reported).
    pub usage_reported: bool,
    /// From the request's arrival to its answer's end.
    pub latency_ms: u64,
    /// From the request's arrival to the first token, for an answer that had one.
    pub ttft_ms: Option<u64>,
    /// What it cost at the model's price, in USD (0 without a price).
    pub cost_usd: f64,
}

impl UsageRecord {
    /// A record of a request no target answered (yet): no tokens, no cost.
    pub fn unanswered(
        at_ms: u64,
        client: &'static str,
        route: &'static str,
        api: &'static str,
        status: u16,
        latency_ms: u64,
    ) -> Self {
        Self {
            at_ms,
            client,
            route,
            api,
            target: 0,
            provider: "-",
            model: String::new(),
            key: String::new(),
            status,
            attempts: 0,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            usage_reported: false,
            latency_ms,
            ttft_ms: None,
            cost_usd: 0.0,
        }
    }

    /// The record's token counts from `usage`.
    pub fn with_usage(mut self, usage: Option<Metered>) -> Self {
        if let Some(u) = usage {
            self.input_tokens = u.input;
            self.output_tokens = u.output;
            self.cached_tokens = u.cache_read;
            self.cache_write_tokens = u.cache_write;
            self.reasoning_tokens = u.reasoning;
            self.usage_reported = true;
        }
        self
    }

    /// Pico-USD as the record's dollars.
    pub fn usd(pico: u64) -> f64 {
        pico as f64 / 1e12
    }
}
