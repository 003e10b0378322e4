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
    /// Routes in file order.
    pub routes: &'static [Route],
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
