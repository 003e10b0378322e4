//! How a client's limits show in answers: OpenAI's `x-ratelimit-*` headers on every answer, and
//! OpenAI's own errors when a limit refuses (`rate_limit_exceeded` with the limit's type,
//! `insufficient_quota` for a spent budget).

use crate::core::error::ErrorObject;

use super::{Limit, Refusal, Standing};

/// OpenAI's rate-limit headers for `standing`.
pub fn headers(standing: &Standing) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    let reset = duration(standing.minute_reset_ms);
    if let Some((limit, remaining)) = standing.requests {
        headers.push(("x-ratelimit-limit-requests", limit.to_string()));
        headers.push(("x-ratelimit-remaining-requests", remaining.to_string()));
        headers.push(("x-ratelimit-reset-requests", reset.clone()));
    }
    if let Some((limit, remaining)) = standing.tokens {
        headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
        headers.push(("x-ratelimit-remaining-tokens", remaining.to_string()));
        headers.push(("x-ratelimit-reset-tokens", reset));
    }
    headers
}

/// The error a refusal answers with.
pub fn error_object(client: &str, refusal: &Refusal) -> ErrorObject {
    let wait = duration(refusal.retry_after_ms);
    let standing = &refusal.standing;
    let (message, kind, code) = match refusal.limit {
        Limit::Requests => {
            let (limit, _) = standing.requests.unwrap_or_default();
            (
                format!("Rate limit reached for client `{client}` on requests per minute: limit {limit}. Please try again in {wait}."),
                "requests",
                "rate_limit_exceeded",
            )
        }
        Limit::Tokens => {
            let (limit, remaining) = standing.tokens.unwrap_or_default();
            (
                format!("Rate limit reached for client `{client}` on tokens per minute: limit {limit}, remaining {remaining} (a request reserves its input estimate plus its max_tokens). Please try again in {wait}."),
                "tokens",
                "rate_limit_exceeded",
            )
        }
        Limit::Concurrency => (
            format!("Too many requests in flight for client `{client}` (max_concurrent). Please try again when one has finished."),
            "requests",
            "rate_limit_exceeded",
        ),
        Limit::Budget => {
            let (budget, spent) = standing.budget.unwrap_or_default();
            (
                format!("Client `{client}` has used its budget: {} of {} USD this period. It renews in {wait}.", usd(spent), usd(budget)),
                "insufficient_quota",
                "insufficient_quota",
            )
        }
    };
    ErrorObject::new(message, kind, None, Some(code))
}

/// `500ms`, `12s`, `6m0s`, `3h2m0s`: a wait as OpenAI's reset headers write it.
pub fn duration(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1_000);
    match (secs / 3_600, secs % 3_600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

/// pico-USD as dollars and cents (`12.34`).
fn usd(pico: u64) -> String {
    let cents = pico.div_ceil(10_000_000_000);
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing() -> Standing {
        Standing {
            requests: Some((60, 0)),
            tokens: Some((200_000, 1_500)),
            minute_reset_ms: 12_300,
            budget: Some((25_000_000_000_000, 25_000_000_000_000)),
        }
    }

    #[test]
    fn headers_as_openai_sends_them() {
        assert_eq!(
            headers(&standing()),
            vec![
                ("x-ratelimit-limit-requests", "60".to_owned()),
                ("x-ratelimit-remaining-requests", "0".to_owned()),
                ("x-ratelimit-reset-requests", "13s".to_owned()),
                ("x-ratelimit-limit-tokens", "200000".to_owned()),
                ("x-ratelimit-remaining-tokens", "1500".to_owned()),
                ("x-ratelimit-reset-tokens", "13s".to_owned()),
            ]
        );
        assert!(headers(&Standing::default()).is_empty());
    }

    #[test]
    fn errors_say_which_limit_and_when() {
        let refusal = |limit, retry_after_ms| Refusal {
            limit,
            retry_after_ms,
            standing: standing(),
        };
        let e = error_object("ci-bot", &refusal(Limit::Requests, 12_300));
        assert_eq!(
            (e.kind.as_str(), e.code.as_deref()),
            ("requests", Some("rate_limit_exceeded"))
        );
        assert_eq!(e.message, "Rate limit reached for client `ci-bot` on requests per minute: limit 60. Please try again in 13s.");
        let e = error_object("ci-bot", &refusal(Limit::Budget, 90_061_000));
        assert_eq!(
            (e.kind.as_str(), e.code.as_deref()),
            ("insufficient_quota", Some("insufficient_quota"))
        );
        assert_eq!(
            e.message,
            "Client `ci-bot` has used its budget: 25.00 of 25.00 USD this period. It renews in 25h1m1s."
        );
        assert_eq!(
            error_object("ci-bot", &refusal(Limit::Tokens, 500)).kind,
            "tokens"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(999), "999ms");
        assert_eq!(duration(1_000), "1s");
        assert_eq!(duration(360_000), "6m0s");
    }
}
