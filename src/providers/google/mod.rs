//! Google Gemini (Developer API, `generativelanguage.googleapis.com`): OpenAI Chat Completions
//! requests are translated to `POST {base_url}/v1beta/models/{model}:generateContent` (or
//! `:streamGenerateContent?alt=sse`), and `GenerateContentResponse`s back to OpenAI
//! `chat.completion` objects and chunks. Pure functions and types; the core does the I/O.
//!
//! Gemini usually returns function calls without ids, so the proxy mints them; a Gemini 3
//! `thoughtSignature` must come back on the same call in the next turn or Gemini answers 400,
//! and an OpenAI client only carries the tool-call id, so the signature rides in the id as
//! `<id>__thought__<signature>` (LiteLLM's convention) and is split out again on the way back.

pub mod ids;
pub mod request;
pub mod response;
pub mod schema;
pub mod stream;
pub mod wire;

use bytes::Bytes;

use crate::core::error::ErrorObject;
use crate::core::host::UpstreamRequest;
use crate::core::provider::{json_body, PrepareError, Provider, SecretLookup};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::{seconds_as_ms, UpstreamError};

/// OpenAI `finish_reason` for a Gemini `finishReason`. A function call ends with `STOP` (there
/// is no FUNCTION_CALL reason), so `tool_calls` is decided by whether the candidate emitted a
/// call anywhere in the response, not by the reason.
pub fn finish_reason(reason: Option<&str>, tool_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY"
            | "RECITATION"
            | "LANGUAGE"
            | "OTHER"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION"
            | "IMAGE_OTHER",
        ) => "content_filter",
        _ if tool_calls => "tool_calls",
        // STOP, FINISH_REASON_UNSPECIFIED, MALFORMED_FUNCTION_CALL and anything newer.
        _ => "stop",
    }
}

/// The HTTP status a Google RPC status name stands for (used when `code` is missing).
pub fn status_code(status: &str) -> u16 {
    match status {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 502,
    }
}

/// Google's error as the OpenAI error the client sees: Gemini's message, an OpenAI `type`,
/// and Google's status name (lower-cased, OpenAI-style) as `code`.
fn error_object(error: &wire::Status, http: u16) -> ErrorObject {
    let code = (!error.status.is_empty()).then(|| error.status.to_ascii_lowercase());
    let message = if error.message.is_empty() {
        format!("Gemini returned HTTP {http}")
    } else {
        error.message.clone()
    };
    ErrorObject::for_status(message, http, code.as_deref())
}

fn http_status(error: &wire::Status) -> u16 {
    if (400..600).contains(&error.code) {
        error.code
    } else {
        status_code(&error.status)
    }
}

/// An error envelope inside a 200 (an SSE event, or raw JSON appended to a stream) as the
/// in-band failure the core handles.
pub fn in_band_error(error: &wire::Status) -> UpstreamError {
    let status = http_status(error);
    UpstreamError::in_band(status, error_object(error, status))
}

/// The client-facing error for a non-2xx Gemini response (status kept by the core).
pub fn error(status: u16, body: &[u8]) -> ErrorObject {
    match serde_json::from_slice::<wire::ErrorEnvelope>(body) {
        Ok(envelope) => error_object(&envelope.error, status),
        Err(_) => ErrorObject::from_upstream(status, body),
    }
}

/// Whether a client-error status is really a rejected key, which another key may fix: Gemini
/// answers an invalid or expired key with `400 INVALID_ARGUMENT` (reason `API_KEY_INVALID`),
/// not 401, so the status alone would stop failover at a revoked key.
pub fn key_rejected(status: u16, body: &[u8]) -> bool {
    if status != 400 {
        return false;
    }
    let Ok(envelope) = serde_json::from_slice::<wire::ErrorEnvelope>(body) else {
        return false;
    };
    let reason_invalid = envelope.error.details.iter().any(|d| {
        matches!(
            d.get("reason").and_then(serde_json::Value::as_str),
            Some("API_KEY_INVALID" | "API_KEY_EXPIRED")
        )
    });
    reason_invalid || envelope.error.message.starts_with("API key not valid")
}

/// The wait a 429's `google.rpc.RetryInfo` detail asks for (`"retryDelay": "30s"`), in ms.
pub fn retry_delay_ms(status: u16, body: &[u8]) -> Option<u64> {
    if status != 429 {
        return None;
    }
    let envelope = serde_json::from_slice::<wire::ErrorEnvelope>(body).ok()?;
    envelope.error.details.iter().find_map(|d| {
        let is_retry_info = d
            .get("@type")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"));
        let delay = d.get("retryDelay")?.as_str()?.strip_suffix('s')?;
        is_retry_info.then(|| seconds_as_ms(delay)).flatten()
    })
}

/// The `{model}` path segment: the bare id (a `models/` prefix, as `models.list` spells names,
/// is accepted too).
fn model_path(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// Google Gemini's `generateContent`, translated both ways: `provider = "google"`.
pub struct Google;

/// A translated request, ready for any key.
pub struct Prepared {
    /// The `GenerateContentRequest`.
    body: Bytes,
    /// Whether the client asked for a stream.
    stream: bool,
    /// Whether the client asked for the final usage chunk.
    include_usage: bool,
    /// The model asked for (the target's, with a route pattern's match in place of `{*}`).
    model: String,
}

impl Provider for Google {
    type Prepared = Prepared;

    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        _secret: SecretLookup<'_>,
    ) -> Result<Prepared, PrepareError> {
        let value = request::body(target, request)?;
        Ok(Prepared {
            body: json_body(&value),
            stream: request.stream,
            include_usage: request.include_usage,
            model: request.upstream_model(target).into_owned(),
        })
    }

    /// `POST {base_url}/v1beta/models/{model}:generateContent`, or
    /// `:streamGenerateContent?alt=sse` (without `alt=sse` the stream is one incremental JSON
    /// array), with the key in the `x-goog-api-key` header: never in the URL, where it would
    /// reach access logs.
    fn request(target: &'static Target, prepared: &Prepared, key: &str) -> UpstreamRequest {
        let method = if prepared.stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        UpstreamRequest {
            url: [
                target.base_url,
                "/v1beta/models/",
                model_path(&prepared.model),
                ":",
                method,
            ]
            .concat(),
            headers: vec![
                ("x-goog-api-key", key.to_owned()),
                ("content-type", "application/json".to_owned()),
                UpstreamRequest::accept(prepared.stream),
            ],
            body: prepared.body.clone(),
            stream: prepared.stream,
        }
    }

    /// `POST {base_url}/v1beta/models/{model}:countTokens` with the whole request, so system
    /// instruction and tools count too.
    fn count_request(
        target: &'static Target,
        prepared: &Prepared,
        key: &str,
    ) -> Option<UpstreamRequest> {
        let model = model_path(&prepared.model);
        // `{"generateContentRequest":{"model":"models/…", …the request's fields…}}`.
        let fields = prepared.body.strip_prefix(b"{")?;
        let mut body =
            format!(r#"{{"generateContentRequest":{{"model":"models/{model}""#).into_bytes();
        if fields != b"}" {
            body.push(b',');
        }
        body.extend_from_slice(fields);
        body.push(b'}');
        Some(UpstreamRequest {
            url: format!("{}/v1beta/models/{model}:countTokens", target.base_url),
            headers: vec![
                ("x-goog-api-key", key.to_owned()),
                ("content-type", "application/json".to_owned()),
                UpstreamRequest::accept(false),
            ],
            body: Bytes::from(body),
            stream: false,
        })
    }

    fn count_answer(body: &[u8]) -> Option<u64> {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get("totalTokens")?
            .as_u64()
    }

    fn failure(_prepared: &Prepared, status: u16, body: &[u8]) -> UpstreamError {
        let failure = UpstreamError::answered(status, error(status, body))
            .retry_after(retry_delay_ms(status, body));
        if key_rejected(status, body) {
            failure.rejecting_key()
        } else {
            failure
        }
    }

    /// The model asked for names the model when Gemini does not.
    fn translator(
        _target: &'static Target,
        prepared: &Prepared,
        created: u64,
    ) -> Box<dyn Translate> {
        if prepared.stream {
            Box::new(stream::StreamTranslator::new(
                created,
                &prepared.model,
                prepared.include_usage,
            ))
        } else {
            Box::new(response::json_translator(created, &prepared.model))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429s_retry_info_is_read_as_its_delay() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        assert_eq!(retry_delay_ms(429, body), Some(37_000));
        let fractional = br#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
        assert_eq!(retry_delay_ms(429, fractional), Some(1_500));
        assert_eq!(retry_delay_ms(503, body), None);
        assert_eq!(retry_delay_ms(429, b"{}"), None);
    }
    use crate::core::route::Via;

    /// A Google target for `model`, `'static` as the generated table's are.
    fn target(model: &'static str) -> &'static Target {
        Box::leak(Box::new(Target {
            provider: "google",
            model,
            base_url: "https://generativelanguage.googleapis.com",
            vias: &[Via::Key("GOOGLE_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        }))
    }

    fn prepare(target: &'static Target, request: &ChatRequest) -> Prepared {
        Google::prepare(target, request, &|_| None).unwrap()
    }

    #[test]
    fn urls_and_headers_keep_the_key_out_of_the_url() {
        let req =
            ChatRequest::parse(br#"{"model":"g","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        let t = target("gemini-2.5-flash");
        let up = Google::request(t, &prepare(t, &req), "AIza-secret");
        assert_eq!(
            up.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(up.headers[0], ("x-goog-api-key", "AIza-secret".to_owned()));
        assert!(!up.url.contains("AIza-secret") && !up.url.contains("key="));
        assert_eq!(
            &up.body[..],
            br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#
        );
        let streamed = ChatRequest::parse(
            br#"{"model":"g","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        let t = target("models/gemini-2.5-pro");
        let up = Google::request(t, &prepare(t, &streamed), "k");
        assert_eq!(
            up.url,
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(up.headers[2], ("accept", "text/event-stream".to_owned()));
    }

    #[test]
    fn error_bodies_keep_gemini_message_and_status() {
        let body = br#"{"error": {"code": 400, "message": "Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing thought_signature may lead to degraded model performance. Additional data, function call `default_api:codebase_search` , position 2. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.", "status": "INVALID_ARGUMENT"}}"#;
        let e = error(400, body);
        assert!(e
            .message
            .starts_with("Function call is missing a thought_signature"));
        assert_eq!(e.kind, "invalid_request_error");
        assert_eq!(e.code.as_deref(), Some("invalid_argument"));
        let e = error(
            429,
            br#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!(
            (e.kind.as_str(), e.message.as_str(), e.code.as_deref()),
            (
                "rate_limit_error",
                "Resource has been exhausted (e.g. check quota).",
                Some("resource_exhausted")
            )
        );
        assert_eq!(
            error(502, b"<html>bad gateway</html>").message,
            "upstream returned HTTP 502: <html>bad gateway</html>"
        );
    }

    #[test]
    fn an_invalid_key_400_is_recognised_for_rotation() {
        let invalid_key = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        assert!(key_rejected(400, invalid_key));
        let schema_error = br#"{"error": {"code": 400, "message": "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[34].parameters.properties[6].value.items.any_of[0]': Cannot find field.", "status": "INVALID_ARGUMENT"}}"#;
        assert!(!key_rejected(400, schema_error));
        assert!(!key_rejected(404, invalid_key));
        assert!(!key_rejected(400, b"not json"));
    }

    #[test]
    fn in_band_errors_use_the_code_or_the_status_name() {
        let status = wire::Status {
            code: 503,
            message: "The model is overloaded. Please try again later.".into(),
            status: "UNAVAILABLE".into(),
            details: vec![],
        };
        let e = in_band_error(&status);
        assert_eq!(e.status, 503);
        assert_eq!(e.error.kind, "server_error");
        assert_eq!(e.error.code.as_deref(), Some("unavailable"));
        let e = in_band_error(&wire::Status {
            status: "RESOURCE_EXHAUSTED".into(),
            ..wire::Status::default()
        });
        assert_eq!(
            (e.status, e.error.message.as_str()),
            (429, "Gemini returned HTTP 429")
        );
    }

    /// Turn one streams a signed call; the client sends back the id it got; turn two must
    /// carry the signature on the same call, and the tool result must name the function.
    #[test]
    fn a_thought_signature_survives_the_two_turn_round_trip() {
        let t = target("gemini-3-pro-preview");
        let turn_one = ChatRequest::parse(
            br#"{"model":"g","stream":true,"messages":[{"role":"user","content":"Weather in Paris?"}]}"#,
        )
        .unwrap();
        let mut translator = Google::translator(t, &prepare(t, &turn_one), 1_700_000_000);
        let mut sse = translator
            .chunk(Bytes::from_static(include_bytes!(
                "../../../tests/fixtures/google/function_call_split.sse"
            )))
            .unwrap()
            .to_vec();
        sse.extend_from_slice(&translator.end().unwrap());
        let sse = String::from_utf8(sse).unwrap();
        let call = sse
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .find_map(|e| {
                e["choices"][0]["delta"]["tool_calls"][0]
                    .as_object()
                    .cloned()
            })
            .unwrap();
        let id = call["id"].as_str().unwrap();
        let turn_two = serde_json::json!({"model": "g", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": call["function"]}]},
            {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\": 12}"}
        ]});
        let turn_two = ChatRequest::parse(turn_two.to_string().as_bytes()).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&prepare(t, &turn_two).body).unwrap();
        assert_eq!(
            sent["contents"][1],
            serde_json::json!({"role": "model", "parts": [{
                "functionCall": {"name": "get_current_weather", "args": {"location": "Paris"}},
                "thoughtSignature": "CiQB0e2Kb..."}]})
        );
        assert_eq!(
            sent["contents"][2],
            serde_json::json!({"role": "user", "parts": [{"functionResponse": {
                "name": "get_current_weather", "response": {"temp_c": 12}}}]})
        );
    }

    #[test]
    fn finish_reasons_follow_the_table() {
        assert_eq!(finish_reason(Some("STOP"), false), "stop");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
        assert_eq!(finish_reason(None, true), "tool_calls");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), false), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "LANGUAGE",
            "OTHER",
        ] {
            assert_eq!(finish_reason(Some(r), false), "content_filter", "{r}");
        }
        assert_eq!(
            finish_reason(Some("MALFORMED_FUNCTION_CALL"), false),
            "stop"
        );
        assert_eq!(
            finish_reason(Some("FINISH_REASON_UNSPECIFIED"), false),
            "stop"
        );
    }
}
