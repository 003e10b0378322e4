//! Workers AI output (any of the shapes of workers-ai.md §3) → OpenAI `chat.completion`.
//!
//! The output is read into an [`Answer`] first; the JSON translator writes it as one completion
//! and the stream translator, when a model answered a streaming request whole, as chunks.

use bytes::Bytes;
use serde_json::Value;

use super::in_band;
use crate::core::completion::{
    self, Completion, CompletionChoice, FunctionCall, PromptTokensDetails, ResponseMessage,
    ToolCall, Usage as OpenAiUsage,
};
use crate::core::stream::{InBandError, WholeBody};

/// One tool call, with `arguments` as a JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The upstream's id, or one made up here when it gave none.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments, JSON text.
    pub arguments: String,
}

/// Token counts; Workers AI's last usage is cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: u64,
    /// Generated tokens.
    pub completion: u64,
    /// Cached prompt tokens.
    pub cached: u64,
}

impl Usage {
    /// `usage` as Workers AI writes it (either shape), if it is an object.
    pub fn read(value: Option<&Value>) -> Option<Self> {
        let u = value.filter(|v| v.is_object())?;
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        Some(Self {
            prompt: n(u.get("prompt_tokens")),
            completion: n(u.get("completion_tokens")),
            cached: n(u.pointer("/prompt_tokens_details/cached_tokens")),
        })
    }

    /// OpenAI's usage object.
    pub fn to_openai(self) -> OpenAiUsage {
        OpenAiUsage {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            total_tokens: self.prompt + self.completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: self.cached,
            },
            completion_tokens_details: None,
        }
    }
}

/// A whole answer, whichever shape it came in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The upstream's response id (OpenAI shape only).
    pub id: Option<String>,
    /// Text.
    pub content: Option<String>,
    /// Reasoning text (`reasoning_content` / `reasoning`).
    pub reasoning: Option<String>,
    /// Tool calls.
    pub calls: Vec<Call>,
    /// The upstream's finish reason, if it gave one.
    pub finish: Option<String>,
    /// Usage, if given.
    pub usage: Option<Usage>,
}

/// Separates a model's own tool-call id from the suffix that makes it unique (the marker
/// Cloudflare's workers-ai-provider uses).
pub const ID_MARKER: &str = "::cf-wai-tool-call::";

/// A model-given tool-call id as the client sees it. Workers AI models repeat ids across turns
/// (`call123` every time), which breaks clients that key tool results by id; a per-response
/// suffix makes them unique, and the request side strips it again (workers-ai-provider
/// "Fix Workers AI tool call ID collisions").
pub fn outgoing_id(id: &str, salt: u64) -> String {
    format!("{id}{ID_MARKER}{salt:016x}")
}

/// A made-up tool-call id: unique within a response (`n`) and, through `salt` (the response's
/// timestamp and a hash of its bytes), across turns — Workers AI models omit ids or repeat them
/// across turns (workers-ai-provider "Fix Workers AI tool call ID collisions").
pub fn call_id(salt: u64, n: usize) -> String {
    format!("call_{salt:016x}{n}")
}

/// FNV-1a, to salt made-up ids with the bytes they came from.
pub fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A value that should be text: strings as they are, objects and numbers as JSON (structured
/// output mode answers `response` as an object; workers-ai-provider's `processText`).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Tool-call `arguments`, object or string, as JSON text (`""`/null → `{}`).
pub fn arguments(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => "{}".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// Tool calls in any of the shapes: OpenAI/Llama-4 `{id, type, function: {name, arguments}}`
/// or legacy flat `{name, arguments}`. Entries without a name are skipped.
fn calls(value: Option<&Value>, salt: u64) -> Vec<Call> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let f = item.get("function").unwrap_or(item);
        let Some(name) = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| call_id(salt, out.len()), |id| outgoing_id(id, salt));
        out.push(Call {
            id,
            name: name.to_owned(),
            arguments: arguments(f.get("arguments")),
        });
    }
    out
}

/// Reads an output (binding) or a REST envelope around one.
pub fn read(value: &Value, salt: u64) -> Result<Answer, InBandError> {
    if let Some(error) = in_band(value) {
        return Err(error);
    }
    // REST: `{"result": <output>, "success": true, "errors": [], "messages": []}`.
    let output = match value.get("result") {
        Some(result) if value.get("success").is_some() => result,
        _ => value,
    };
    match output {
        Value::String(s) => Ok(Answer {
            content: Some(s.clone()),
            ..Answer::default()
        }),
        Value::Object(o) if o.get("choices").is_some_and(Value::is_array) => {
            let choice = o
                .get("choices")
                .and_then(|c| c.get(0))
                .cloned()
                .unwrap_or_default();
            let message = choice.get("message").cloned().unwrap_or_default();
            Ok(Answer {
                id: o.get("id").and_then(Value::as_str).map(str::to_owned),
                content: message.get("content").and_then(text),
                reasoning: message
                    .get("reasoning_content")
                    .or_else(|| message.get("reasoning"))
                    .and_then(text),
                calls: calls(message.get("tool_calls"), salt),
                finish: choice
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                usage: Usage::read(o.get("usage")),
            })
        }
        Value::Object(o) if o.contains_key("response") || o.contains_key("tool_calls") => {
            Ok(Answer {
                id: None,
                content: o.get("response").and_then(text),
                reasoning: None,
                calls: calls(o.get("tool_calls"), salt),
                finish: o
                    .get("finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                usage: Usage::read(o.get("usage")),
            })
        }
        Value::Object(o) if o.contains_key("request_id") => Err(InBandError::truncated(
            "Workers AI queued the request (async batch) instead of answering it",
        )),
        _ => Err(InBandError::truncated(
            "Workers AI answered with an output of no known shape",
        )),
    }
}

/// OpenAI's finish reason. Workers AI's legacy outputs have none: tool calls mean
/// `tool_calls`, a completion that used the whole budget means `length`, otherwise `stop`.
pub fn finish_reason(
    given: Option<&str>,
    tool_calls: bool,
    usage: Option<Usage>,
    max_tokens: u32,
) -> &'static str {
    match given {
        Some("length" | "model_length" | "max_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ if tool_calls => "tool_calls",
        Some("tool_calls" | "function_call") => "tool_calls",
        Some(_) => "stop",
        None if usage.is_some_and(|u| u.completion >= u64::from(max_tokens)) => "length",
        None => "stop",
    }
}

/// The `chat.completion` for `answer`.
pub fn completion(
    answer: &Answer,
    id: &str,
    model: &str,
    created: u64,
    max_tokens: u32,
) -> Vec<u8> {
    let tool_calls: Vec<ToolCall> = answer
        .calls
        .iter()
        .map(|c| ToolCall {
            id: c.id.clone(),
            kind: "function",
            function: FunctionCall {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            },
        })
        .collect();
    let finish = finish_reason(
        answer.finish.as_deref(),
        !tool_calls.is_empty(),
        answer.usage,
        max_tokens,
    );
    let content = match &answer.content {
        // OpenAI's own answers have `content: null` beside tool calls when there is no text.
        Some(c) if c.is_empty() && !tool_calls.is_empty() => None,
        Some(c) => Some(c.clone()),
        None if tool_calls.is_empty() => Some(String::new()),
        None => None,
    };
    let reasoning = answer.reasoning.clone().filter(|r| !r.is_empty());
    let body = Completion::new(
        id,
        created,
        model,
        vec![CompletionChoice::new(
            0,
            ResponseMessage::assistant(content, tool_calls, reasoning),
            finish,
        )],
        answer.usage.unwrap_or_default().to_openai(),
    );
    completion::to_json(&body)
}

/// The response id: the upstream's, or one made from the salt.
pub fn response_id(answer_id: Option<&str>, salt: u64) -> String {
    answer_id
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("chatcmpl-wai{salt:016x}"), str::to_owned)
}

/// Parses a buffered whole answer (JSON output, or a REST envelope around one).
pub fn parse_whole(body: &[u8], seed: u64) -> Result<(Answer, u64), InBandError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        InBandError::truncated(format!("the Workers AI response is not complete JSON: {e}"))
    })?;
    let salt = fnv(seed, body);
    Ok((read(&value, salt)?, salt))
}

/// The non-streaming translator for `model`, stamping `created` (Unix seconds); made-up and
/// rewritten ids are salted with `seed`.
pub fn json_translator(
    model: &'static str,
    created: u64,
    max_tokens: u32,
    seed: u64,
) -> WholeBody<impl FnMut(&[u8]) -> Result<Bytes, InBandError>> {
    WholeBody::new(move |body: &[u8]| {
        let (answer, salt) = parse_whole(body, seed)?;
        let id = response_id(answer.id.as_deref(), salt);
        Ok(Bytes::from(completion(
            &answer, &id, model, created, max_tokens,
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::Translate;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/workers_ai/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn translate(body: &[u8]) -> Result<Value, InBandError> {
        let mut t = json_translator("@cf/meta/llama-3.3-70b-instruct-fp8-fast", 1, 4096, 1);
        for piece in body.chunks(7) {
            assert!(t.chunk(Bytes::copy_from_slice(piece))?.is_empty());
        }
        Ok(serde_json::from_slice(&t.end()?).unwrap())
    }

    #[test]
    fn legacy_output_with_flat_tool_calls() {
        let out = translate(&fixture("output_legacy.json")).unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Hello!");
        let call = &message["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert!(call["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["model"], "@cf/meta/llama-3.3-70b-instruct-fp8-fast");
    }

    #[test]
    fn llama4_output_with_object_arguments_keeps_the_id() {
        let out = translate(&fixture("output_llama4.json")).unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        let id = message["tool_calls"][0]["id"].as_str().unwrap().to_owned();
        assert!(
            id.starts_with("chatcmpl-tool-abc::cf-wai-tool-call::"),
            "{id}"
        );
        assert_eq!(
            message["tool_calls"],
            json!([{"id": id, "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}])
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn openai_shaped_output_keeps_reasoning_apart() {
        let out = translate(&fixture("output_openai.json")).unwrap();
        assert_eq!(out["id"], "chatcmpl-kimi-1");
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Hi");
        assert_eq!(message["reasoning_content"], "The user greets me.");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert_eq!(out["usage"]["total_tokens"], 11);
    }

    #[test]
    fn rest_envelope_string_and_object_responses() {
        let out = translate(br#"{"result":{"response":"Hi there","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}},"success":true,"errors":[],"messages":[]}"#).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "Hi there");
        let out = translate(br#""just a string""#).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "just a string");
        let out = translate(br#"{"response":{"city":"Paris"}}"#).unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
    }

    #[test]
    fn a_full_budget_without_finish_reason_is_length() {
        let mut t = json_translator("m", 1, 3, 1);
        t.chunk(Bytes::from_static(
            br#"{"response":"abc","usage":{"prompt_tokens":1,"completion_tokens":3}}"#,
        ))
        .unwrap();
        let out: Value = serde_json::from_slice(&t.end().unwrap()).unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn errors_and_unknown_shapes_are_in_band_failures() {
        let e = translate(br#"{"success":false,"errors":[{"code":3040,"message":"Capacity temporarily exceeded"}],"messages":[],"result":null}"#).unwrap_err();
        assert_eq!(e.status, 429);
        assert!(translate(br#"{"request_id":"abc"}"#).is_err());
        assert!(translate(br#"[1,2]"#).is_err());
        assert!(translate(br#"{"response":"cut"#).is_err());
    }
}
