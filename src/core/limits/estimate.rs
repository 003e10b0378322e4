//! What a request reserves before it is sent: its tokens and their cost, estimated high
//! enough that settling only ever gives back (the real figures replace the estimate then).

use crate::core::request::ChatRequest;
use crate::core::route::{price_of, upstream_model, Price, Route};
use crate::providers::output_limit;

use super::Ask;

/// Output tokens reserved for a request that sets no `max_tokens` and whose models have no
/// known limit.
const DEFAULT_OUTPUT: u64 = 4_096;

/// The reservation for `request` on `route`, whose body was `body_len` bytes: input tokens
/// estimated (the Messages estimate, else a token per four bytes of the body), plus the most
/// the answer may write (the client's `max_tokens`, else the largest output limit of the
/// route's models); priced at the dearest of the route's targets.
pub fn ask(
    route: &Route,
    request: &ChatRequest,
    prices: &[Price],
    body_len: usize,
    now_ms: u64,
    deadline_ms: u64,
) -> Ask {
    let input = request.anthropic().map_or_else(
        || (body_len as u64).div_ceil(4),
        |inbound| inbound.input_estimate,
    );
    let requested = request.max_tokens_asked();
    let star = request.star.as_deref();
    let output = requested.unwrap_or_else(|| {
        route
            .targets
            .iter()
            .filter_map(|t| output_limit::limit(t, &upstream_model(t, star)))
            .max()
            .unwrap_or(DEFAULT_OUTPUT)
    });
    let cost = route
        .targets
        .iter()
        .filter_map(|t| price_of(prices, &upstream_model(t, star)))
        .map(|price| {
            input
                .saturating_mul(price.input.max(price.cache_write))
                .saturating_add(output.saturating_mul(price.output))
        })
        .max()
        .unwrap_or(0);
    Ask {
        now_ms,
        tokens: input.saturating_add(output),
        cost,
        deadline_ms,
    }
}
