//! The proxy's errors in Anthropic's shape, `{"type":"error","error":{"type","message"}}`, with
//! Anthropic's types and statuses, for the Messages front door: as a response, and as the
//! `event: error` that closes a stream after output began.

use bytes::Bytes;
use serde::Serialize;

use crate::core::error::{ErrorObject, ProxyError};
use crate::core::failover::Outcome;
use crate::core::http::ProxyResponse;

/// Anthropic's error types, each with the status the API answers it with.
const TYPES: [(&str, u16); 10] = [
    ("invalid_request_error", 400),
    ("authentication_error", 401),
    ("billing_error", 402),
    ("permission_error", 403),
    ("not_found_error", 404),
    ("request_too_large", 413),
    ("rate_limit_error", 429),
    ("api_error", 500),
    ("timeout_error", 504),
    ("overloaded_error", 529),
];

/// The Anthropic error type for a status (an Anthropic upstream's own type is kept instead).
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 | 408 => "timeout_error",
        503 | 529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The type to show for `error` answered with `status`: the upstream's own when it is one of
/// Anthropic's (an `anthropic` target said it), else the one that goes with the status.
fn kind_of(error: &ErrorObject, status: u16) -> &'static str {
    TYPES
        .iter()
        .find(|(kind, _)| *kind == error.kind)
        .map_or_else(|| error_type(status), |(kind, _)| kind)
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// `{"type":"error","error":{"type":kind,"message":message}}`.
pub fn body(kind: &str, message: &str) -> Vec<u8> {
    let envelope = Envelope {
        kind: "error",
        error: Inner { kind, message },
    };
    // Serialising two strings cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Whether the client's own retry cannot help: its request is wrong, or the proxy has already
/// tried every key and target (the SDKs retry up to 10 times, which would multiply the
/// proxy's attempts). A 429 or an overload may pass, so those stay retryable.
fn should_not_retry(status: u16) -> bool {
    !matches!(status, 408 | 409 | 429 | 529)
}

/// The status the proxy answers `error` with on this surface: Anthropic's 529 when every target
/// that was tried said it was overloaded, else the proxy's own.
fn status_of(error: &ProxyError) -> u16 {
    if let ProxyError::AllFailed { attempts, stop, .. } = error {
        let mut tried = attempts
            .iter()
            .filter(|a| !matches!(a.outcome, Outcome::CannotExpress(_)))
            .peekable();
        let overloaded = stop.is_none()
            && tried.peek().is_some()
            && tried.all(|a| {
                matches!(
                    a.outcome,
                    Outcome::Status(503 | 529) | Outcome::FailedBeforeFirstByte(529, _)
                )
            });
        if overloaded {
            return 529;
        }
    }
    error.status()
}

/// The whole response for `error` on the Messages surface.
pub fn response(error: ProxyError) -> ProxyResponse {
    let status = status_of(&error);
    let object = error.to_error_object();
    let message = match error {
        ProxyError::Unauthorized => {
            "Missing or invalid proxy token. Send it as `x-api-key: <token>` (ANTHROPIC_API_KEY) or `Authorization: Bearer <token>` (ANTHROPIC_AUTH_TOKEN).".to_owned()
        }
        ProxyError::NotFound => {
            "Unknown path. The Messages front door serves POST /v1/messages and POST /v1/messages/count_tokens.".to_owned()
        }
        _ => object.message.clone(),
    };
    // Only an upstream's error can carry Anthropic's own type; the proxy's own errors are
    // typed by their status (OpenAI calls a 404 an `invalid_request_error`, Anthropic does not).
    let kind = match error {
        ProxyError::Upstream { .. } => kind_of(&object, status),
        _ => error_type(status),
    };
    let mut response = ProxyResponse::json(status, Bytes::from(body(kind, &message)));
    response.headers.extend(error.headers());
    let told = response
        .headers
        .iter()
        .any(|(name, _)| *name == "x-should-retry");
    if should_not_retry(status) && !told {
        response
            .headers
            .push(("x-should-retry", "false".to_owned()));
    }
    response
}

/// The `event: error` that ends a stream after output began; `open` says the client is in the
/// middle of an event, which a blank line closes first.
pub fn sse_tail(status: u16, error: &ErrorObject, open: bool) -> Bytes {
    let mut out = Vec::with_capacity(error.message.len() + 96);
    if open {
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(b"event: error\ndata: ");
    out.extend_from_slice(&body(kind_of(error, status), &error.message));
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::failover::Attempt;
    use crate::core::route::Via;

    fn text(response: &ProxyResponse) -> String {
        match &response.body {
            crate::core::http::ResponseBody::Full(b) => String::from_utf8(b.to_vec()).unwrap(),
            _ => panic!("not a full body"),
        }
    }

    fn header<'a>(response: &'a ProxyResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn failed(outcomes: Vec<Outcome>) -> ProxyError {
        ProxyError::AllFailed {
            route: "r",
            attempts: outcomes
                .into_iter()
                .map(|outcome| Attempt {
                    provider: "anthropic",
                    model: "m",
                    via: Via::Key("K"),
                    outcome,
                })
                .collect(),
            stop: None,
        }
    }

    #[test]
    fn errors_have_anthropics_exact_shape_type_and_status() {
        let r = response(ProxyError::ModelNotFound("x".into()));
        assert_eq!(r.status, 404);
        assert_eq!(
            text(&r),
            r#"{"type":"error","error":{"type":"not_found_error","message":"The model `x` does not exist on this proxy. GET /v1/models lists the routes."}}"#
        );
        assert_eq!(header(&r, "x-should-retry"), Some("false"));
        let r = response(ProxyError::Unauthorized);
        assert_eq!(r.status, 401);
        assert!(text(&r).contains(r#""type":"authentication_error""#));
        assert!(text(&r).contains("x-api-key"));
        let r = response(ProxyError::BodyTooLarge);
        assert_eq!(r.status, 413);
        assert!(text(&r).contains(r#""type":"request_too_large""#));
    }

    #[test]
    fn every_target_overloaded_is_529_and_retryable() {
        let r = response(failed(vec![Outcome::Status(529), Outcome::Status(503)]));
        assert_eq!(r.status, 529);
        assert!(text(&r).contains(r#""type":"overloaded_error""#));
        assert_eq!(header(&r, "x-should-retry"), None);
        let r = response(failed(vec![Outcome::Status(529), Outcome::Status(500)]));
        assert_eq!(r.status, 500);
        assert!(text(&r).contains(r#""type":"api_error""#));
        assert_eq!(header(&r, "x-should-retry"), Some("false"));
        let r = response(failed(vec![
            Outcome::Status(429),
            Outcome::CoolingDown(2_500),
        ]));
        assert_eq!(r.status, 429);
        assert!(text(&r).contains(r#""type":"rate_limit_error""#));
        assert_eq!(header(&r, "retry-after"), Some("3"));
        assert_eq!(header(&r, "x-should-retry"), None);
    }

    #[test]
    fn an_anthropic_upstreams_own_type_is_kept() {
        let e = ProxyError::Upstream {
            status: 400,
            error: ErrorObject::new("max_tokens: too big", "invalid_request_error", None, None),
        };
        assert_eq!(
            text(&response(e)),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#
        );
    }

    #[test]
    fn a_late_failure_is_an_error_event() {
        let e = ErrorObject::new("upstream reset", "server_error", None, None);
        assert_eq!(
            &sse_tail(502, &e, false)[..],
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream reset\"}}\n\n"
        );
        let e = ErrorObject::new("Overloaded", "overloaded_error", None, None);
        assert!(sse_tail(529, &e, true).starts_with(b"\n\nevent: error\n"));
    }
}
