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
    /// Routes in file order.
    pub routes: &'static [Route],
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
    /// The `model` value clients send.
    pub name: &'static str,
    /// Targets, tried in order until one answers.
    pub targets: &'static [Target],
}

/// One upstream model on one provider, and the ways to reach it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The provider's name in routes.toml ([`crate::providers::PROVIDERS`]).
    pub provider: &'static str,
    /// The provider's model id, sent upstream in place of the route name.
    pub model: &'static str,
    /// Base URL without a trailing slash (OpenAI-style ones include `/v1`).
    pub base_url: &'static str,
    /// How to reach it, tried in order: its `api_keys`, or the provider's binding when the list
    /// is empty and the provider has one.
    pub vias: &'static [Via],
    /// Completion-token budget to send when the client sets none (providers that need one).
    pub max_tokens: Option<u32>,
    /// Name of the secret holding the account id the provider's URL names (`cloudflare-ai` over
    /// REST only).
    pub account_id: Option<&'static str>,
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
