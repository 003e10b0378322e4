//! Who sent a request: the operator (`[server] auth_token`, every route, no limits) or one of
//! routes.toml's clients (`[clients.NAME]`), by the token it presented.

use crate::core::auth;
use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::http::IncomingRequest;
use crate::core::route::{Client, Routes};

/// The headers a token may come in, in the order they are read: what the OpenAI SDKs send
/// (`Authorization: Bearer`, or bare), the Anthropic SDKs (`x-api-key`) and the Gemini SDKs
/// (`x-goog-api-key`).
const TOKEN_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-goog-api-key"];

/// Who a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The operator's token: every route, no limits.
    Operator,
    /// A client's token.
    Client(&'static Client),
}

impl Caller {
    /// Whether the caller may use the route named `route`.
    pub fn allows(&self, route: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Client(client) => client.allows(route),
        }
    }

    /// The client, if the caller is one with limits to enforce.
    pub fn limited(&self) -> Option<&'static Client> {
        match self {
            Caller::Client(client) if client.limited() => Some(client),
            _ => None,
        }
    }
}

/// The caller whose token `request` presents, or 401. Without the operator's token configured
/// the proxy refuses everyone (fail closed), clients included.
pub fn identify<R: Routes, H: Host>(
    host: &H,
    request: &IncomingRequest,
) -> Result<Caller, ProxyError> {
    let operator = host
        .secret(R::AUTH_TOKEN_SECRET)
        .filter(|t| !t.is_empty())
        .ok_or(ProxyError::AuthNotConfigured(R::AUTH_TOKEN_SECRET))?;
    let presented = TOKEN_HEADERS
        .iter()
        .find_map(|name| request.header(name))
        .ok_or(ProxyError::Unauthorized)?;
    let token = auth::presented_token(Some(&presented)).ok_or(ProxyError::Unauthorized)?;
    // Every token is compared, whichever matches, so the time taken does not say which did.
    let mut caller = auth::tokens_match(token, &operator).then_some(Caller::Operator);
    for client in R::CLIENTS {
        for name in client.tokens {
            let matches = host
                .secret(name)
                .is_some_and(|expected| auth::tokens_match(token, &expected));
            if matches && caller.is_none() {
                caller = Some(Caller::Client(client));
            }
        }
    }
    caller.ok_or(ProxyError::Unauthorized)
}
