//! Cloudflare Workers AI (`provider = "cloudflare-ai"`), reached two ways with one input and one
//! output translation (shared/wire/workers-ai.md):
//!
//! * `api_keys = []`: the Worker's AI binding, `env.AI.run(model, inputs)`, asked of the host
//!   as a [`BindingCall`]. The Workers host builds the arguments as real JS objects
//!   (workers-rs#1050 turns nested `serde_json` objects into `Map`s that the binding reads as
//!   empty, which silently drops tool schemas).
//! * `api_keys = ["CF_API_TOKEN"]` + `account_id = "CF_ACCOUNT_ID"`: the REST API,
//!   `POST {base_url}/accounts/{account_id}/ai/run/{model}` with the token as a bearer. This is
//!   what the native host uses (it has no binding); a Worker can use it too.
//!
//! The body is the model's *input* (no `model` field: the binding takes it as an argument, REST
//! in the path), so the same bytes go to either. Outputs come in three JSON shapes and two SSE
//! formats, and a model may answer a streaming request with one whole object; the translators
//! detect rather than assume (see [`response`] and [`stream`]).

pub mod output;
pub mod request;
pub mod response;
pub mod stream;

use bytes::Bytes;
use serde_json::Value;

use crate::core::error::ErrorObject;
use crate::core::host::{BindingCall, UpstreamRequest};
use crate::core::provider::{json_body, PrepareError, Provider, SecretLookup};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::stream::Translate;
use crate::core::verdict::UpstreamError;
/// `max_tokens` sent when neither the client nor the target sets one. The binding's own default
/// is 256 on most text models (their JSON schemas), which silently truncates ordinary answers;
/// 4096 covers long answers while leaving room for the prompt in the 8k context of the smallest
/// chat models (e.g. `llama-3.1-8b-instruct`: 7968 tokens). Set `max_tokens` on the target to
/// use more on large-context models.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The two input families of workers-ai.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `AiTextGenerationInput`: string `content`, OpenAI-style or flat tools, no `tool_choice`.
    Legacy,
    /// `ChatCompletionsInput`: a near-copy of OpenAI's request.
    Chat,
}

/// Model-id prefixes typed as OpenAI Chat Completions input in `ai.d.ts` (plus the catalogue's
/// newer ones of the same families). Everything else gets the legacy input, which these models
/// accept too, only with less.
const CHAT_MODELS: [&str; 8] = [
    "@cf/openai/gpt-oss-",
    "@cf/moonshotai/kimi-",
    "@cf/zai-org/glm-",
    "@cf/nvidia/nemotron-3",
    "@cf/google/gemma-4",
    "@cf/qwen/qwen3-",
    "@cf/deepseek-ai/deepseek-v4",
    "@cf/deepseek-ai/deepseek-v3",
];

/// The input family of `model`.
pub fn family(model: &str) -> Family {
    if CHAT_MODELS.iter().any(|p| model.starts_with(p)) {
        Family::Chat
    } else {
        Family::Legacy
    }
}

/// Cloudflare Workers AI, through the AI binding or the REST API: `provider = "cloudflare-ai"`.
pub struct WorkersAi;

/// A model input, ready for the binding or any API token.
pub struct Prepared {
    /// The model's input (no `model` field: the binding takes it as an argument, REST in the
    /// path), the same bytes either way.
    inputs: Bytes,
    /// The account id in the REST URL (a keyed target's `account_id` secret); empty for the
    /// binding.
    account: String,
    /// Whether the client asked for a stream.
    stream: bool,
    /// Whether the client asked for the final usage chunk.
    include_usage: bool,
    /// The `max_tokens` the input carries: a finish without a reason is `length` at it.
    max_tokens: u32,
    /// The model asked for (the target's, with a route pattern's match in place of `{*}`).
    model: String,
}

impl Provider for WorkersAi {
    type Prepared = Prepared;

    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        secret: SecretLookup<'_>,
    ) -> Result<Prepared, PrepareError> {
        let inputs = request::inputs(target, request)?;
        // A REST target cannot use any of its keys without the account its URL names.
        let account = match target.account_id {
            Some(name) => secret(name)
                .ok_or(PrepareError::SecretNotSet(name))?
                .to_string(),
            None => String::new(),
        };
        Ok(Prepared {
            inputs: json_body(&inputs),
            account,
            stream: request.stream,
            include_usage: request.include_usage,
            max_tokens: request::max_tokens(target, request.body()),
            model: request.upstream_model(target).into_owned(),
        })
    }

    /// `POST {base_url}/accounts/{account}/ai/run/{model}` with the API token as a bearer.
    fn request(target: &'static Target, prepared: &Prepared, key: &str) -> UpstreamRequest {
        UpstreamRequest {
            url: format!(
                "{}/accounts/{}/ai/run/{}",
                target.base_url,
                path_segment(&prepared.account),
                prepared.model
            ),
            headers: vec![
                ("authorization", format!("Bearer {key}")),
                ("content-type", "application/json".to_owned()),
            ],
            body: prepared.inputs.clone(),
            stream: prepared.stream,
        }
    }

    /// `env.AI.run(model, inputs)`.
    fn binding_call(_target: &'static Target, prepared: &Prepared) -> Option<BindingCall> {
        Some(BindingCall {
            method: "run",
            args: vec![json_body(&prepared.model), prepared.inputs.clone()],
        })
    }

    /// The v4 envelope's first error (REST), with its code; anything else as an OpenAI-shaped
    /// or raw body.
    fn failure(_prepared: &Prepared, status: u16, body: &[u8]) -> UpstreamError {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = match parsed.as_ref().and_then(envelope_error) {
            Some((code, message)) => {
                let message = if message.is_empty() {
                    format!("Workers AI returned HTTP {status}")
                } else {
                    format!("Workers AI: {message}")
                };
                coded_error(message, status, code)
            }
            None => ErrorObject::from_upstream(status, body),
        };
        UpstreamError::answered(status, error)
    }

    /// The binding throws `InferenceUpstreamError: 3040: ...`: the code stands for a status,
    /// judged like the REST API's. A message without a code is the binding failing, not the
    /// request (502, retried).
    fn thrown(_prepared: &Prepared, message: &str) -> UpstreamError {
        let code = code_in(message);
        let status = code.map_or(502, code_status);
        UpstreamError::answered(
            status,
            coded_error(format!("Workers AI: {message}"), status, code),
        )
    }

    /// JSON for a non-streaming request, SSE otherwise (either upstream stream format, or a
    /// whole object turned into a stream).
    fn translator(
        _target: &'static Target,
        prepared: &Prepared,
        created: u64,
    ) -> Box<dyn Translate> {
        if prepared.stream {
            Box::new(
                stream::StreamTranslator::new(
                    &prepared.model,
                    created,
                    prepared.include_usage,
                    prepared.max_tokens,
                )
                .seeded(seed(created)),
            )
        } else {
            Box::new(response::json_translator(
                &prepared.model,
                created,
                prepared.max_tokens,
                seed(created),
            ))
        }
    }
}

/// An account id is hex; anything else is percent-encoded so a mistyped secret cannot change
/// the path (`../`, `?`).
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.trim().bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP status a Workers AI error code stands for (gateway-core `workers-ai-errors.ts`,
/// citing developers.cloudflare.com/workers-ai/platform/errors). The failover rules then do the
/// rest: 429 (capacity 3040, daily allocation 3036), 408 (timeouts) and 403 (agreement/account)
/// move on to the next target; 400/404/405/413 (bad input, no such model, too large) go back to
/// the client. Unknown codes are treated as the upstream's failure (502), which fails over.
pub fn code_status(code: u64) -> u16 {
    match code {
        5007 | 5004 | 3003 | 3039 => 400,
        5016 | 5018 | 3023 | 3041 => 403,
        5019 | 5005 => 405,
        3042 => 404,
        3006 => 413,
        3007 | 3008 => 408,
        3036 | 3040 => 429,
        _ => 502,
    }
}

/// The first four-digit number standing alone in a thrown message: Workers AI's internal code
/// (`InferenceUpstreamError: 3040: Capacity temporarily exceeded`).
pub fn code_in(message: &str) -> Option<u64> {
    message
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 4)
        .and_then(|part| part.parse().ok())
}

/// An error with Workers AI's code as `code`.
fn coded_error(message: String, status: u16, code: Option<u64>) -> ErrorObject {
    ErrorObject::for_status(message, status, code.map(|c| c.to_string()).as_deref())
}

/// The first entry of a Cloudflare v4 envelope's `errors`, as (code, message).
fn envelope_error(value: &Value) -> Option<(Option<u64>, String)> {
    let first = value.get("errors")?.as_array()?.first()?;
    let code = first.get("code").and_then(Value::as_u64);
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((code, message))
}

/// An error reported inside a 200 (a v4 envelope with `success: false`, an `error` event).
pub fn in_band(value: &Value) -> Option<UpstreamError> {
    let failed = value.get("success").and_then(Value::as_bool) == Some(false);
    if let Some((code, message)) = envelope_error(value).filter(|_| failed) {
        let status = code.map_or(502, code_status);
        let error = coded_error(format!("Workers AI: {message}"), status, code);
        return Some(UpstreamError::in_band(status, error));
    }
    let error = value.get("error").filter(|e| !e.is_null())?;
    let message = match error {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| other.to_string(), str::to_owned),
    };
    let status = code_in(&message).map_or(502, code_status);
    let error = ErrorObject::for_status(format!("Workers AI: {message}"), status, None);
    Some(UpstreamError::in_band(status, error))
}

/// Per-response entropy for the tool-call ids made up or rewritten here: the response time and a
/// value that never repeats (see [`crate::core::entropy`]). (The first event or the body is
/// mixed in too; on its own it does not vary: a model repeats `call0` and identical text.)
pub fn seed(created: u64) -> u64 {
    output::fnv(created, &crate::core::entropy::unique().to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;

    /// A prepared request for the binding (no account) of `model`.
    fn prepared() -> Prepared {
        Prepared {
            inputs: Bytes::from_static(b"{}"),
            account: String::new(),
            stream: false,
            include_usage: false,
            max_tokens: DEFAULT_MAX_TOKENS,
            model: "@cf/meta/llama-3.1-8b-instruct".to_owned(),
        }
    }

    fn thrown(message: &str) -> UpstreamError {
        WorkersAi::thrown(&prepared(), message)
    }

    fn error(status: u16, body: &[u8]) -> ErrorObject {
        WorkersAi::failure(&prepared(), status, body).error
    }

    #[test]
    fn error_codes_map_to_statuses_that_drive_failover() {
        use crate::core::verdict::Verdict;
        for (code, status, v) in [
            (3040, 429, Verdict::Retry),
            (3036, 429, Verdict::Retry),
            (3007, 408, Verdict::Retry),
            (5016, 403, Verdict::KeyRejected),
            (5004, 400, Verdict::ClientError),
            (5007, 400, Verdict::ClientError),
            (3003, 400, Verdict::ClientError),
            (3042, 404, Verdict::Retry),
            (3006, 413, Verdict::ClientError),
            (5005, 405, Verdict::ClientError),
            (9999, 502, Verdict::Retry),
        ] {
            assert_eq!(code_status(code), status, "{code}");
            let failure = thrown(&format!("InferenceUpstreamError: {code}: x"));
            assert_eq!((failure.status, failure.verdict()), (status, v), "{code}");
        }
    }

    #[test]
    fn thrown_messages_carry_their_code() {
        assert_eq!(
            code_in("InferenceUpstreamError: 3040: Capacity temporarily exceeded"),
            Some(3040)
        );
        assert_eq!(
            code_in("AiError: 5007: No such model @cf/x/y-2025"),
            Some(5007)
        );
        assert_eq!(code_in("network connection lost"), None);
        let r = thrown("InferenceUpstreamError: 3040: Capacity temporarily exceeded");
        assert_eq!(r.status, 429);
        let r = thrown("AiError: 5004: Invalid data");
        assert_eq!(r.status, 400);
        assert_eq!(thrown("boom").status, 502);
    }

    #[test]
    fn envelope_errors_keep_message_and_code() {
        let body = br#"{"success":false,"errors":[{"code":5007,"message":"No such model"}],"messages":[],"result":null}"#;
        assert_eq!(
            error(400, body),
            ErrorObject::new(
                "Workers AI: No such model",
                "invalid_request_error",
                None,
                Some("5007")
            )
        );
        assert_eq!(
            error(502, b"bad gateway").message,
            "upstream returned HTTP 502: bad gateway"
        );
    }

    #[test]
    fn rest_request_names_account_and_model_and_never_puts_the_token_in_the_url() {
        static TARGET: Target = Target {
            provider: "cloudflare-ai",
            model: "@cf/meta/llama-3.1-8b-instruct",
            base_url: "https://api.cloudflare.com/client/v4",
            vias: &[Via::Key("CF_API_TOKEN")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: Some("CF_ACCOUNT_ID"),
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let req =
            ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
                .unwrap();
        let account =
            |value: &'static str| move |name: &str| (name == "CF_ACCOUNT_ID").then(|| value.into());
        let prepared = WorkersAi::prepare(&TARGET, &req, &account("abc123")).unwrap();
        let up = WorkersAi::request(&TARGET, &prepared, "tok-secret");
        assert_eq!(
            up.url,
            "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/@cf/meta/llama-3.1-8b-instruct"
        );
        assert_eq!(
            up.headers[0],
            ("authorization", "Bearer tok-secret".to_owned())
        );
        let prepared = WorkersAi::prepare(&TARGET, &req, &account("../x?y")).unwrap();
        let up = WorkersAi::request(&TARGET, &prepared, "t");
        assert!(
            up.url.contains("/accounts/%2E%2E%2Fx%3Fy/ai/run/"),
            "{}",
            up.url
        );
    }

    #[test]
    fn families() {
        assert_eq!(
            family("@cf/meta/llama-3.3-70b-instruct-fp8-fast"),
            Family::Legacy
        );
        assert_eq!(family("@cf/openai/gpt-oss-120b"), Family::Chat);
        assert_eq!(family("@cf/moonshotai/kimi-k2.6"), Family::Chat);
        assert_eq!(family("@cf/google/gemma-4-26b-a4b-it"), Family::Chat);
        assert_eq!(family("@cf/google/gemma-3-12b-it"), Family::Legacy);
    }
}
