//! Anthropic Messages API: OpenAI Chat Completions requests are translated to
//! `POST {base_url}/v1/messages`, and Messages responses and event streams back to OpenAI
//! `chat.completion` objects and chunks. Pure functions and types; the core does the I/O.
//!
//! JSON output (`response_format` json_schema/json_object) is done with a forced tool rather
//! than the native `output_config.format`: the forced tool works on every Claude model since
//! Claude 3 (the native field only on recent ones, and an unsupported field is a 400), and its
//! input is always a JSON object that matches the schema. Its `tool_use` input becomes the
//! answer's `content` and the `finish_reason` is `stop`, in streams too.

pub mod passthrough;
pub mod request;
pub mod response;
pub mod stream;
pub mod wire;

use bytes::Bytes;

use crate::core::error::ErrorObject;
use crate::core::fields::Field;
use crate::core::host::UpstreamRequest;
use crate::core::provider::{json_body, PrepareError, Provider, SecretLookup};
use crate::core::request::{ChatRequest, Operation};
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::UpstreamError;
use crate::providers::output_limit;
use serde_json::Value;

/// The API version every request pins (the one the official SDKs send).
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Name of the tool that carries a JSON-mode answer (the name LiteLLM uses too).
pub const JSON_TOOL: &str = "json_tool_call";

/// Documented maximum output tokens per Claude model family, most specific first.
pub const OUTPUT_MAXIMA: [(&str, u32); 12] = [
    ("claude-opus-4-5", 64_000),
    ("claude-opus-4-1", 32_000),
    ("claude-opus-4", 32_000),
    ("claude-sonnet-4", 64_000),
    ("claude-haiku-4", 64_000),
    ("claude-3-7-sonnet", 64_000),
    ("claude-3-5-sonnet", 8_192),
    ("claude-3-5-haiku", 8_192),
    ("claude-3-opus", 4_096),
    ("claude-3-sonnet", 4_096),
    ("claude-3-haiku", 4_096),
    ("claude-2", 4_096),
];

/// Budget for models missing from [`OUTPUT_MAXIMA`].
const FALLBACK_MAX_TOKENS: u32 = 8_192;

/// `max_tokens` sent when neither the client nor routes.toml (`max_tokens` on the target) set
/// one. Anthropic requires the field and has no server default; a small fixed default (LiteLLM's
/// 4096) silently truncates long answers, so this is the model's documented output maximum
/// (Anthropic models overview: Opus 4/4.1 32k; Sonnet 4/4.5, Haiku 4.5, Opus 4.5, Sonnet 3.7
/// 64k; 3.5 models 8192; Claude 3 4096). The family is matched anywhere in the id, so dated ids,
/// `-latest` aliases and Bedrock/Vertex-style prefixes resolve too. Unknown models get 8192,
/// which every Claude model since 3.5 accepts. Since only generated tokens are billed, a large
/// budget costs nothing; on models that require prompt + max_tokens to fit the context window,
/// set a smaller `max_tokens` on the target.
pub fn default_max_tokens(model: &str) -> u32 {
    OUTPUT_MAXIMA
        .iter()
        .find(|(family, _)| model.contains(family))
        .map_or(FALLBACK_MAX_TOKENS, |&(_, max)| max)
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`; `tool_use` is `tool_calls` only
/// when client tool calls were produced (a JSON-mode answer alone finishes with `stop`).
pub fn finish_reason(
    stop_reason: Option<&str>,
    tool_calls: bool,
    json_answer: bool,
) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("refusal") => "content_filter",
        Some("tool_use") if tool_calls || !json_answer => "tool_calls",
        _ if tool_calls => "tool_calls",
        // end_turn, stop_sequence, pause_turn, a JSON-mode answer, and any newer reason.
        _ => "stop",
    }
}

/// The status an Anthropic error type corresponds to (its non-streaming HTTP status).
pub fn error_status(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "billing_error" => 402,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "api_error" => 500,
        "timeout_error" => 504,
        "overloaded_error" => 529,
        _ => 502,
    }
}

/// An Anthropic error object as the OpenAI error the client sees: same type and message.
fn error_object(error: &wire::ErrorBody) -> ErrorObject {
    let kind = if error.kind.is_empty() {
        "upstream_error"
    } else {
        &error.kind
    };
    let message = if error.message.is_empty() {
        format!("Anthropic reported {kind}")
    } else {
        error.message.clone()
    };
    ErrorObject::new(message, kind, None, None)
}

/// An `error` event (or an error body after a 200) as the in-band failure the core handles.
pub fn in_band_error(error: &wire::ErrorBody) -> UpstreamError {
    UpstreamError::in_band(error_status(&error.kind), error_object(error))
}

/// The client-facing error for a non-2xx Anthropic response (status kept by the core).
pub fn error(status: u16, body: &[u8]) -> ErrorObject {
    match serde_json::from_slice::<wire::ErrorEnvelope>(body) {
        Ok(envelope) => error_object(&envelope.error),
        Err(_) => ErrorObject::from_upstream(status, body),
    }
}

/// The Anthropic Messages API, translated both ways: `provider = "anthropic"`.
pub struct Anthropic;

/// A translated request, ready for any key.
pub struct Prepared {
    /// The Messages request.
    body: Bytes,
    /// Whether the client asked for a stream.
    stream: bool,
    /// Whether the client asked for the final usage chunk.
    include_usage: bool,
    /// Whether the answer comes through the forced [`JSON_TOOL`].
    json_mode: bool,
    /// The client's own Messages request, passed through with these headers: its answer is
    /// already the client's.
    passthrough: Option<Headers>,
}

/// The Anthropic headers a passed-through request carries.
struct Headers {
    /// The client's `anthropic-version`, else the one the proxy pins.
    version: String,
    /// The client's betas this target allows.
    beta: Option<String>,
}

impl Provider for Anthropic {
    type Prepared = Prepared;

    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        _secret: SecretLookup<'_>,
    ) -> Result<Prepared, PrepareError> {
        if let Some(inbound) = request.anthropic() {
            let model = request.upstream_model(target);
            let requested = inbound.body.field("max_tokens").and_then(Value::as_u64);
            let max_tokens = requested
                .map(|requested| output_limit::clamp(target, &model, requested))
                .filter(|clamped| Some(*clamped) != requested);
            let count = request.operation == Operation::CountTokens;
            return Ok(Prepared {
                body: passthrough::body(inbound, &model, max_tokens, count),
                stream: request.stream,
                include_usage: false,
                json_mode: false,
                passthrough: Some(Headers {
                    version: inbound
                        .version
                        .clone()
                        .unwrap_or_else(|| ANTHROPIC_VERSION.to_owned()),
                    beta: passthrough::betas(&inbound.betas, target.anthropic_betas),
                }),
            });
        }
        let value = request::body(target, request)?;
        Ok(Prepared {
            body: json_body(&value),
            stream: request.stream,
            include_usage: request.include_usage,
            json_mode: request::json_mode(request.body()),
            passthrough: None,
        })
    }

    /// `POST {base_url}/v1/messages` with the key in `x-api-key`.
    fn request(target: &'static Target, prepared: &Prepared, key: &str) -> UpstreamRequest {
        call(target, prepared, key, "/v1/messages", prepared.stream)
    }

    fn speaks_front(prepared: &Prepared) -> bool {
        prepared.passthrough.is_some()
    }

    /// `POST {base_url}/v1/messages/count_tokens`, for a Messages request.
    fn count_request(
        target: &'static Target,
        prepared: &Prepared,
        key: &str,
    ) -> Option<UpstreamRequest> {
        prepared.passthrough.as_ref()?;
        Some(call(
            target,
            prepared,
            key,
            "/v1/messages/count_tokens",
            false,
        ))
    }

    fn count_answer(body: &[u8]) -> Option<u64> {
        passthrough::count_answer(body)
    }

    fn failure(_prepared: &Prepared, status: u16, body: &[u8]) -> UpstreamError {
        UpstreamError::answered(status, error(status, body))
    }

    fn translator(
        _target: &'static Target,
        prepared: &Prepared,
        created: u64,
    ) -> Box<dyn Translate> {
        if prepared.passthrough.is_some() {
            return passthrough::translator(prepared.stream);
        }
        if prepared.stream {
            Box::new(stream::StreamTranslator::new(
                created,
                prepared.include_usage,
                prepared.json_mode,
            ))
        } else {
            Box::new(response::json_translator(created, prepared.json_mode))
        }
    }
}

/// `POST {base_url}{path}` with the key in `x-api-key` and the Anthropic headers, for a
/// streamed answer or a whole one.
fn call(
    target: &Target,
    prepared: &Prepared,
    key: &str,
    path: &str,
    stream: bool,
) -> UpstreamRequest {
    let version = prepared
        .passthrough
        .as_ref()
        .map_or(ANTHROPIC_VERSION, |headers| headers.version.as_str());
    let mut headers = vec![
        ("x-api-key", key.to_owned()),
        ("anthropic-version", version.to_owned()),
        ("content-type", "application/json".to_owned()),
        UpstreamRequest::accept(stream),
    ];
    if let Some(beta) = prepared.passthrough.as_ref().and_then(|h| h.beta.clone()) {
        headers.push(("anthropic-beta", beta));
    }
    UpstreamRequest {
        url: [target.base_url, path].concat(),
        headers,
        body: prepared.body.clone(),
        stream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;

    #[test]
    fn request_goes_to_v1_messages_with_the_anthropic_headers() {
        static TARGET: Target = Target {
            provider: "anthropic",
            model: "claude-opus-4-20250514",
            base_url: "https://api.anthropic.com",
            vias: &[Via::Key("ANTHROPIC_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let req = ChatRequest::parse(
            br#"{"model":"deep-think","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let prepared = Anthropic::prepare(&TARGET, &req, &|_| None).unwrap();
        let up = Anthropic::request(&TARGET, &prepared, "sk-ant-secret");
        assert_eq!(up.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(
            up.headers[..3],
            [
                ("x-api-key", "sk-ant-secret".to_owned()),
                ("anthropic-version", "2023-06-01".to_owned()),
                ("content-type", "application/json".to_owned()),
            ]
        );
        assert_eq!(
            &up.body[..],
            br#"{"model":"claude-opus-4-20250514","max_tokens":32000,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#
        );
    }

    #[test]
    fn default_max_tokens_follow_the_documented_maxima() {
        assert_eq!(default_max_tokens("claude-opus-4-20250514"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-1-20250805"), 32_000);
        assert_eq!(default_max_tokens("claude-opus-4-5"), 64_000);
        assert_eq!(default_max_tokens("claude-sonnet-4-5-20250929"), 64_000);
        assert_eq!(default_max_tokens("claude-3-5-haiku-latest"), 8_192);
        assert_eq!(
            default_max_tokens("anthropic.claude-3-haiku-20240307-v1:0"),
            4_096
        );
        assert_eq!(default_max_tokens("some-new-model"), 8_192);
    }

    #[test]
    fn error_bodies_keep_anthropic_type_and_message() {
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.4: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01VpcjfdZzYXsTLfob5im4c8."},"request_id":"req_011CUzbiD3p8rokhqWtP6EWX"}"#;
        assert_eq!(
            error(400, body),
            ErrorObject::new(
                "messages.4: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_01VpcjfdZzYXsTLfob5im4c8.",
                "invalid_request_error",
                None,
                None
            )
        );
        let e = error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("overloaded_error", "Overloaded")
        );
        assert_eq!(
            error(502, b"<html>bad gateway</html>").message,
            "upstream returned HTTP 502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn error_types_map_to_their_statuses() {
        for (kind, status) in [
            ("overloaded_error", 529),
            ("api_error", 500),
            ("rate_limit_error", 429),
            ("timeout_error", 504),
            ("authentication_error", 401),
            ("invalid_request_error", 400),
            ("mystery", 502),
        ] {
            assert_eq!(error_status(kind), status);
        }
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("tool_use"), true, false), "tool_calls");
        assert_eq!(finish_reason(Some("tool_use"), false, true), "stop");
        assert_eq!(finish_reason(Some("tool_use"), true, true), "tool_calls");
        assert_eq!(finish_reason(Some("end_turn"), false, false), "stop");
        assert_eq!(finish_reason(None, false, false), "stop");
    }
}
