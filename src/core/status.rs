//! `GET /status` and `GET /status.json`: each route's targets and keys (healthy, cooling down,
//! rejected), each client's use against its limits and budget, and the last hour's requests,
//! errors, latency and tokens. The page carries no data: a small script asks for the JSON with
//! the operator's token, which the page's form keeps in the browser's session storage (the
//! proxy sets no cookie).

use std::collections::BTreeMap;

use askama::Template;
use bytes::Bytes;
use serde::Serialize;

use crate::core::failover::health_key;
use crate::core::health::KeyState;
use crate::core::host::Host;
use crate::core::http::ProxyResponse;
use crate::core::limits::{calendar, Counters};
use crate::core::recent::{HourTotals, Tally};
use crate::core::record::UsageRecord;
use crate::core::route::{Routes, Via};

/// Everything the status page shows.
#[derive(Debug, Serialize)]
pub struct Status {
    /// When it was taken, ms since the epoch.
    pub now_ms: u64,
    /// What the last-hour figures cover ([`crate::core::recent::LastHour::scope`]).
    pub scope: &'static str,
    /// Every route in file order.
    pub routes: Vec<RouteStatus>,
    /// Every client in file order.
    pub clients: Vec<ClientStatus>,
}

/// A route's targets and last hour.
#[derive(Debug, Serialize)]
pub struct RouteStatus {
    /// Its name.
    pub name: &'static str,
    /// Its targets in order.
    pub targets: Vec<TargetStatus>,
    /// Its last hour.
    pub hour: HourTotals,
}

/// A target and how each of its keys stands.
#[derive(Debug, Serialize)]
pub struct TargetStatus {
    /// Its provider.
    pub provider: &'static str,
    /// Its model.
    pub model: &'static str,
    /// Its keys (or binding), by name.
    pub keys: Vec<KeyStatus>,
}

/// One key's standing.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    /// The secret's name, or `binding:NAME`.
    pub name: String,
    /// How it stands.
    #[serde(flatten)]
    pub state: KeyState,
}

/// A client's limits, its use of them, and its last hour.
#[derive(Debug, Serialize)]
pub struct ClientStatus {
    /// Its name.
    pub name: &'static str,
    /// The routes it may use (`None`: all).
    pub routes: Option<&'static [&'static str]>,
    /// `requests_per_minute` and the requests started this minute.
    pub requests_per_minute: Option<(u32, u64)>,
    /// `tokens_per_minute` and the tokens counted this minute.
    pub tokens_per_minute: Option<(u64, u64)>,
    /// `max_concurrent` and the requests in flight.
    pub max_concurrent: Option<(u32, u64)>,
    /// The budget and its spend this period, USD, and the period.
    pub budget: Option<BudgetStatus>,
    /// Its last hour.
    pub hour: HourTotals,
}

/// A budget and its spend.
#[derive(Debug, Serialize)]
pub struct BudgetStatus {
    /// The limit, USD.
    pub usd: f64,
    /// Spent (and reserved) this period, USD.
    pub spent_usd: f64,
    /// `day` or `month`.
    pub per: &'static str,
}

/// The status at `now_ms` as the host knows it.
pub async fn collect<R: Routes, H: Host>(host: &H) -> Status {
    let now_ms = host.now_ms();
    let hour = host.last_hour().await;
    let totals = |tallies: &BTreeMap<String, Tally>, name: &str| {
        tallies.get(name).map(Tally::totals).unwrap_or_default()
    };
    let routes = R::routes()
        .iter()
        .map(|route| RouteStatus {
            name: route.name,
            targets: route
                .targets
                .iter()
                .map(|target| TargetStatus {
                    provider: target.provider,
                    model: target.model,
                    keys: target
                        .vias
                        .iter()
                        .map(|via| KeyStatus {
                            name: via_name(*via),
                            state: host.health().state(&health_key(*via, target.model), now_ms),
                        })
                        .collect(),
                })
                .collect(),
            hour: totals(&hour.routes, route.name),
        })
        .collect();
    let mut clients = Vec::with_capacity(R::CLIENTS.len());
    for client in R::CLIENTS {
        let counters = match client.limited() {
            true => host.client_counters(client).await.unwrap_or_default(),
            false => Counters::default(),
        };
        let minute = calendar::minute(now_ms);
        let this_minute = |n: u64| if counters.minute == minute { n } else { 0 };
        let in_flight = counters.in_flight.iter().filter(|d| **d > now_ms).count() as u64;
        clients.push(ClientStatus {
            name: client.name,
            routes: client.routes,
            requests_per_minute: client
                .requests_per_minute
                .map(|max| (max, this_minute(counters.requests))),
            tokens_per_minute: client
                .tokens_per_minute
                .map(|max| (max, this_minute(counters.tokens))),
            max_concurrent: client.max_concurrent.map(|max| (max, in_flight)),
            budget: client.budget.map(|budget| {
                let current = counters.period == calendar::period(budget.per, now_ms);
                BudgetStatus {
                    usd: UsageRecord::usd(budget.pico_usd),
                    spent_usd: UsageRecord::usd(if current { counters.spent } else { 0 }),
                    per: match budget.per {
                        crate::core::route::BudgetPeriod::Day => "day",
                        crate::core::route::BudgetPeriod::Month => "month",
                    },
                }
            }),
            hour: totals(&hour.clients, client.name),
        });
    }
    Status {
        now_ms,
        scope: hour.scope,
        routes,
        clients,
    }
}

fn via_name(via: Via) -> String {
    via.to_string()
}

/// `GET /status.json`.
pub async fn json<R: Routes, H: Host>(host: &H) -> ProxyResponse {
    let status = collect::<R, H>(host).await;
    let mut response = ProxyResponse::json(
        200,
        Bytes::from(serde_json::to_vec(&status).unwrap_or_default()),
    );
    response
        .headers
        .push(("cache-control", "no-store".to_owned()));
    response
}

#[derive(Template)]
#[template(path = "status.html")]
struct Page {
    version: &'static str,
}

/// `GET /status`: the page (no data in it, so no token needed to load it).
pub fn page() -> ProxyResponse {
    let page = Page {
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut response = ProxyResponse::full(
        200,
        "text/html; charset=utf-8",
        Bytes::from(page.render().unwrap_or_default()),
    );
    response.headers.extend([
        ("cache-control", "no-store".to_owned()),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'".to_owned(),
        ),
    ]);
    response
}
