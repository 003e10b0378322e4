//! The routing table: its data types, shared with the `routes!()` macro through the schema
//! crate, and [`Routes`], what the generated `crate::routes::Table` implements. The core reaches
//! providers only through that table: it names no provider itself.

use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::http::ProxyResponse;
use crate::core::log::LogConfig;
use crate::core::request::ChatRequest;

pub use ai_worker_proxy_config::{
    CooldownPolicy, Deadlines, KeyStrategy, RequestLimits, RetryPolicy, Route, ServerLimits,
    Target, TargetPolicy, Via,
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

    /// Every route, in file order.
    fn routes() -> &'static [Route];

    /// The route a client reaches by sending `model`, if there is one.
    fn find(model: &str) -> Option<&'static Route>;

    /// Serves `request` on `route` (one of [`Routes::routes`]), trying its targets in order, each
    /// through its own provider type.
    async fn complete<H: Host>(
        host: &H,
        route: &'static Route,
        request: &ChatRequest,
    ) -> Result<ProxyResponse, ProxyError>;
}
