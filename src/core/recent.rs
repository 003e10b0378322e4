//! The last hour of usage records, for the status page: per route and per client, requests,
//! errors, tokens, cost and latency percentiles, in minute buckets that age out. Latencies go
//! into a log-scale histogram (four buckets per doubling), so a percentile is exact to within
//! 19% whatever the traffic, in fixed memory.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::core::record::UsageRecord;

const MINUTES: u64 = 60;
/// Latency buckets: bucket `i` holds latencies up to `2^(i/4)` ms (up to about 4.6 hours).
const LATENCY_BUCKETS: usize = 96;

/// One minute of one route's (or client's) requests.
#[derive(Debug, Clone)]
struct Minute {
    minute: u64,
    requests: u64,
    errors: u64,
    tokens: u64,
    cost_usd: f64,
    latency: [u32; LATENCY_BUCKETS],
}

impl Minute {
    fn new(minute: u64) -> Self {
        Self {
            minute,
            requests: 0,
            errors: 0,
            tokens: 0,
            cost_usd: 0.0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
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

/// The last hour, by route and by client.
#[derive(Debug, Default)]
pub struct Recent {
    by: Mutex<BTreeMap<(bool, String), Vec<Minute>>>,
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
        for key in [
            (false, record.route.to_owned()),
            (true, record.client.to_owned()),
        ] {
            let minutes = by.entry(key).or_default();
            minutes.retain(|m| m.minute + MINUTES > minute);
            if minutes.last().is_none_or(|m| m.minute != minute) {
                minutes.push(Minute::new(minute));
            }
            if let Some(m) = minutes.last_mut() {
                m.requests += 1;
                m.errors += u64::from(record.status >= 400);
                m.tokens += record.input_tokens
                    + record.cached_tokens
                    + record.cache_write_tokens
                    + record.output_tokens;
                m.cost_usd += record.cost_usd;
                m.latency[bucket(record.latency_ms)] += 1;
            }
        }
    }

    /// The last hour at `now_ms` of each route (`clients` false) or each client.
    pub fn hour(&self, clients: bool, now_ms: u64) -> BTreeMap<String, HourTotals> {
        let now = now_ms / 60_000;
        let by = self.by.lock().unwrap_or_else(PoisonError::into_inner);
        by.iter()
            .filter(|((is_client, _), _)| *is_client == clients)
            .map(|((_, name), minutes)| {
                let mut totals = HourTotals::default();
                let mut latency = [0u64; LATENCY_BUCKETS];
                for m in minutes.iter().filter(|m| m.minute + MINUTES > now) {
                    totals.requests += m.requests;
                    totals.errors += m.errors;
                    totals.tokens += m.tokens;
                    totals.cost_usd += m.cost_usd;
                    for (sum, n) in latency.iter_mut().zip(m.latency) {
                        *sum += u64::from(n);
                    }
                }
                totals.p50_ms = percentile(&latency, 50);
                totals.p99_ms = percentile(&latency, 99);
                (name.clone(), totals)
            })
            .collect()
    }
}

/// The bucket of a latency: the first whose bound `2^(i/4)` ms holds it.
fn bucket(ms: u64) -> usize {
    (0..LATENCY_BUCKETS)
        .find(|i| ms as f64 <= bound(*i))
        .unwrap_or(LATENCY_BUCKETS - 1)
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
        let routes = recent.hour(false, t0 + 180_000);
        let fast = &routes["fast"];
        assert_eq!((fast.requests, fast.errors, fast.tokens), (100, 1, 1_500));
        // 100 ms falls in the bucket up to 2^(27/4) = 107.6 ms; 5 s in the one up to 5,793 ms.
        assert_eq!((fast.p50_ms, fast.p99_ms), (Some(108), Some(108)));
        assert_eq!(routes["deep"].p50_ms, Some(23));
        let clients = recent.hour(true, t0 + 180_000);
        assert_eq!(clients["ci-bot"].requests, 101);
        assert!((clients["ci-bot"].cost_usd - 50.5).abs() < 1e-9);
        // An hour later, only the 502 is left.
        let later = recent.hour(false, t0 + 120_000 + 59 * 60_000);
        assert_eq!(
            (later["fast"].requests, later["fast"].p99_ms),
            (1, Some(5_793))
        );
        assert_eq!(later["deep"].requests, 0);
    }
}
