//! The last hour of usage records, for the status page: per route and per client, requests,
//! errors, tokens, cost and latency percentiles. A [`Tally`] holds one name's counts with its
//! latencies in a log-scale histogram (four buckets per doubling), so a percentile is exact to
//! within 19% whatever the traffic, in fixed memory, and tallies add up: across minutes, across
//! routes, across the Worker's Durable Objects. The native host keeps them in minute buckets
//! that age out ([`Recent`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Serialize;

use crate::core::metrics::entry;
use crate::core::record::UsageRecord;

/// Minutes in the last hour.
pub const MINUTES: u64 = 60;
/// Latency buckets: bucket `i` holds latencies up to `2^(i/4)` ms (up to about 4.6 hours).
pub const LATENCY_BUCKETS: usize = 96;

/// One name's requests over some minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    /// Requests that ended.
    pub requests: u64,
    /// Those answered with a status of 400 or more.
    pub errors: u64,
    /// Input and output tokens the providers reported.
    pub tokens: u64,
    /// Their cost, USD.
    pub cost_usd: f64,
    /// Requests by [`latency_bucket`].
    pub latency: [u64; LATENCY_BUCKETS],
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: 0,
            tokens: 0,
            cost_usd: 0.0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

impl Tally {
    /// One request's record.
    pub fn of(record: &UsageRecord) -> Self {
        let mut tally = Self::default();
        tally.count(record);
        tally
    }

    /// Adds one request's record.
    pub fn count(&mut self, record: &UsageRecord) {
        self.requests += 1;
        self.errors += u64::from(record.status >= 400);
        self.tokens += tokens(record);
        self.cost_usd += record.cost_usd;
        self.latency[latency_bucket(record.latency_ms)] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.tokens += other.tokens;
        self.cost_usd += other.cost_usd;
        for (sum, n) in self.latency.iter_mut().zip(other.latency) {
            *sum += n;
        }
    }

    /// The totals and percentiles the status page shows.
    pub fn totals(&self) -> HourTotals {
        HourTotals {
            requests: self.requests,
            errors: self.errors,
            tokens: self.tokens,
            cost_usd: self.cost_usd,
            p50_ms: percentile(&self.latency, 50),
            p99_ms: percentile(&self.latency, 99),
        }
    }
}

/// The tokens a record counts: input (cached and cache-written included) and output.
pub fn tokens(record: &UsageRecord) -> u64 {
    record.input_tokens + record.cached_tokens + record.cache_write_tokens + record.output_tokens
}

/// Totals over the last hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HourTotals {
    /// Requests that ended.
    pub requests: u64,
    /// Those answered with a status of 400 or more.
    pub errors: u64,
    /// Input and output tokens the providers reported.
    pub tokens: u64,
    /// Their cost.
    pub cost_usd: f64,
    /// Median latency, ms (an upper bound within 19%).
    pub p50_ms: Option<u64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<u64>,
}

/// The last hour as a host knows it: by route and by client, and what it covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastHour {
    /// `process` (native: this process's records), `worker` (every isolate's, from the Durable
    /// Objects), `isolate` (the Worker without them: this isolate's only), or `none`.
    pub scope: &'static str,
    /// By route name.
    pub routes: BTreeMap<String, Tally>,
    /// By client name (`operator` for the operator's token).
    pub clients: BTreeMap<String, Tally>,
}

impl LastHour {
    /// A host that keeps no last hour.
    pub fn none() -> Self {
        Self {
            scope: "none",
            ..Self::default()
        }
    }

    /// Adds a route's last hour, given by client: the route's tally is their sum, and each
    /// client's adds to what it used on other routes.
    pub fn add_route(&mut self, route: &str, by_client: BTreeMap<String, Tally>) {
        let route = self.routes.entry(route.to_owned()).or_default();
        for (client, tally) in by_client {
            route.add(&tally);
            self.clients.entry(client).or_default().add(&tally);
        }
    }
}

/// One minute of one route's (or client's) requests.
#[derive(Debug, Clone)]
struct Minute {
    minute: u64,
    tally: Tally,
}

/// The last hour in process memory, by route and by client.
#[derive(Debug, Default)]
pub struct Recent {
    by: Mutex<By>,
}

/// Minutes by route and by client.
#[derive(Debug, Default)]
struct By {
    routes: BTreeMap<String, Vec<Minute>>,
    clients: BTreeMap<String, Vec<Minute>>,
}

/// Counts `record` in `name`'s minute, forgetting minutes older than the hour.
fn count_in(by: &mut BTreeMap<String, Vec<Minute>>, name: &str, minute: u64, record: &UsageRecord) {
    let Some(minutes) = entry(by, name) else {
        return;
    };
    minutes.retain(|m| m.minute + MINUTES > minute);
    match minutes.last_mut() {
        Some(m) if m.minute == minute => m.tally.count(record),
        _ => minutes.push(Minute {
            minute,
            tally: Tally::of(record),
        }),
    }
}

impl Recent {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one record, under its route and its client.
    pub fn observe(&self, record: &UsageRecord) {
        let minute = record.at_ms / 60_000;
        let mut by = self.by.lock().unwrap_or_else(PoisonError::into_inner);
        count_in(&mut by.routes, record.route, minute, record);
        count_in(&mut by.clients, record.client, minute, record);
    }

    /// The last hour at `now_ms`, labelled `scope`.
    pub fn last_hour(&self, scope: &'static str, now_ms: u64) -> LastHour {
        let now = now_ms / 60_000;
        let by = self.by.lock().unwrap_or_else(PoisonError::into_inner);
        let mut hour = LastHour {
            scope,
            ..LastHour::default()
        };
        for (from, into) in [
            (&by.routes, &mut hour.routes),
            (&by.clients, &mut hour.clients),
        ] {
            for (name, minutes) in from {
                let mut tally = Tally::default();
                for m in minutes.iter().filter(|m| m.minute + MINUTES > now) {
                    tally.add(&m.tally);
                }
                into.insert(name.clone(), tally);
            }
        }
        hour
    }
}

/// The bucket of a latency: the first whose bound `2^(i/4)` ms holds it.
pub fn latency_bucket(ms: u64) -> usize {
    // A whole number of ms is within a bound exactly when it is within the bound's whole part,
    // so the bounds are compared as integers, found by bisection: no `powf` per request.
    static WHOLE_BOUNDS: OnceLock<[u64; LATENCY_BUCKETS]> = OnceLock::new();
    let bounds = WHOLE_BOUNDS.get_or_init(|| std::array::from_fn(|i| bound(i) as u64));
    bounds
        .partition_point(|&bound| bound < ms)
        .min(LATENCY_BUCKETS - 1)
}

fn bound(i: usize) -> f64 {
    2f64.powf(i as f64 / 4.0)
}

/// The upper bound of the bucket holding the `pct`th percentile.
fn percentile(counts: &[u64; LATENCY_BUCKETS], pct: u64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (total * pct).div_ceil(100).max(1);
    let mut seen = 0;
    counts.iter().enumerate().find_map(|(i, n)| {
        seen += n;
        (seen >= rank).then(|| bound(i).ceil() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: u64, route: &'static str, status: u16, latency_ms: u64) -> UsageRecord {
        UsageRecord {
            at_ms,
            client: "ci-bot",
            route,
            api: "openai",
            target: 1,
            provider: "openai",
            model: "m".to_owned(),
            key: "K".to_owned(),
            status,
            attempts: 1,
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            usage_reported: true,
            latency_ms,
            ttft_ms: None,
            cost_usd: 0.5,
        }
    }

    #[test]
    fn an_hour_of_routes_and_clients_with_percentiles_then_it_ages_out() {
        let recent = Recent::new();
        let t0 = 1_796_378_400_000;
        for i in 0..99 {
            recent.observe(&record(t0 + i * 1_000, "fast", 200, 100));
        }
        recent.observe(&record(t0 + 120_000, "fast", 502, 5_000));
        recent.observe(&record(t0, "deep", 200, 20));
        let hour = recent.last_hour("process", t0 + 180_000);
        assert_eq!(hour.scope, "process");
        let fast = &hour.routes["fast"].totals();
        assert_eq!((fast.requests, fast.errors, fast.tokens), (100, 1, 1_500));
        // 100 ms falls in the bucket up to 2^(27/4) = 107.6 ms; 5 s in the one up to 5,793 ms.
        assert_eq!((fast.p50_ms, fast.p99_ms), (Some(108), Some(108)));
        assert_eq!(hour.routes["deep"].totals().p50_ms, Some(23));
        assert_eq!(hour.clients["ci-bot"].requests, 101);
        assert!((hour.clients["ci-bot"].cost_usd - 50.5).abs() < 1e-9);
        // An hour later, only the 502 is left.
        let later = recent.last_hour("process", t0 + 120_000 + 59 * 60_000);
        let fast = later.routes["fast"].totals();
        assert_eq!((fast.requests, fast.p99_ms), (1, Some(5_793)));
        assert_eq!(later.routes["deep"].requests, 0);
    }

    #[test]
    fn a_latency_falls_in_the_first_bucket_whose_bound_holds_it() {
        let by_definition = |ms: u64| {
            (0..LATENCY_BUCKETS)
                .find(|i| ms as f64 <= bound(*i))
                .unwrap_or(LATENCY_BUCKETS - 1)
        };
        let bounds = (0..LATENCY_BUCKETS).map(|i| bound(i) as u64);
        let near_bounds = bounds.flat_map(|b| [b.saturating_sub(1), b, b + 1]);
        for ms in (0..100_000)
            .chain(near_bounds)
            .chain([u64::MAX / 2, u64::MAX])
        {
            assert_eq!(latency_bucket(ms), by_definition(ms), "{ms} ms");
        }
        assert_eq!(
            (latency_bucket(0), latency_bucket(1), latency_bucket(2)),
            (0, 0, 4)
        );
    }

    #[test]
    fn tallies_add_up_to_the_same_percentiles_as_one() {
        let (mut a, mut b, mut both) = (Tally::default(), Tally::default(), Tally::default());
        for (i, ms) in [3, 40, 40, 900, 12, 7_000].into_iter().enumerate() {
            let one = Tally::of(&record(0, "fast", if i == 3 { 503 } else { 200 }, ms));
            if i % 2 == 0 {
                a.add(&one)
            } else {
                b.add(&one)
            }
            both.add(&one);
        }
        a.add(&b);
        assert_eq!(a, both);
        assert_eq!(
            a.totals(),
            HourTotals {
                requests: 6,
                errors: 1,
                tokens: 90,
                cost_usd: 3.0,
                p50_ms: Some(46),
                p99_ms: Some(8_192),
            }
        );
        assert_eq!(Tally::default().totals().p50_ms, None);
    }

    #[test]
    fn routes_answered_by_client_add_up_per_route_and_per_client() {
        let one = |status, ms| Tally::of(&record(0, "fast", status, ms));
        let mut hour = LastHour::default();
        hour.add_route(
            "fast",
            BTreeMap::from([
                ("a".to_owned(), one(200, 10)),
                ("b".to_owned(), one(500, 90)),
            ]),
        );
        hour.add_route("deep", BTreeMap::from([("a".to_owned(), one(200, 30))]));
        hour.add_route("idle", BTreeMap::new());
        fn totals(tallies: &BTreeMap<String, Tally>) -> Vec<(&str, u64, u64)> {
            tallies
                .iter()
                .map(|(name, t)| (name.as_str(), t.requests, t.errors))
                .collect()
        }
        assert_eq!(
            totals(&hour.routes),
            [("deep", 1, 0), ("fast", 2, 1), ("idle", 0, 0)]
        );
        assert_eq!(totals(&hour.clients), [("a", 2, 0), ("b", 1, 1)]);
        assert_eq!(hour.clients["a"].totals().p99_ms, Some(32));
    }
}
