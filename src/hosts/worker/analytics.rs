//! Usage records on the Worker: into the `USAGE` Analytics Engine dataset when the Worker is
//! bound to one (wrangler.toml).
//!
//! One data point per request. Blobs, in order: client, route, api, provider, model, key,
//! status; doubles: input, output, cached, cache-write and reasoning tokens, latency ms, time
//! to first token ms (-1: none), cost USD, attempts, status; the index: the client (Analytics
//! Engine samples per index). The README shows the SQL API queries that read them back.

use std::cell::Cell;

use worker::{AnalyticsEngineDataPointBuilder, Env};

use crate::core::record::UsageRecord;

/// The Analytics Engine dataset binding that turns writing on.
const BINDING: &str = "USAGE";

thread_local! {
    /// Whether the env has the binding (`None`: not looked at yet; it is fixed per isolate).
    static BOUND: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the Worker is bound to the dataset (asked twice per request: whether to read the
/// usage, and to write it).
pub fn bound(env: &Env) -> bool {
    super::binding::bound(&BOUND, env, BINDING)
}

/// Writes `record` to the dataset, when bound.
pub fn record(env: &Env, record: &UsageRecord) {
    if !bound(env) {
        return;
    }
    let Ok(dataset) = env.analytics_engine(BINDING) else {
        return;
    };
    let point = AnalyticsEngineDataPointBuilder::new()
        .indexes([record.client])
        .blobs([
            record.client.to_owned(),
            record.route.to_owned(),
            record.api.to_owned(),
            record.provider.to_owned(),
            record.model.clone(),
            record.key.clone(),
            record.status.to_string(),
        ])
        .doubles([
            record.input_tokens as f64,
            record.output_tokens as f64,
            record.cached_tokens as f64,
            record.cache_write_tokens as f64,
            record.reasoning_tokens as f64,
            record.latency_ms as f64,
            record.ttft_ms.map_or(-1.0, |ms| ms as f64),
            record.cost_usd,
            f64::from(record.attempts),
            f64::from(record.status),
        ])
        .build();
    // A full dataset or a runtime without it loses a data point, never the request.
    let _ = dataset.write_data_point(&point);
}
