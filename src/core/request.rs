//! The chat completion request, parsed once at the edge.
//!
//! The body is kept as an ordered JSON map, and where they say the same at the top level, as the
//! client's bytes: a pass-through provider forwards every field untouched with only `model`
//! replaced. The fields the core itself acts on are checked and lifted out here, so nothing
//! downstream re-checks them.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::core::budget::{self, Outline};
use crate::core::error::ProxyError;
use crate::core::fields::Field;
use crate::core::meter::Meter;
use crate::core::route::{upstream_model, Target};

/// The API a request came in through, which decides the shape of its answer.
#[derive(Debug, Clone, Default)]
pub enum Front {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    #[default]
    OpenAi,
    /// Anthropic Messages (`/v1/messages`): the client's own body, for `anthropic` targets.
    Anthropic(Box<AnthropicInbound>),
}

/// What an Anthropic Messages request carries besides its OpenAI translation.
#[derive(Debug, Clone)]
pub struct AnthropicInbound {
    /// The client's body as sent.
    pub body: Map<String, Value>,
    /// Its bytes, where they can go upstream with only the model replaced.
    pub sent: Option<Sent>,
    /// The client's `anthropic-version` header.
    pub version: Option<String>,
    /// The client's `anthropic-beta` values, one per entry.
    pub betas: Vec<String>,
    /// The proxy's estimate of the input tokens (shown before the real count is known).
    pub input_estimate: u64,
}

/// What the client wants done with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Operation {
    /// A completion.
    #[default]
    Complete,
    /// Only the input's token count (`/v1/messages/count_tokens`).
    CountTokens,
}

/// A valid chat completion request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The route name the client asked for.
    pub model: String,
    /// Whether the client asked for an SSE stream.
    pub stream: bool,
    /// Whether the client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// What keeps a conversation on one key under `key_strategy = "sticky"`: the
    /// `x-session-id` header (set by the handler), else `user`, else `metadata.user_id`.
    pub session: Option<String>,
    /// The API the request came in through.
    pub front: Front,
    /// Completion or token count.
    pub operation: Operation,
    /// What a route pattern's `*` matched, substituted for `{*}` in a target's model.
    pub star: Option<String>,
    /// An exact thinking budget in tokens (Anthropic's `budget_tokens`), where the client gave
    /// one; `reasoning_effort` in the body says the same in coarser steps.
    pub thinking_budget: Option<u32>,
    /// Where the answer's usage goes when it has ended (set by the handler).
    pub meter: Meter,
    /// The proxy needs the upstream's own usage even where the client did not ask for it (an
    /// OpenAI stream then goes with `include_usage`, its usage chunk taken out again).
    pub usage_wanted: bool,
    body: Map<String, Value>,
    /// The body as sent, where it can be written back with another model by replacing only
    /// that value.
    sent: Option<Sent>,
}

/// A request body as the client sent it, and where its root's `model` string sits: writing it
/// back with another model copies the client's bytes around the new value instead of
/// re-serialising every parsed value (most of a long conversation's cost on the Worker).
#[derive(Debug, Clone)]
pub struct Sent {
    bytes: Bytes,
    model: Range<usize>,
}

impl Sent {
    /// `bytes` with its `outline`, when the bytes say exactly what `parsed` (their parse) says
    /// at the top level: every key written once and plainly, `model` among them as a string.
    /// A repeated key is read by serde_json as its last value, and might be read by an upstream
    /// as its first; a spelling with escapes is another key to a byte comparison.
    fn new(bytes: Bytes, outline: Outline, parsed: &Map<String, Value>) -> Option<Self> {
        let model = outline.model_value?;
        (outline.model_keys == 1 && outline.members == parsed.len() && model.end <= bytes.len())
            .then_some(Self { bytes, model })
    }

    /// The bytes with the `model` string replaced by `model`.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let (before, after) = (
            self.bytes.get(..self.model.start).unwrap_or_default(),
            self.bytes.get(self.model.end..).unwrap_or_default(),
        );
        let mut out = Vec::with_capacity(before.len() + model.len() + 2 + after.len());
        out.extend_from_slice(before);
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, model);
        out.extend_from_slice(after);
        out
    }
}

fn invalid(message: impl Into<String>, param: &str, code: &'static str) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.to_owned()),
        code,
    }
}

impl ChatRequest {
    /// Parses and checks a request body.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProxyError> {
        Self::parse_sent(Bytes::copy_from_slice(bytes))
    }

    /// Parses and checks a request body, keeping the bytes to forward (see [`Sent`]).
    pub fn parse_sent(bytes: Bytes) -> Result<Self, ProxyError> {
        let (body, sent) = parse_kept(bytes)?;
        let mut request = Self::from_map(body)?;
        request.sent = sent;
        Ok(request)
    }

    /// Checks a request body already parsed into a JSON object.
    pub fn from_map(body: Map<String, Value>) -> Result<Self, ProxyError> {
        let model = match body.field("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) => {
                return Err(invalid(
                    "`model` must not be empty.",
                    "model",
                    "invalid_value",
                ))
            }
            Some(_) => {
                return Err(invalid(
                    "`model` must be a string.",
                    "model",
                    "invalid_type",
                ))
            }
            None => {
                return Err(invalid(
                    "Missing required parameter: 'model'.",
                    "model",
                    "missing_required_parameter",
                ))
            }
        };
        match body.field("messages") {
            Some(Value::Array(messages)) if messages.is_empty() => {
                return Err(invalid(
                    "`messages` must contain at least one message.",
                    "messages",
                    "invalid_value",
                ))
            }
            Some(Value::Array(messages)) if messages.len() > budget::MAX_MESSAGES => {
                return Err(invalid(
                    format!(
                        "`messages` has {} messages; the proxy accepts at most {}.",
                        messages.len(),
                        budget::MAX_MESSAGES
                    ),
                    "messages",
                    "array_above_max_length",
                ))
            }
            Some(Value::Array(messages)) => {
                for (i, message) in messages.iter().enumerate() {
                    if !message.field("role").is_some_and(Value::is_string) {
                        return Err(invalid(
                            format!("messages[{i}] must be an object with a string `role`."),
                            &format!("messages[{i}].role"),
                            "invalid_value",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "`messages` must be an array.",
                    "messages",
                    "invalid_type",
                ))
            }
            None => {
                return Err(invalid(
                    "Missing required parameter: 'messages'.",
                    "messages",
                    "missing_required_parameter",
                ))
            }
        }
        let stream = match body.field("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    "`stream` must be a boolean.",
                    "stream",
                    "invalid_type",
                ))
            }
        };
        let include_usage = match body.field("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => o
                .field("include_usage")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            Some(_) => {
                return Err(invalid(
                    "`stream_options` must be an object.",
                    "stream_options",
                    "invalid_type",
                ))
            }
        };
        let session = match (body.field("user"), body.field("metadata")) {
            (Some(Value::String(user)), _) if !user.is_empty() => Some(user.clone()),
            (_, Some(Value::Object(metadata))) => match metadata.field("user_id") {
                Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                _ => None,
            },
            _ => None,
        };
        Ok(Self {
            session,
            model,
            stream,
            include_usage,
            front: Front::OpenAi,
            operation: Operation::Complete,
            star: None,
            thinking_budget: None,
            meter: Meter::default(),
            usage_wanted: false,
            body,
            sent: None,
        })
    }

    /// The Anthropic request behind this one, when it came in through the Messages front door.
    pub fn anthropic(&self) -> Option<&AnthropicInbound> {
        match &self.front {
            Front::Anthropic(inbound) => Some(inbound),
            Front::OpenAi => None,
        }
    }

    /// The model `target` is asked for: its `model`, with `{*}` replaced by what the route
    /// pattern matched.
    pub fn upstream_model<'t>(&self, target: &'t Target) -> Cow<'t, str> {
        upstream_model(target, self.star.as_deref())
    }

    /// The client's bytes, where they are what goes upstream with only the model replaced.
    pub fn sent(&self) -> Option<&Sent> {
        self.sent.as_ref()
    }

    /// The request as parsed JSON, for providers that translate it.
    pub fn body(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The larger of `max_completion_tokens` and `max_tokens` where the client set them as
    /// whole numbers; a value of another type is left to the upstream to refuse.
    pub fn max_tokens_asked(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens"]
            .iter()
            .filter_map(|name| self.body.field(name).and_then(Value::as_u64))
            .max()
    }

    /// The request with `model` replaced and every other field as sent: the client's own bytes
    /// where they were kept, else re-serialised.
    pub fn to_json_with_model(&self, model: &str) -> Vec<u8> {
        if let Some(sent) = &self.sent {
            return sent.with_model(model);
        }
        let with_model = WithModel {
            body: &self.body,
            model,
        };
        // Serialising an in-memory JSON map to a Vec cannot fail.
        serde_json::to_vec(&with_model).unwrap_or_default()
    }
}

/// A request body parsed into a JSON object, within the work budgets, and its bytes where they
/// can go upstream with only the model replaced ([`Sent`]).
pub fn parse_kept(bytes: Bytes) -> Result<(Map<String, Value>, Option<Sent>), ProxyError> {
    let outline = budget::check_json(&bytes)?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| ProxyError::InvalidJson(e.to_string()))?;
    match value {
        Value::Object(body) => {
            let sent = Sent::new(bytes, outline, &body);
            Ok((body, sent))
        }
        _ => Err(ProxyError::InvalidRequest {
            message: "The request body must be a JSON object.".into(),
            param: None,
            code: "invalid_type",
        }),
    }
}

struct WithModel<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
}

impl Serialize for WithModel<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.body.len()))?;
        for (key, value) in self.body {
            if key == "model" {
                map.serialize_entry(key, self.model)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> Option<String> {
        match ChatRequest::parse(body.as_bytes()) {
            Err(ProxyError::InvalidRequest { param, .. }) => param,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    #[test]
    fn the_clients_own_bytes_go_with_only_the_model_replaced() {
        // Whitespace, number spellings and escapes as written; the new model escaped.
        let body = "{ \"temperature\" : 1.0e0,\n  \"model\":\t\"fast\" , \"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9 \\\"model\\\":\\\"x\\\"\"}],\"n\":1 }";
        let request = ChatRequest::parse(body.as_bytes()).unwrap();
        let out = String::from_utf8(request.to_json_with_model("a\"b/c")).unwrap();
        assert_eq!(out, body.replace("\"fast\"", r#""a\"b/c""#));
    }

    #[test]
    fn bytes_the_parse_reads_otherwise_are_re_serialised() {
        let compact = r#"{"model":"up","messages":[{"role":"user","content":"hi"}]}"#;
        for body in [
            // A repeated key: serde_json keeps the last, an upstream might read the first.
            r#"{"model":"fast","messages":[{"role":"user","content":"x"}],"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"a","model":"fast","messages":[{"role":"user","content":"hi"}]}"#,
            // `model` spelled with an escape, alone or beside the plain one.
            r#"{"mod\u0065l":"fast","messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"a","mod\u0065l":"fast","messages":[{"role":"user","content":"hi"}]}"#,
        ] {
            let request = ChatRequest::parse(body.as_bytes()).unwrap();
            let out = String::from_utf8(request.to_json_with_model("up")).unwrap();
            assert_eq!(out, compact, "{body}");
        }
        // `model` nested deeper is not the request's.
        let nested = r#"{"metadata":{"model":"other"},"model":"fast","messages":[{"role":"user","content":"hi"}]}"#;
        let out = ChatRequest::parse(nested.as_bytes())
            .unwrap()
            .to_json_with_model("up");
        assert_eq!(
            out,
            nested
                .replace(r#""model":"fast""#, r#""model":"up""#)
                .as_bytes()
        );
    }

    #[test]
    fn replaces_only_the_model_and_keeps_field_order() {
        let body = r#"{"temperature":0.7,"model":"fast","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}],"x_custom":[1,null,true],"stream":true,"stream_options":{"include_usage":true}}"#;
        let request = ChatRequest::parse(body.as_bytes()).unwrap();
        assert!(request.stream && request.include_usage);
        assert_eq!(request.model, "fast");
        let out = String::from_utf8(request.to_json_with_model("nvidia/llama")).unwrap();
        assert_eq!(
            out,
            body.replace(r#""model":"fast""#, r#""model":"nvidia/llama""#)
        );
    }

    #[test]
    fn rejects_what_is_not_a_chat_request() {
        assert!(matches!(
            ChatRequest::parse(b"{nope"),
            Err(ProxyError::InvalidJson(_))
        ));
        assert!(matches!(
            ChatRequest::parse(b"[1]"),
            Err(ProxyError::InvalidRequest {
                code: "invalid_type",
                ..
            })
        ));
        assert_eq!(
            param_of(r#"{"messages":[{"role":"user","content":"x"}]}"#).as_deref(),
            Some("model")
        );
        assert_eq!(param_of(r#"{"model":"m"}"#).as_deref(), Some("messages"));
        assert_eq!(
            param_of(r#"{"model":"m","messages":[]}"#).as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"content":"x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
        assert_eq!(
            param_of(r#"{"model":7,"messages":[{"role":"user"}]}"#).as_deref(),
            Some("model")
        );
        assert_eq!(
            param_of(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#).as_deref(),
            Some("stream")
        );
    }

    #[test]
    fn budgets_are_checked_before_parsing() {
        let deep = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}],"x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(matches!(
            ChatRequest::parse(deep.as_bytes()),
            Err(ProxyError::InvalidRequest {
                code: "request_too_complex",
                ..
            })
        ));
        let many = format!(
            r#"{{"model":"m","messages":[{}]}}"#,
            vec![r#"{"role":"user","content":"x"}"#; budget::MAX_MESSAGES + 1].join(",")
        );
        assert_eq!(param_of(&many).as_deref(), Some("messages"));
    }

    #[test]
    fn stream_defaults_off() {
        let r = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":null}"#,
        )
        .unwrap();
        assert!(!r.stream && !r.include_usage);
    }
}
