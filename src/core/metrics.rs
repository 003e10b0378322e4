//! Prometheus metrics from the usage records, named as OpenTelemetry's GenAI semantic
//! conventions name them (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`,
//! with `gen_ai.provider.name`, `gen_ai.request.model`, ...; dots become underscores in
//! Prometheus), plus the proxy's own per-client counters. Cumulative since the process
//! started, as Prometheus expects; the native host serves them at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

use crate::core::record::UsageRecord;

/// The bucket bounds OpenTelemetry advises for `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// The bucket bounds OpenTelemetry advises for `gen_ai.client.operation.duration`, seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// A histogram's counts: one per bucket (not cumulative), then the sum and the count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let mut cumulative = 0;
        for (bound, n) in bounds.iter().zip(&self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The series of one response model of one route: the GenAI labels, kept as values and only
/// written out (and escaped) when rendered, so that counting a request formats nothing.
#[derive(Debug, Default)]
struct ModelSeries {
    input_tokens: Histogram,
    output_tokens: Histogram,
    /// By the error status (`None`: a success).
    duration: BTreeMap<Option<u16>, Histogram>,
}

/// Every series. A response model is a `String` inside the route's map, so that a request
/// whose model has been seen looks it up by `&str` and allocates nothing.
#[derive(Debug, Default)]
struct Series {
    /// By (provider, route), then response model.
    models: BTreeMap<(&'static str, &'static str), BTreeMap<String, ModelSeries>>,
    /// By (client, route, status).
    requests: BTreeMap<(&'static str, &'static str, u16), u64>,
    /// By (client, route), then response model.
    cost: BTreeMap<(&'static str, &'static str), BTreeMap<String, f64>>,
}

/// The entry for `name` in `map`, made on its first use, so that a name seen before is looked
/// up by `&str` and copies nothing (`None` cannot happen: `BTreeMap` has no stable way to look
/// a `String` key up by `&str` and insert it only when missing).
pub(crate) fn entry<'a, V: Default>(
    map: &'a mut BTreeMap<String, V>,
    name: &str,
) -> Option<&'a mut V> {
    if !map.contains_key(name) {
        map.insert(name.to_owned(), V::default());
    }
    map.get_mut(name)
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
}

impl Metrics {
    /// No request seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request's record.
    pub fn observe(&self, record: &UsageRecord) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let models = series
            .models
            .entry((record.provider, record.route))
            .or_default();
        if let Some(model) = entry(models, &record.model) {
            if record.usage_reported {
                let input = record.input_tokens + record.cached_tokens + record.cache_write_tokens;
                model.input_tokens.observe(&TOKEN_BUCKETS, input as f64);
                model
                    .output_tokens
                    .observe(&TOKEN_BUCKETS, record.output_tokens as f64);
            }
            let error = (record.status >= 400).then_some(record.status);
            model
                .duration
                .entry(error)
                .or_default()
                .observe(&DURATION_BUCKETS, record.latency_ms as f64 / 1000.0);
        }
        *series
            .requests
            .entry((record.client, record.route, record.status))
            .or_default() += 1;
        if record.cost_usd > 0.0 {
            let costs = series
                .cost
                .entry((record.client, record.route))
                .or_default();
            if let Some(usd) = entry(costs, &record.model) {
                *usd += record.cost_usd;
            }
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let models = || {
            series.models.iter().flat_map(|((provider, route), models)| {
                models.iter().map(move |(model, s)| {
                    let base = format!(
                        "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"{}\",gen_ai_request_model=\"{}\",gen_ai_response_model=\"{}\"",
                        escape(provider),
                        escape(route),
                        escape(model),
                    );
                    (base, s)
                })
            })
        };
        out.push_str("# HELP gen_ai_client_token_usage Number of input and output tokens used.\n# TYPE gen_ai_client_token_usage histogram\n");
        for (base, s) in models() {
            for (kind, h) in [("input", &s.input_tokens), ("output", &s.output_tokens)] {
                if h.count > 0 {
                    let labels = format!("{base},gen_ai_token_type=\"{kind}\"");
                    h.render(
                        &mut out,
                        "gen_ai_client_token_usage",
                        &labels,
                        &TOKEN_BUCKETS,
                    );
                }
            }
        }
        out.push_str("# HELP gen_ai_client_operation_duration_seconds GenAI operation duration.\n# TYPE gen_ai_client_operation_duration_seconds histogram\n");
        for (base, s) in models() {
            for (error, h) in &s.duration {
                let labels = match error {
                    Some(status) => format!("{base},error_type=\"{status}\""),
                    None => base.clone(),
                };
                h.render(
                    &mut out,
                    "gen_ai_client_operation_duration_seconds",
                    &labels,
                    &DURATION_BUCKETS,
                );
            }
        }
        out.push_str("# HELP aiwp_requests_total Requests that reached a route, by client and status.\n# TYPE aiwp_requests_total counter\n");
        for ((client, route, status), n) in &series.requests {
            let _ = writeln!(
                out,
                "aiwp_requests_total{{client=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(client),
                escape(route)
            );
        }
        out.push_str("# HELP aiwp_cost_usd_total What the requests cost at the models' prices.\n# TYPE aiwp_cost_usd_total counter\n");
        for ((client, route), costs) in &series.cost {
            for (model, usd) in costs {
                let _ = writeln!(
                    out,
                    "aiwp_cost_usd_total{{client=\"{}\",route=\"{}\",gen_ai_response_model=\"{}\"}} {usd}",
                    escape(client),
                    escape(route),
                    escape(model)
                );
            }
        }
        out
    }
}

/// A label value as the text format needs it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UsageRecord {
        UsageRecord {
            at_ms: 0,
            client: "ci-bot",
            route: "fast",
            api: "openai",
            target: 1,
            provider: "openai",
            model: "gpt-4o-mini".to_owned(),
            key: "OPENAI_KEY_1".to_owned(),
            status: 200,
            attempts: 1,
            input_tokens: 10,
            output_tokens: 300,
            cached_tokens: 6,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            usage_reported: true,
            latency_ms: 150,
            ttft_ms: Some(40),
            cost_usd: 0.25,
        }
    }

    #[test]
    fn genai_histograms_and_client_counters_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.observe(&record());
        let mut failed = record();
        failed.status = 429;
        failed.usage_reported = false;
        failed.cost_usd = 0.0;
        metrics.observe(&failed);
        let text = metrics.render();
        let base = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"fast\",gen_ai_response_model=\"gpt-4o-mini\"";
        for line in [
            format!("gen_ai_client_token_usage_bucket{{{base},gen_ai_token_type=\"input\",le=\"16\"}} 1"),
            format!("gen_ai_client_token_usage_bucket{{{base},gen_ai_token_type=\"input\",le=\"4\"}} 0"),
            format!("gen_ai_client_token_usage_sum{{{base},gen_ai_token_type=\"output\"}} 300"),
            format!("gen_ai_client_operation_duration_seconds_bucket{{{base},le=\"0.16\"}} 1"),
            format!("gen_ai_client_operation_duration_seconds_count{{{base},error_type=\"429\"}} 1"),
            "aiwp_requests_total{client=\"ci-bot\",route=\"fast\",status=\"200\"} 1".to_owned(),
            "aiwp_requests_total{client=\"ci-bot\",route=\"fast\",status=\"429\"} 1".to_owned(),
            "aiwp_cost_usd_total{client=\"ci-bot\",route=\"fast\",gen_ai_response_model=\"gpt-4o-mini\"} 0.25".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n---\n{text}");
        }
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }

    #[test]
    fn labels_are_escaped_when_rendered_and_a_model_without_usage_has_no_token_series() {
        let metrics = Metrics::new();
        let mut odd = record();
        odd.model = "m\"1".to_owned();
        odd.usage_reported = false;
        metrics.observe(&odd);
        metrics.observe(&odd);
        let text = metrics.render();
        let count = "gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"fast\",gen_ai_response_model=\"m\\\"1\"} 2";
        assert!(text.lines().any(|l| l == count), "{text}");
        assert!(!text.contains("gen_ai_client_token_usage_bucket"), "{text}");
        assert!(text.contains("aiwp_cost_usd_total{client=\"ci-bot\",route=\"fast\",gen_ai_response_model=\"m\\\"1\"} 0.5\n"), "{text}");
    }
}
