//! A request's accounting, from before dispatch to its answer's end: the client's limits
//! reserved (and refused there, before any upstream call), then, once the answer has ended,
//! settled with what it really used, and one usage record written.

use crate::core::clients::Caller;
use crate::core::cost;
use crate::core::error::ProxyError;
use crate::core::host::Host;
use crate::core::limits::{estimate, Ask, Grant, Standing, Used};
use crate::core::log;
use crate::core::meter::{Meter, Reading};
use crate::core::record::UsageRecord;
use crate::core::request::{ChatRequest, Front, Operation};
use crate::core::route::{price_of, Client, Route, Routes};

/// Reserves `chat` against its caller's limits (a client with some), and gives `chat` the meter
/// that settles and records it. Returns the client's standing for the response headers.
pub async fn open<R: Routes, H: Host>(
    host: &H,
    caller: Caller,
    route: &'static Route,
    chat: &mut ChatRequest,
    body_len: usize,
    started_ms: u64,
) -> Result<Option<Standing>, ProxyError> {
    let api = match chat.front {
        Front::OpenAi => "openai",
        Front::Anthropic(_) => "anthropic",
    };
    let client = match caller {
        Caller::Operator => "operator",
        Caller::Client(client) => client.name,
    };
    let log_config = log::config(host, R::LOG);
    let grant = match caller.limited() {
        Some(limited) => match reserve::<R, H>(host, limited, route, chat, body_len).await {
            Ok(grant) => Some((limited, grant)),
            Err(refused) => {
                // A refusal is a request too: it shows in the metrics and the last hour.
                let now = host.now_ms();
                let latency = now.saturating_sub(started_ms);
                let record = UsageRecord::unanswered(
                    now,
                    client,
                    route.name,
                    api,
                    refused.status(),
                    latency,
                );
                log::usage(host, log_config, &record);
                host.record(&record);
                return Err(refused);
            }
        },
        None => None,
    };
    // A limit on tokens or spend needs the real figures; otherwise the host says.
    chat.usage_wanted = host.wants_usage()
        || grant.is_some_and(|(client, _)| {
            client.tokens_per_minute.is_some() || client.budget.is_some()
        });
    let host = host.clone();
    chat.meter = Meter::new(Box::new(move |reading: Reading| {
        let now = host.now_ms();
        let cost = match (&reading.usage, &reading.answered_by) {
            (Some(usage), Some(answered)) => {
                price_of(R::PRICES, &answered.model).map(|price| cost::of(price, usage))
            }
            _ => None,
        };
        if let Some((client, grant)) = grant {
            let used = match (reading.usage, &reading.answered_by) {
                // Nothing answered: nothing was used but the request itself.
                (_, None) => Used { tokens: 0, cost: 0 },
                // An answer whose usage was not seen keeps what it reserved.
                (None, Some(_)) => grant.reserved,
                (Some(usage), Some(_)) => Used {
                    tokens: usage.total(),
                    cost: cost.unwrap_or(0),
                },
            };
            host.settle(client, grant, used);
        }
        let latency = now.saturating_sub(started_ms);
        let mut record =
            UsageRecord::unanswered(now, client, route.name, api, reading.status, latency)
                .with_usage(reading.usage);
        if let Some(answered) = &reading.answered_by {
            record.target = route
                .targets
                .iter()
                .position(|t| std::ptr::eq(t, answered.target))
                .map_or(0, |i| i + 1);
            record.provider = answered.target.provider;
            record.model = answered.model.clone();
            record.key = answered.via.to_string();
            record.attempts = answered.calls;
            record.ttft_ms = Some(answered.first_token_at_ms.saturating_sub(started_ms));
            record.cost_usd = UsageRecord::usd(cost.unwrap_or(0));
        }
        log::usage(&host, log_config, &record);
        host.record(&record);
    }));
    Ok(grant.map(|(_, grant)| grant.standing))
}

/// Reserves `chat`'s estimate against `client`'s limits.
async fn reserve<R: Routes, H: Host>(
    host: &H,
    client: &'static Client,
    route: &'static Route,
    chat: &ChatRequest,
    body_len: usize,
) -> Result<Grant, ProxyError> {
    let now = host.now_ms();
    let deadline = now.saturating_add(R::LIMITS.total_timeout_ms);
    let ask = match chat.operation {
        // A count generates nothing and costs nothing, but is a request all the same.
        Operation::CountTokens => Ask {
            now_ms: now,
            tokens: 0,
            cost: 0,
            deadline_ms: deadline,
        },
        Operation::Complete => estimate::ask(route, chat, R::PRICES, body_len, now, deadline),
    };
    match host.reserve(client, ask).await {
        Ok(Ok(grant)) => Ok(grant),
        Ok(Err(refusal)) => Err(ProxyError::LimitReached {
            client: client.name,
            refusal,
        }),
        Err(unavailable) => Err(ProxyError::LimitsUnavailable(unavailable)),
    }
}
