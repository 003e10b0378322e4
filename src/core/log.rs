//! What the proxy logs about a request that reached a route, and how: `[server] log` (`off`,
//! `errors`, `info`) and `log_format` (`text`: a line per attempt; `json`: one object per
//! request), overridden at run time by the `PROXY_LOG` variable (`errors`, `info,json`). Keys
//! appear by their secret's name, never by value.

use std::fmt;

use serde::Serialize;

use crate::core::host::Host;
use crate::core::record::UsageRecord;
use crate::core::route::{Route, Via};

pub use ai_worker_proxy_config::{LogConfig, LogFormat, LogLevel};

/// The variable (environment, or the Worker's vars and secrets) that overrides routes.toml's
/// logging at run time: `LEVEL` or `LEVEL,FORMAT`.
pub const LOG_VARIABLE: &str = "PROXY_LOG";

/// The configuration in force: `PROXY_LOG` if it is set to something valid, else `compiled`.
pub fn config<H: Host>(host: &H, compiled: LogConfig) -> LogConfig {
    host.secret(LOG_VARIABLE)
        .and_then(|value| LogConfig::parse(&value))
        .unwrap_or(compiled)
}

/// Writes a request's usage record: at `info`, one JSON line (`"event":"usage"`) with
/// `log_format = "json"`, a `usage ...` line of `key=value` pairs with `text`.
pub fn usage<H: Host>(host: &H, config: LogConfig, record: &UsageRecord) {
    if config.level != LogLevel::Info {
        return;
    }
    match config.format {
        LogFormat::Json => {
            #[derive(Serialize)]
            struct Line<'a> {
                event: &'static str,
                #[serde(flatten)]
                record: &'a UsageRecord,
            }
            host.log(&json(&Line {
                event: "usage",
                record,
            }));
        }
        LogFormat::Text => host.log(&format!(
            "usage client={} route={} api={} target={} provider={} model={} key={} status={} attempts={} input={} output={} cached={} cache_write={} reasoning={} ms={} ttft_ms={} cost_usd={}",
            record.client,
            record.route,
            record.api,
            record.target,
            record.provider,
            record.model,
            record.key,
            record.status,
            record.attempts,
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
            record.cache_write_tokens,
            record.reasoning_tokens,
            record.latency_ms,
            record.ttft_ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
            six_decimals(record.cost_usd),
        )),
    }
}

/// `usd` with six decimals, as `{:.6}` would write it, in integers: formatting an f64 would link
/// float printing into the Worker (~15 KB).
fn six_decimals(usd: f64) -> String {
    let micro = (usd.max(0.0) * 1e6).round() as u64;
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// One attempt as the log records it.
#[derive(Debug, Clone, Serialize)]
struct Entry {
    /// 1-based.
    target: usize,
    provider: &'static str,
    model: &'static str,
    key: String,
    status: String,
    ms: u64,
}

/// One request's log, written as configured while failover tries its targets.
pub struct RequestLog {
    config: LogConfig,
    route: &'static Route,
    /// Every attempt so far (JSON format only).
    entries: Vec<Entry>,
    /// Some attempt failed.
    failed: bool,
}

#[derive(Serialize)]
struct RequestLine<'a> {
    route: &'static str,
    status: u16,
    attempts: &'a [Entry],
}

#[derive(Serialize)]
struct InterruptedLine<'a> {
    route: &'static str,
    event: &'static str,
    #[serde(flatten)]
    attempt: &'a Entry,
    reason: &'a str,
}

impl RequestLog {
    /// A log for one request on `route`.
    pub fn new(config: LogConfig, route: &'static Route) -> Self {
        Self {
            config,
            route,
            entries: Vec::new(),
            failed: false,
        }
    }

    /// One attempt of target `index` through `via`, ended with `status` (`200`, `429`,
    /// `network-error`, `200-then-529`, ...) after `ms`. Text writes its line now.
    pub fn attempt<H: Host>(&mut self, host: &H, index: usize, via: Via, status: &str, ms: u64) {
        let ok = status == "200";
        self.failed |= !ok;
        match (self.config.level, self.config.format) {
            (LogLevel::Off, _) => {}
            (LogLevel::Errors, LogFormat::Text) if ok => {}
            (_, LogFormat::Text) => host.log(&format!(
                "{} status={status} ms={ms}",
                self.label(index, via)
            )),
            (_, LogFormat::Json) => self.entries.push(self.entry(index, via, status, ms)),
        }
    }

    /// The request was answered with `status`: JSON writes its one line now.
    pub fn finish<H: Host>(&self, host: &H, status: u16) {
        let wanted = match self.config.level {
            LogLevel::Off => false,
            LogLevel::Errors => self.failed || status >= 400,
            LogLevel::Info => true,
        };
        if wanted && self.config.format == LogFormat::Json {
            host.log(&json(&RequestLine {
                route: self.route.name,
                status,
                attempts: &self.entries,
            }));
        }
    }

    /// What to call if the answer of target `index` through `via` fails after its first bytes.
    pub fn on_interrupted<H: Host>(
        &self,
        host: &H,
        index: usize,
        via: Via,
    ) -> Box<dyn FnOnce(&str)> {
        if self.config.level == LogLevel::Off {
            return Box::new(|_| {});
        }
        let host = host.clone();
        match self.config.format {
            LogFormat::Text => {
                let route = self.route;
                Box::new(move |reason| {
                    let label = AttemptLabel { route, index, via };
                    host.log(&format!("{label} stream-interrupted reason={reason:?}"))
                })
            }
            LogFormat::Json => {
                let entry = self.entry(index, via, "200", 0);
                let route = self.route.name;
                Box::new(move |reason| {
                    host.log(&json(&InterruptedLine {
                        route,
                        event: "stream_interrupted",
                        attempt: &entry,
                        reason,
                    }))
                })
            }
        }
    }

    fn entry(&self, index: usize, via: Via, status: &str, ms: u64) -> Entry {
        let (provider, model) = names(self.route, index);
        Entry {
            target: index + 1,
            provider,
            model,
            key: via.to_string(),
            status: status.to_owned(),
            ms,
        }
    }

    fn label(&self, index: usize, via: Via) -> String {
        AttemptLabel {
            route: self.route,
            index,
            via,
        }
        .to_string()
    }
}

/// The provider and model of target `index` of `route`.
fn names(route: &Route, index: usize) -> (&'static str, &'static str) {
    route
        .targets
        .get(index)
        .map_or(("-", "-"), |t| (t.provider, t.model))
}

fn json(line: &impl Serialize) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_string(line).unwrap_or_default()
}

/// `route=.. target=i/n provider=.. model=.. key=..`: how every text line names an attempt.
struct AttemptLabel<'a> {
    route: &'a Route,
    index: usize,
    via: Via,
}

impl fmt::Display for AttemptLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (provider, model) = names(self.route, self.index);
        write!(
            f,
            "route={} target={}/{} provider={provider} model={model} key={}",
            self.route.name,
            self.index + 1,
            self.route.targets.len(),
            self.via
        )
    }
}

#[cfg(test)]
mod tests {
    use super::six_decimals;

    #[test]
    fn costs_have_six_decimals() {
        assert_eq!(six_decimals(0.0), "0.000000");
        assert_eq!(six_decimals(0.000_123), "0.000123");
        assert_eq!(six_decimals(12.5), "12.500000");
        assert_eq!(six_decimals(0.000_000_6), "0.000001");
        assert_eq!(six_decimals(2.718_281_9), "2.718282");
    }
}
