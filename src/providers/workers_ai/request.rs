//! OpenAI Chat Completions request → Workers AI model input (workers-ai.md §2).
//!
//! Only fields the model's schema knows are sent: the binding validates strictly and rejects
//! unknown or null fields ("The binding has strict schema validation that differs from the
//! OpenAI API", gateway-core). Both families get:
//! * `messages` with `content` always a string or a parts array (`null`/missing → `""`),
//!   `developer` → `system`, assistant `tool_calls` with string `arguments`, tool results as
//!   `{role: "tool", content, tool_call_id}`;
//! * `tools` as OpenAI-style `{type: "function", function: {name, description, parameters}}`
//!   with the whole `parameters` schema (nested objects included) and `strict` dropped;
//! * an explicit `max_tokens` (client's `max_completion_tokens` ?? `max_tokens`, else the
//!   target's, else [`DEFAULT_MAX_TOKENS`]): the binding's default of 256 truncates;
//! * `stream: true` when the client streams.
//!
//! Legacy models additionally get their ranges (temperature 0–5, penalties 0–2, seed ≥ 1) and
//! lose what they do not have (`tool_choice`, `stop`, `n`, `user`...). Chat-family models keep
//! OpenAI's own options. `stream_options` is never sent: the usage chunk is built here from the
//! final cumulative usage event, whatever the model streams.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{family, Family, DEFAULT_MAX_TOKENS};
use crate::core::error::ProxyError;
use crate::core::fields::Field;
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::providers::openai_input::{self as input, invalid};
use crate::providers::tool_ids::{self, Wire};

/// How error messages name the provider.
const PROVIDER: &str = "Workers AI";

/// OpenAI options passed through unchanged to chat-family models.
const CHAT_OPTIONS: [&str; 12] = [
    "temperature",
    "top_p",
    "seed",
    "stop",
    "frequency_penalty",
    "presence_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "chat_template_kwargs",
    "user",
];

/// The completion budget the input carries (the request was checked by [`inputs`]).
pub fn max_tokens(target: &Target, body: &Map<String, Value>) -> u32 {
    input::max_completion_tokens(body)
        .ok()
        .flatten()
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .or(target.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .min(target.max_output_tokens.unwrap_or(u32::MAX))
}

/// The model input for `request` on `target`.
pub fn inputs(target: &Target, request: &ChatRequest) -> Result<Value, ProxyError> {
    let body = request.body();
    input::check_outputs(body, PROVIDER)?;
    let fam = family(&request.upstream_model(target));
    if body
        .field("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(invalid(
            "Workers AI returns one choice per request; `n` must be 1.",
            "n",
        ));
    }
    let mut out = Map::new();
    let messages = body
        .field("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut converted = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        converted.push(message(m, i, fam)?);
    }
    out.insert("messages".into(), Value::Array(converted));
    let tools = input::function_tools(body, PROVIDER)?;
    if !tools.is_empty() {
        out.insert("tools".into(), tools.iter().map(tool).collect());
    }
    // Checked here so a bad budget is a 400, not silently the default.
    input::max_completion_tokens(body)?;
    out.insert("max_tokens".into(), json!(max_tokens(target, body)));
    match fam {
        Family::Chat => {
            for key in CHAT_OPTIONS {
                if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
                    out.insert(key.into(), v.clone());
                }
            }
        }
        Family::Legacy => {
            let number = |k: &str| body.get(k).and_then(Value::as_f64);
            if let Some(t) = number("temperature") {
                out.insert("temperature".into(), json!(t.clamp(0.0, 5.0)));
            }
            if let Some(p) = number("top_p") {
                out.insert("top_p".into(), json!(p.clamp(0.0, 2.0)));
            }
            if let Some(k) = body.field("top_k").and_then(Value::as_u64) {
                out.insert("top_k".into(), json!(k.clamp(1, 50)));
            }
            if let Some(s) = body.field("seed").and_then(Value::as_u64) {
                out.insert("seed".into(), json!(s.clamp(1, 9_999_999_999)));
            }
            for k in [
                "frequency_penalty",
                "presence_penalty",
                "repetition_penalty",
            ] {
                if let Some(p) = number(k) {
                    out.insert(k.into(), json!(p.clamp(0.0, 2.0)));
                }
            }
            if let Some(rf) = body
                .field("response_format")
                .and_then(legacy_response_format)
            {
                out.insert("response_format".into(), rf);
            }
        }
    }
    if request.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// OpenAI's `response_format` as legacy models take it: `json_object` as is; `json_schema`
/// with the schema itself under `json_schema` (Workers AI JSON mode: `{type: "json_schema",
/// json_schema: {type: "object", ...}}`), where OpenAI wraps it as `{name, schema, strict}`.
/// `text` is the default and not every model's schema lists it, so it is left out.
fn legacy_response_format(rf: &Value) -> Option<Value> {
    match rf.field("type").and_then(Value::as_str)? {
        "json_object" => Some(json!({"type": "json_object"})),
        "json_schema" => {
            let wrapped = rf.field("json_schema")?;
            let schema = wrapped
                .field("schema")
                .filter(|s| s.is_object())
                .unwrap_or(wrapped);
            Some(json!({"type": "json_schema", "json_schema": schema}))
        }
        _ => None,
    }
}

/// A tool-call id as the model first wrote it: the suffix added on the way out
/// ([`super::output::outgoing_id`]) is removed, so the model sees its own ids again (and
/// another provider's id loses what only that provider reads, [`tool_ids::portable`]).
fn upstream_id(id: &str) -> Cow<'_, str> {
    tool_ids::portable(id, Wire::WorkersAi)
}

/// Text of a content value: a string as is, text parts concatenated, `null` as `""`.
fn text_of(content: Option<&Value>) -> Option<String> {
    match content {
        None | Some(Value::Null) => Some(String::new()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (p.field("type").and_then(Value::as_str), p.field("text")) {
                    (Some("text"), Some(Value::String(t))) => text.push_str(t),
                    (Some("text"), _) => {}
                    _ => return None,
                }
            }
            Some(text)
        }
        Some(other) => Some(other.to_string()),
    }
}

fn message(m: &Value, i: usize, fam: Family) -> Result<Value, ProxyError> {
    let role = m.field("role").and_then(Value::as_str).unwrap_or("user");
    let role = if role == "developer" { "system" } else { role };
    let content = m.field("content");
    // Text-only content becomes one string, which every model takes; parts with images stay
    // a parts array (vision models and the chat family read OpenAI `image_url` parts).
    let content = match text_of(content) {
        Some(text) => Value::String(text),
        None if role == "user" => content.cloned().unwrap_or_default(),
        None => {
            return Err(invalid(
                format!(
                    "messages[{i}]: only `user` messages may carry non-text parts on Workers AI."
                ),
                format!("messages[{i}].content"),
            ))
        }
    };
    let mut out = Map::new();
    out.insert("role".into(), Value::String(role.to_owned()));
    out.insert("content".into(), content);
    if let Some(name) = m.field("name").and_then(Value::as_str) {
        out.insert("name".into(), Value::String(name.to_owned()));
    }
    if role == "tool" {
        if let Some(id) = m.field("tool_call_id").and_then(Value::as_str) {
            out.insert(
                "tool_call_id".into(),
                Value::String(upstream_id(id).into_owned()),
            );
        }
    }
    if role == "assistant" {
        let calls = input::tool_calls(m, i, PROVIDER)?;
        if !calls.is_empty() {
            out.insert("tool_calls".into(), calls.iter().map(tool_call).collect());
        }
        if fam == Family::Chat {
            if let Some(r) = m.field("reasoning_content").and_then(Value::as_str) {
                out.insert("reasoning_content".into(), Value::String(r.to_owned()));
            }
        }
    }
    Ok(Value::Object(out))
}

/// An assistant's earlier tool call, with `arguments` as a JSON string (`""` → `"{}"`).
fn tool_call(call: &input::ToolCall<'_>) -> Value {
    let mut out = json!({
        "type": "function",
        "function": {"name": call.name, "arguments": call.raw_arguments},
    });
    if !call.id.is_empty() {
        out["id"] = Value::String(upstream_id(call.id).into_owned());
    }
    out
}

/// An OpenAI tool as Workers AI takes it: same shape, `strict` dropped, `description` always
/// present (legacy schemas list it as required), `parameters` passed whole.
fn tool(t: &input::FunctionTool<'_>) -> Value {
    let mut f = json!({"name": t.name, "description": t.description.unwrap_or_default()});
    if let Some(p) = t.parameters {
        f["parameters"] = p.clone();
    }
    json!({"type": "function", "function": f})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;

    const LEGACY: Target = Target {
        provider: "cloudflare-ai",
        model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        base_url: "https://api.cloudflare.com/client/v4",
        vias: &[Via::Binding("AI")],
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: crate::core::route::TargetPolicy::DEFAULT,
    };

    const CHAT: Target = Target {
        model: "@cf/moonshotai/kimi-k2.6",
        ..LEGACY
    };

    fn run(target: &Target, body: Value) -> Value {
        let req = ChatRequest::parse(body.to_string().as_bytes()).unwrap();
        inputs(target, &req).unwrap()
    }

    #[test]
    fn legacy_input_has_string_contents_explicit_max_tokens_and_no_openai_only_fields() {
        let out = run(
            &LEGACY,
            json!({"model": "wai", "test_id": "t-1", "user": "u", "stop": ["x"],
            "tool_choice": "auto", "temperature": 1.5, "frequency_penalty": -1.0,
            "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":20}"}
            ]}),
        );
        assert_eq!(
            out,
            json!({
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hello"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
                    {"role": "tool", "content": "{\"temp\":20}", "tool_call_id": "call_1"}
                ],
                "max_tokens": 4096,
                "temperature": 1.5,
                "frequency_penalty": 0.0,
                "stream": true
            })
        );
    }

    #[test]
    fn max_tokens_prefers_the_client_then_the_target() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 77});
        assert_eq!(run(&LEGACY, body)["max_tokens"], 77);
        let target = Target {
            max_tokens: Some(1000),
            ..LEGACY
        };
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(run(&target, body)["max_tokens"], 1000);
    }

    #[test]
    fn nested_tool_schemas_pass_whole_and_strict_is_dropped() {
        let params = json!({"type": "object", "properties": {
            "location": {"type": "object", "description": "where",
                         "properties": {"city": {"type": "string", "description": "city"},
                                        "coords": {"type": "array", "items": {"type": "number"}}},
                         "required": ["city"]}},
            "required": ["location"]});
        let out = run(
            &LEGACY,
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f", "strict": true, "parameters": params}}]}),
        );
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "f", "description": "", "parameters": params}}])
        );
    }

    #[test]
    fn chat_family_keeps_openai_options_and_image_parts() {
        let image = json!([{"type": "text", "text": "what is this"},
                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]);
        let out = run(
            &CHAT,
            json!({"model": "m", "tool_choice": "required", "stop": "END", "reasoning_effort": "low",
                   "temperature": null, "messages": [{"role": "user", "content": image}]}),
        );
        assert_eq!(
            out,
            json!({"messages": [{"role": "user", "content": image}], "max_tokens": 4096,
                   "stop": "END", "tool_choice": "required", "reasoning_effort": "low"})
        );
    }

    #[test]
    fn legacy_json_schema_is_the_schema_itself_and_ids_lose_their_suffix() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let out = run(
            &LEGACY,
            json!({"model": "m", "response_format": {"type": "json_schema",
                   "json_schema": {"name": "x", "strict": true, "schema": schema}},
                   "messages": [
                       {"role": "user", "content": "x"},
                       {"role": "assistant", "tool_calls": [{"id": "call123::cf-wai-tool-call::00ff", "type": "function",
                        "function": {"name": "f", "arguments": "{}"}}]},
                       {"role": "tool", "tool_call_id": "call123::cf-wai-tool-call::00ff", "content": "ok"}]}),
        );
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": schema})
        );
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], "call123");
        assert_eq!(out["messages"][2]["tool_call_id"], "call123");
        let out = run(
            &LEGACY,
            json!({"model": "m", "response_format": {"type": "text"}, "messages": [{"role": "user", "content": "x"}]}),
        );
        assert!(out.get("response_format").is_none());
    }

    #[test]
    fn n_above_one_is_refused() {
        let req = ChatRequest::parse(
            br#"{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            inputs(&LEGACY, &req),
            Err(ProxyError::InvalidRequest { .. })
        ));
    }
}
