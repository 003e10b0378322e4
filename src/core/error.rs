//! `ProxyError`, the one error type of the HTTP boundary, and its single mapping to the
//! OpenAI error shape `{"error":{"message","type","param","code"}}`.

use askama::Template;
use bytes::Bytes;
use serde::Serialize;

use crate::core::failover::{Attempt, Outcome, Stop};
use crate::core::host::{seconds, LimitsUnavailable};
use crate::core::http::ProxyResponse;
use crate::core::limits::{self, Limit, Refusal};

/// Largest request body accepted; a chat request with a few base64 images fits comfortably.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Everything that can make the proxy answer with an error.
#[derive(Debug)]
pub enum ProxyError {
    /// No such path.
    NotFound,
    /// The path exists but not for this method; carries the `Allow` header value.
    MethodNotAllowed(&'static str),
    /// Missing or wrong bearer token.
    Unauthorized,
    /// A client's token where only the operator's opens the endpoint.
    OperatorOnly,
    /// The secret that should hold the proxy's own token is not set: fail closed.
    AuthNotConfigured(&'static str),
    /// Request body over [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// The request body did not arrive within the server's `body_read_timeout`.
    BodyTimedOut,
    /// The body is not valid JSON.
    InvalidJson(String),
    /// Valid JSON, but not a chat completion request.
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The offending field, as OpenAI reports it.
        param: Option<String>,
        /// Machine-readable reason.
        code: &'static str,
    },
    /// No route has this name (or the caller's token may not use it).
    ModelNotFound(String),
    /// A client's limit refuses the request.
    LimitReached {
        /// The client's name.
        client: &'static str,
        /// Which limit, and the client's standing.
        refusal: Refusal,
    },
    /// The store of client limits could not answer: the request is refused, never let through
    /// unlimited. The text says why.
    LimitsUnavailable(LimitsUnavailable),
    /// An upstream rejected the request as the client's fault (400/404/422): passed on as is.
    Upstream {
        /// The upstream's status, kept.
        status: u16,
        /// The upstream's error, in OpenAI's shape.
        error: ErrorObject,
    },
    /// Every target and key was tried and none answered.
    AllFailed {
        /// The route that was tried.
        route: &'static str,
        /// One entry per target/key tried, in order.
        attempts: Vec<Attempt>,
        /// Why the loop stopped early, if it did.
        stop: Option<Stop>,
    },
}

/// OpenAI's error object, the payload of `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorObject {
    /// Human-readable description; never contains a secret value.
    pub message: String,
    /// Error category (`invalid_request_error`, `rate_limit_error`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, if any.
    pub param: Option<String>,
    /// Machine-readable reason, if any.
    pub code: Option<String>,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: &'a ErrorObject,
}

impl ErrorObject {
    /// Builds an error object from its parts.
    pub fn new(
        message: impl Into<String>,
        kind: &str,
        param: Option<String>,
        code: Option<&str>,
    ) -> Self {
        Self {
            message: message.into(),
            kind: kind.to_owned(),
            param,
            code: code.map(str::to_owned),
        }
    }

    /// `{"error":{...}}` as JSON bytes.
    pub fn to_json(&self) -> Bytes {
        // Serialising plain strings and options into a Vec cannot fail.
        Bytes::from(serde_json::to_vec(&ErrorEnvelope { error: self }).unwrap_or_default())
    }

    /// An error of the OpenAI `type` that goes with `status` ([`error_type`]).
    pub fn for_status(message: impl Into<String>, status: u16, code: Option<&str>) -> Self {
        Self::new(message, error_type(status), None, code)
    }

    /// Reads an OpenAI-shaped error body from an upstream, or wraps whatever text it sent.
    pub fn from_upstream(status: u16, body: &[u8]) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |v: Option<&serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        match error {
            Some(e @ serde_json::Value::Object(_)) => Self {
                message: text(e.get("message"))
                    .unwrap_or_else(|| format!("upstream returned HTTP {status}")),
                kind: text(e.get("type")).unwrap_or_else(|| error_type(status).to_owned()),
                param: text(e.get("param")),
                code: text(e.get("code")),
            },
            Some(serde_json::Value::String(s)) => Self::for_status(s.clone(), status, None),
            _ => {
                let raw = String::from_utf8_lossy(body);
                let snippet: String = raw.trim().chars().take(500).collect();
                let message = if snippet.is_empty() {
                    format!("upstream returned HTTP {status}")
                } else {
                    format!("upstream returned HTTP {status}: {snippet}")
                };
                Self::for_status(message, status, None)
            }
        }
    }
}

/// The OpenAI error `type` for an upstream status, where the upstream's own error says none:
/// the one status → type mapping every provider uses.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

#[derive(Template)]
#[template(path = "all_failed.txt")]
struct AllFailedMessage<'a> {
    route: &'a str,
    attempts: &'a [Attempt],
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::NotFound | ProxyError::ModelNotFound(_) => 404,
            ProxyError::LimitReached { .. } => 429,
            ProxyError::LimitsUnavailable(unavailable) if unavailable.unconfigured => 500,
            ProxyError::LimitsUnavailable(_) => 503,
            ProxyError::MethodNotAllowed(_) => 405,
            ProxyError::Unauthorized => 401,
            ProxyError::OperatorOnly => 403,
            ProxyError::AuthNotConfigured(_) => 500,
            ProxyError::BodyTooLarge => 413,
            ProxyError::BodyTimedOut => 408,
            ProxyError::InvalidJson(_) | ProxyError::InvalidRequest { .. } => 400,
            ProxyError::Upstream { status, .. } => *status,
            ProxyError::AllFailed {
                stop: Some(Stop::Deadline(_)),
                ..
            } => 504,
            ProxyError::AllFailed { attempts, .. } => {
                // A target that could not take the request never hides the others' answers.
                let mut tried = attempts
                    .iter()
                    .filter(|a| !matches!(a.outcome, Outcome::CannotExpress(_)))
                    .peekable();
                let rate_limited = tried.peek().is_some()
                    && tried.all(|a| {
                        matches!(a.outcome, Outcome::Status(429) | Outcome::CoolingDown(_))
                    });
                if rate_limited {
                    429
                } else {
                    500
                }
            }
        }
    }

    /// The OpenAI error object for this error.
    pub fn to_error_object(&self) -> ErrorObject {
        match self {
            ProxyError::NotFound => ErrorObject::new(
                "Unknown path. The proxy serves POST /v1/chat/completions, GET /v1/models and GET /health.",
                "invalid_request_error",
                None,
                Some("not_found"),
            ),
            ProxyError::MethodNotAllowed(allow) => ErrorObject::new(
                format!("Method not allowed here; use {allow}."),
                "invalid_request_error",
                None,
                Some("method_not_allowed"),
            ),
            ProxyError::Unauthorized => ErrorObject::new(
                "Missing or invalid proxy token. Send `Authorization: Bearer <token>`.",
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            ),
            ProxyError::OperatorOnly => ErrorObject::new(
                "This endpoint shows every client's use: only the operator's token (`[server] auth_token`) opens it.",
                "invalid_request_error",
                None,
                Some("operator_only"),
            ),
            ProxyError::AuthNotConfigured(secret) => ErrorObject::new(
                format!("The proxy's token secret `{secret}` is not set, so every request is refused. Set it with `wrangler secret put {secret}` (Worker) or in the environment / .dev.vars (native)."),
                "server_error",
                None,
                Some("auth_not_configured"),
            ),
            ProxyError::BodyTooLarge => ErrorObject::new(
                format!("Request body is larger than {} MiB.", MAX_BODY_BYTES / (1024 * 1024)),
                "invalid_request_error",
                None,
                Some("request_too_large"),
            ),
            ProxyError::BodyTimedOut => ErrorObject::new(
                "The request body did not arrive in time; send it at once after the headers.",
                "invalid_request_error",
                None,
                Some("request_timeout"),
            ),
            ProxyError::InvalidJson(detail) => ErrorObject::new(
                format!("Request body is not valid JSON: {detail}"),
                "invalid_request_error",
                None,
                Some("invalid_json"),
            ),
            ProxyError::InvalidRequest { message, param, code } => {
                ErrorObject::new(message.clone(), "invalid_request_error", param.clone(), Some(code))
            }
            ProxyError::ModelNotFound(model) => ErrorObject::new(
                format!("The model `{model}` does not exist on this proxy. GET /v1/models lists the routes."),
                "invalid_request_error",
                Some("model".to_owned()),
                Some("model_not_found"),
            ),
            ProxyError::LimitReached { client, refusal } => limits::error_object(client, refusal),
            ProxyError::LimitsUnavailable(LimitsUnavailable { why, .. }) => ErrorObject::new(
                format!("The store of client limits cannot be reached, so requests from clients with limits are refused: {why}"),
                "server_error",
                None,
                Some("limits_unavailable"),
            ),
            ProxyError::Upstream { error, .. } => error.clone(),
            ProxyError::AllFailed {
                route,
                attempts,
                stop,
            } => {
                let mut message = AllFailedMessage { route, attempts }
                    .render()
                    .unwrap_or_else(|_| format!("every provider for `{route}` failed"));
                match stop {
                    Some(Stop::Deadline(ms)) => message.push_str(&format!(
                        ". Stopped: the request's total_timeout of {} passed.",
                        seconds(*ms)
                    )),
                    Some(Stop::Subrequests(max)) => message.push_str(&format!(
                        ". Stopped before the next attempt: a request may make at most {max} upstream calls (max_subrequests)."
                    )),
                    None => {}
                }
                match self.status() {
                    429 => ErrorObject::new(message, "rate_limit_error", None, Some("rate_limit_exceeded")),
                    504 => ErrorObject::new(message, "timeout_error", None, Some("deadline_exceeded")),
                    _ => ErrorObject::new(message, "upstream_error", None, Some("all_providers_failed")),
                }
            }
        }
    }

    /// The complete HTTP response for this error.
    pub fn into_response(self) -> ProxyResponse {
        let mut response = ProxyResponse::json(self.status(), self.to_error_object().to_json());
        response.headers.extend(self.headers());
        response
    }

    /// The headers that go with this error on any surface: `allow`, `retry-after`, and for a
    /// client's limit OpenAI's `x-ratelimit-*` (and `x-should-retry: false` for a spent budget).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let ProxyError::MethodNotAllowed(allow) = self {
            headers.push(("allow", (*allow).to_owned()));
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.push(("retry-after", secs.to_string()));
        }
        if let ProxyError::LimitReached { refusal, .. } = self {
            headers.extend(limits::headers(&refusal.standing));
            if refusal.limit == Limit::Budget {
                headers.push(("x-should-retry", "false".to_owned()));
            }
        }
        headers
    }

    /// For a 429 while keys cool down: whole seconds until the first one recovers.
    pub fn retry_after_secs(&self) -> Option<u64> {
        if let ProxyError::LimitReached { refusal, .. } = self {
            return Some(refusal.retry_after_ms.div_ceil(1000).max(1));
        }
        let ProxyError::AllFailed { attempts, .. } = self else {
            return None;
        };
        if self.status() != 429 {
            return None;
        }
        attempts
            .iter()
            .filter_map(|a| match a.outcome {
                Outcome::CoolingDown(ms) => Some(ms.div_ceil(1000).max(1)),
                _ => None,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;

    fn attempt(key: &'static str, outcome: Outcome) -> Attempt {
        Attempt {
            provider: "openai",
            model: "gpt-4o-mini",
            via: Via::Key(key),
            outcome,
        }
    }

    #[test]
    fn error_body_has_exactly_the_openai_shape() {
        let body = ProxyError::ModelNotFound("nope".into())
            .to_error_object()
            .to_json();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"error":{"message":"The model `nope` does not exist on this proxy. GET /v1/models lists the routes.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#
        );
    }

    #[test]
    fn all_rate_limited_is_429_and_mixed_is_500() {
        let limited = ProxyError::AllFailed {
            route: "fast",
            attempts: vec![
                attempt("K1", Outcome::Status(429)),
                attempt("K2", Outcome::Status(429)),
            ],
            stop: None,
        };
        assert_eq!(limited.status(), 429);
        let mixed = ProxyError::AllFailed {
            route: "fast",
            attempts: vec![
                attempt("K1", Outcome::Status(429)),
                attempt("K2", Outcome::Network("connection refused".into())),
            ],
            stop: None,
        };
        assert_eq!(mixed.status(), 500);
    }

    #[test]
    fn failure_message_lists_every_attempt_by_key_name() {
        let e = ProxyError::AllFailed {
            route: "fast",
            attempts: vec![
                attempt("OPENAI_KEY_1", Outcome::Status(500)),
                attempt("OPENAI_KEY_2", Outcome::KeyNotSet),
                attempt(
                    "OPENAI_KEY_3",
                    Outcome::Network("connection refused".into()),
                ),
            ],
            stop: None,
        };
        assert_eq!(
            e.to_error_object().message,
            "All 3 attempts for model `fast` failed: openai gpt-4o-mini with key OPENAI_KEY_1: HTTP 500; \
             openai gpt-4o-mini with key OPENAI_KEY_2: secret not set; \
             openai gpt-4o-mini with key OPENAI_KEY_3: network error (connection refused)"
        );
    }

    #[test]
    fn upstream_error_bodies_are_read_or_wrapped() {
        let e = ErrorObject::from_upstream(400, br#"{"error":{"message":"bad temp","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#);
        assert_eq!(
            e,
            ErrorObject::new(
                "bad temp",
                "invalid_request_error",
                Some("temperature".into()),
                Some("invalid_value")
            )
        );
        let e = ErrorObject::from_upstream(404, b"<html>nope</html>");
        assert_eq!(e.message, "upstream returned HTTP 404: <html>nope</html>");
        assert_eq!(e.kind, "invalid_request_error");
        let e = ErrorObject::from_upstream(
            400,
            br#"{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT"}}"#,
        );
        assert_eq!(e.code.as_deref(), Some("400"));
    }
}
