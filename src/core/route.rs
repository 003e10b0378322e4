//! The routing table: its data types, shared with the `routes!()` macro through the schema
//! crate, and [`Routes`], what the generated `crate::routes::Table` implements. The core reaches
//! providers only through that table: it names no provider itself.
//!
//! A route name ending in `*` is a pattern: `claude-*` takes every model starting with
//! `claude-`, and `*` every model. An exact name wins; otherwise the pattern with the longest
//! prefix the model starts with. As `*` may only end a name, two patterns can never tie.

use std::borrow::Cow;

use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::http::ProxyResponse;
use crate::core::log::LogConfig;
use crate::core::request::ChatRequest;

pub use ai_worker_proxy_config::price_of;
pub use ai_worker_proxy_config::{
    Budget, BudgetPeriod, Client, CooldownPolicy, Deadlines, KeyStrategy, LimitsStore, Price,
    RequestLimits, RetryPolicy, Route, ServerLimits, Target, TargetPolicy, Via,
};

/// A routing table compiled from routes.toml.
#[allow(async_fn_in_trait)] // the futures are deliberately not `Send` (see `Host`)
pub trait Routes {
    /// Name of the secret that holds the proxy's bearer token (`[server].auth_token`).
    const AUTH_TOKEN_SECRET: &'static str;

    /// What is logged (`[server] log`, `log_format`).
    const LOG: LogConfig;

    /// Limits on a whole request (`[server] total_timeout`, `max_subrequests`).
    const LIMITS: RequestLimits;

    /// The native server's limits on client connections (`[server] header_read_timeout`, ...).
    const SERVER: ServerLimits;

    /// Clients with their own tokens and limits (`[clients.NAME]`), in file order.
    const CLIENTS: &'static [Client];

    /// Model prices routes.toml sets (`[prices."MODEL"]`), before the built-in table.
    const PRICES: &'static [Price];

    /// Where the native host shares client limits between instances (`[server] limits_store`).
    const LIMITS_STORE: Option<LimitsStore>;

    /// Every route, in file order.
    fn routes() -> &'static [Route];

    /// The route a client reaches by sending `model`, if there is one: the route named `model`,
    /// else the pattern with the longest prefix `model` starts with.
    fn find(model: &str) -> Option<Found<'_>>;

    /// Serves `request` on `route` (one of [`Routes::routes`]), trying its targets in order, each
    /// through its own provider type.
    async fn complete<H: Host>(
        host: &H,
        route: &'static Route,
        request: &ChatRequest,
    ) -> Result<ProxyResponse, ProxyError>;
}

/// A route a model name reached, and what its `*` matched.
#[derive(Debug, Clone, Copy)]
pub struct Found<'m> {
    /// The route.
    pub route: &'static Route,
    /// The part of the model name the route's `*` matched; `None` for an exact name.
    pub star: Option<&'m str>,
}

/// The model id to send `target` upstream: its `model`, with each `{*}` replaced by `star`, the
/// text the route name's `*` matched.
pub fn upstream_model<'a>(target: &'a Target, star: Option<&str>) -> Cow<'a, str> {
    match star {
        Some(star) if target.model.contains(Target::STAR) => {
            Cow::Owned(target.model.replace(Target::STAR, star))
        }
        _ => Cow::Borrowed(target.model),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(model: &'static str) -> Target {
        Target {
            provider: "anthropic",
            model,
            base_url: "https://api.anthropic.com",
            vias: &[Via::Key("K")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: TargetPolicy::DEFAULT,
        }
    }

    #[test]
    fn the_star_fills_each_placeholder_and_a_plain_model_is_borrowed() {
        let dated = target("claude-{*}");
        assert_eq!(
            upstream_model(&dated, Some("sonnet-4-20250514")),
            "claude-sonnet-4-20250514"
        );
        assert_eq!(upstream_model(&target("{*}"), Some("x/y")), "x/y");
        assert_eq!(upstream_model(&target("a-{*}-{*}"), Some("b")), "a-b-b");
        let fixed = target("claude-opus-4-20250514");
        assert!(matches!(
            upstream_model(&fixed, Some("anything")),
            Cow::Borrowed("claude-opus-4-20250514")
        ));
        assert!(matches!(
            upstream_model(&fixed, None),
            Cow::Borrowed("claude-opus-4-20250514")
        ));
    }
}
