//! Reading the parts of an OpenAI chat request that every translating provider needs: text
//! parts, tool calls, function tools, data URLs, sampling numbers and stop sequences. One
//! reader per field, so a malformed field gets the same 400 (message and `param`) whichever
//! provider the route reaches.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::core::error::ProxyError;
use crate::core::fields::Field;

/// A JSON object, as the request body and its messages are held.
pub type Obj = Map<String, Value>;

/// Where a value sits in a request, as an error's `param` names it
/// (`messages[2].content[0].text`). Spelled out only when an error is made: a conversation is
/// walked message by message and part by part, and almost never holds one.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// `messages[i].FIELD`.
    Message(usize, &'static str),
    /// `PARENT[j]`.
    Item(&'a Param<'a>, usize),
    /// `PARENT.PATH`.
    Field(&'a Param<'a>, &'static str),
}

impl Param<'_> {
    /// Item `j` of this array.
    pub fn item(&self, j: usize) -> Param<'_> {
        Param::Item(self, j)
    }

    /// `path` (one field or a dotted path) inside this object.
    pub fn field(&self, path: &'static str) -> Param<'_> {
        Param::Field(self, path)
    }
}

impl fmt::Display for Param<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Message(i, field) => write!(f, "messages[{i}].{field}"),
            Param::Item(parent, j) => write!(f, "{parent}[{j}]"),
            Param::Field(parent, path) => write!(f, "{parent}.{path}"),
        }
    }
}

impl From<Param<'_>> for String {
    fn from(param: Param<'_>) -> Self {
        param.to_string()
    }
}

/// A 400 for a value the client got wrong.
pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "invalid_value",
    }
}

/// A 400 for a valid OpenAI value the provider has no equivalent for.
pub fn unsupported(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "unsupported_value",
    }
}

/// A 400 for a parameter a target's provider cannot honour. Failover tries the route's other
/// targets, so the client sees this only when none of them can.
pub fn unsupported_parameter(param: &str, provider: &str, why: &str) -> ProxyError {
    ProxyError::InvalidRequest {
        message: format!(
            "Unsupported parameter: '{param}' is not supported with {provider} models on this proxy: {why}"
        ),
        param: Some(param.to_owned()),
        code: "unsupported_parameter",
    }
}

/// Rejects outputs a translating provider cannot give back: audio (`modalities` with `audio`,
/// or `audio`) and log probabilities (`logprobs: true`, `top_logprobs`). Dropping them would
/// leave the client reading `null` where it asked for data.
pub fn check_outputs(body: &Obj, provider: &str) -> Result<(), ProxyError> {
    let set = |name: &str| body.field(name).filter(|v| !v.is_null());
    let audio_modality = set("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|v| v.as_str() == Some("audio")));
    if audio_modality {
        return Err(unsupported_parameter(
            "modalities",
            provider,
            "the proxy returns text only from them; use an OpenAI target for audio output.",
        ));
    }
    if set("audio").is_some() {
        return Err(unsupported_parameter(
            "audio",
            provider,
            "the proxy returns text only from them; use an OpenAI target for audio output.",
        ));
    }
    let log_probabilities =
        "the proxy cannot return log probabilities from them; use an OpenAI target.";
    if set("logprobs").is_some_and(|v| v != &Value::Bool(false)) {
        return Err(unsupported_parameter(
            "logprobs",
            provider,
            log_probabilities,
        ));
    }
    if set("top_logprobs").is_some_and(|v| v.as_u64() != Some(0)) {
        return Err(unsupported_parameter(
            "top_logprobs",
            provider,
            log_probabilities,
        ));
    }
    Ok(())
}

/// A number field, if set.
pub fn number(body: &Obj, name: &str) -> Result<Option<f64>, ProxyError> {
    match body.field(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(invalid(format!("`{name}` must be a number."), name)),
    }
}

/// A positive integer field, if set.
pub fn positive(body: &Obj, name: &str) -> Result<Option<u64>, ProxyError> {
    match body.field(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid(
                format!("`{name}` must be a positive integer."),
                name,
            )),
        },
    }
}

/// The client's completion budget: `max_completion_tokens`, else the older `max_tokens`.
pub fn max_completion_tokens(body: &Obj) -> Result<Option<u64>, ProxyError> {
    match positive(body, "max_completion_tokens")? {
        Some(n) => Ok(Some(n)),
        None => positive(body, "max_tokens"),
    }
}

/// `stop` as a list, whether the client sent a string or a list of strings.
pub fn stop(body: &Obj) -> Result<Vec<&str>, ProxyError> {
    let bad = || invalid("`stop` must be a string or a list of strings.", "stop");
    match body.field("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items.iter().map(|v| v.as_str().ok_or_else(bad)).collect(),
        Some(_) => Err(bad()),
    }
}

/// The text of a text part (`{"type":"text","text":...}`) at `at`.
pub fn text_of<'a>(part: &'a Value, at: Param<'_>) -> Result<&'a str, ProxyError> {
    part.field("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("A text part needs a string `text`.", at.field("text")))
}

/// The texts of a system, developer, assistant or tool message's `content` (a string or text
/// parts), in order, empty ones included; refusal parts are skipped.
pub fn text_parts<'a>(
    content: Option<&'a Value>,
    param: Param<'_>,
) -> Result<Vec<&'a str>, ProxyError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part.field("type").and_then(Value::as_str) {
                    Some("text") => out.push(text_of(part, param.item(j))?),
                    // An earlier refusal has nothing to tell the model.
                    Some("refusal") => {}
                    _ => {
                        return Err(unsupported(
                            "Only text parts are supported in this message.",
                            param.item(j).field("type"),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(_) => Err(invalid(
            "`content` must be a string or an array of parts.",
            param,
        )),
    }
}

/// One assistant tool call, its arguments parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall<'a> {
    /// The call id (empty when the client sent none).
    pub id: &'a str,
    /// The function's name.
    pub name: &'a str,
    /// The arguments: always a JSON object (`""` reads as `{}`).
    pub arguments: Value,
    /// The arguments as the client wrote them (`""` as `{}`), for providers that take a string.
    pub raw_arguments: &'a str,
}

/// The `tool_calls` of assistant message `i`; `provider` names who needs them as objects.
pub fn tool_calls<'a>(
    message: &'a Value,
    i: usize,
    provider: &str,
) -> Result<Vec<ToolCall<'a>>, ProxyError> {
    let calls = match message.field("tool_calls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(invalid(
                "`tool_calls` must be an array.",
                Param::Message(i, "tool_calls"),
            ))
        }
    };
    calls
        .iter()
        .enumerate()
        .map(|(j, call)| {
            let calls = Param::Message(i, "tool_calls");
            let at = calls.item(j);
            let function = call.field("function");
            let name = function
                .and_then(|f| f.field("name"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    invalid(
                        "A tool call needs `function.name`.",
                        at.field("function.name"),
                    )
                })?;
            let raw = function
                .and_then(|f| f.field("arguments"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let arguments: Value = if raw.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(raw).map_err(|e| {
                    invalid(
                        format!("`function.arguments` of this tool call is not valid JSON ({e}); {provider} needs a JSON object."),
                        at.field("function.arguments"),
                    )
                })?
            };
            if !arguments.is_object() {
                return Err(invalid(
                    "`function.arguments` must encode a JSON object.",
                    at.field("function.arguments"),
                ));
            }
            Ok(ToolCall {
                id: call.field("id").and_then(Value::as_str).unwrap_or(""),
                name,
                arguments,
                raw_arguments: if raw.trim().is_empty() { "{}" } else { raw },
            })
        })
        .collect()
}

/// One function tool the client offers.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionTool<'a> {
    /// The function's name (non-empty).
    pub name: &'a str,
    /// What it does, if said.
    pub description: Option<&'a str>,
    /// Its JSON Schema, when it is an object.
    pub parameters: Option<&'a Value>,
}

/// The request's `tools`, all of type `function`; `provider` names who supports no other type.
pub fn function_tools<'a>(
    body: &'a Obj,
    provider: &str,
) -> Result<Vec<FunctionTool<'a>>, ProxyError> {
    let Some(list) = body.field("tools").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(list) = list.as_array() else {
        return Err(invalid("`tools` must be an array.", "tools"));
    };
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let kind = tool
                .field("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                return Err(unsupported(
                    format!(
                        "Tool type `{kind}` is not supported by {provider} models; use function tools."
                    ),
                    format!("tools[{i}].type"),
                ));
            }
            let function = tool.field("function").and_then(Value::as_object);
            let name = function.and_then(|f| f.field("name")).and_then(Value::as_str);
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                return Err(invalid(
                    "Every function tool needs a `name`.",
                    format!("tools[{i}].function.name"),
                ));
            };
            Ok(FunctionTool {
                name,
                description: function
                    .and_then(|f| f.field("description"))
                    .and_then(Value::as_str),
                parameters: function
                    .and_then(|f| f.field("parameters"))
                    .filter(|p| p.is_object()),
            })
        })
        .collect()
}

/// `tool_choice`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// The model decides (`"auto"`, or `allowed_tools` in auto mode).
    Auto,
    /// No tool may be called.
    None,
    /// Some tool must be called, from `allowed` when that is not empty (`"required"`, or
    /// `allowed_tools` in required mode).
    Required {
        /// The allowed function names; empty means any.
        allowed: Vec<&'a str>,
    },
    /// This function must be called.
    Named(&'a str),
}

/// The request's `tool_choice`, if set.
pub fn tool_choice(body: &Obj) -> Result<Option<ToolChoice<'_>>, ProxyError> {
    match body.field("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required { allowed: Vec::new() })),
            other => Err(invalid(
                format!("Unknown `tool_choice` value `{other}`; expected auto, none, required or a named function."),
                "tool_choice",
            )),
        },
        Some(Value::Object(o)) => {
            let kind = o.field("type").and_then(Value::as_str).unwrap_or("");
            let named = o
                .field("function")
                .and_then(|f| f.field("name"))
                .and_then(Value::as_str);
            match (kind, named) {
                ("function", Some(name)) => Ok(Some(ToolChoice::Named(name))),
                ("allowed_tools", _) => {
                    let allowed = o.field("allowed_tools");
                    if allowed.and_then(|a| a.field("mode")).and_then(Value::as_str)
                        != Some("required")
                    {
                        return Ok(Some(ToolChoice::Auto));
                    }
                    let names = allowed
                        .and_then(|a| a.field("tools"))
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|t| t.field("function")?.field("name")?.as_str())
                        .collect();
                    Ok(Some(ToolChoice::Required { allowed: names }))
                }
                _ => Err(invalid(
                    "`tool_choice` must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\":...}}.",
                    "tool_choice",
                )),
            }
        }
        Some(_) => Err(invalid("`tool_choice` has an invalid type.", "tool_choice")),
    }
}

/// A base64 data URL, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// The media type, e.g. `image/png` (never empty).
    pub media_type: &'a str,
    /// The base64 payload, without the `data:...;base64,` prefix.
    pub data: &'a str,
}

/// `data:<type>;base64,<data>`, or `None` when `url` is not a data URL at all.
pub fn data_url<'a>(url: &'a str, param: Param<'_>) -> Option<Result<DataUrl<'a>, ProxyError>> {
    let rest = url.strip_prefix("data:")?;
    let Some((header, data)) = rest.split_once(',') else {
        return Some(Err(invalid("Malformed data URL.", param)));
    };
    Some(
        match header.strip_suffix(";base64").filter(|m| !m.is_empty()) {
            Some(media_type) => Ok(DataUrl { media_type, data }),
            None => Err(invalid(
                "Data URLs must be base64 encoded with a media type (data:<type>;base64,<data>).",
                param,
            )),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Obj {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn param(e: ProxyError) -> Option<String> {
        match e {
            ProxyError::InvalidRequest { param, .. } => param,
            _ => None,
        }
    }

    fn message_of(e: &ProxyError) -> &str {
        match e {
            ProxyError::InvalidRequest { message, .. } => message,
            _ => "",
        }
    }

    #[test]
    fn budget_stop_and_numbers() {
        let body = obj(
            json!({"max_tokens": 10, "max_completion_tokens": 20, "stop": "END", "top_p": 0.5}),
        );
        assert_eq!(max_completion_tokens(&body).unwrap(), Some(20));
        assert_eq!(
            max_completion_tokens(&obj(json!({"max_tokens": 10}))).unwrap(),
            Some(10)
        );
        assert_eq!(stop(&body).unwrap(), vec!["END"]);
        assert_eq!(
            stop(&obj(json!({"stop": ["a", "b"]}))).unwrap(),
            vec!["a", "b"]
        );
        assert_eq!(number(&body, "top_p").unwrap(), Some(0.5));
        assert_eq!(
            param(max_completion_tokens(&obj(json!({"max_tokens": 0}))).unwrap_err()),
            Some("max_tokens".into())
        );
        assert_eq!(
            param(stop(&obj(json!({"stop": [1]}))).unwrap_err()),
            Some("stop".into())
        );
        assert_eq!(
            param(number(&obj(json!({"temperature": "hot"})), "temperature").unwrap_err()),
            Some("temperature".into())
        );
    }

    #[test]
    fn text_parts_keep_order_and_skip_refusals() {
        let content = json!([{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}, {"type": "text", "text": ""}]);
        assert_eq!(
            text_parts(Some(&content), Param::Message(0, "content")).unwrap(),
            vec!["a", ""]
        );
        let image = json!([{"type": "image_url", "image_url": {"url": "https://x"}}]);
        assert_eq!(
            param(text_parts(Some(&image), Param::Message(2, "content")).unwrap_err()),
            Some("messages[2].content[0].type".into())
        );
    }

    #[test]
    fn tool_calls_are_parsed_into_objects() {
        let message = json!({"role": "assistant", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
            {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}]});
        let calls = tool_calls(&message, 3, "Anthropic").unwrap();
        assert_eq!(
            calls[0],
            ToolCall {
                id: "call_1",
                name: "f",
                arguments: json!({"a": 1}),
                raw_arguments: "{\"a\":1}",
            }
        );
        assert_eq!(
            (&calls[1].arguments, calls[1].raw_arguments),
            (&json!({}), "{}")
        );
        let bad =
            json!({"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}]});
        let err = tool_calls(&bad, 1, "Gemini").unwrap_err();
        assert!(
            message_of(&err).contains("Gemini needs a JSON object"),
            "{err:?}"
        );
        assert_eq!(
            param(err),
            Some("messages[1].tool_calls[0].function.arguments".into())
        );
        let list = json!({"tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]});
        assert!(tool_calls(&list, 0, "Gemini").is_err());
    }

    #[test]
    fn tool_choice_forms() {
        // Debug text, because the choice borrows from a body that lives only inside `read`.
        let read = |v: Value| {
            let body = obj(json!({ "tool_choice": v }));
            tool_choice(&body).map(|c| format!("{c:?}")).map_err(param)
        };
        let shown = |c: Option<ToolChoice<'_>>| Ok(format!("{c:?}"));
        assert_eq!(read(json!("auto")), shown(Some(ToolChoice::Auto)));
        assert_eq!(read(json!("none")), shown(Some(ToolChoice::None)));
        assert_eq!(
            read(json!("required")),
            shown(Some(ToolChoice::Required { allowed: vec![] }))
        );
        assert_eq!(
            read(json!({"type": "function", "function": {"name": "f"}})),
            shown(Some(ToolChoice::Named("f")))
        );
        assert_eq!(
            read(
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "g"}}]}})
            ),
            shown(Some(ToolChoice::Required { allowed: vec!["g"] }))
        );
        assert_eq!(
            read(json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto"}})),
            shown(Some(ToolChoice::Auto))
        );
        assert_eq!(read(json!("sometimes")), Err(Some("tool_choice".into())));
        assert_eq!(read(json!(3)), Err(Some("tool_choice".into())));
        assert_eq!(read(Value::Null), shown(None));
    }

    #[test]
    fn function_tools_and_data_urls() {
        let body = obj(
            json!({"tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]}),
        );
        assert_eq!(
            function_tools(&body, "Anthropic").unwrap(),
            vec![FunctionTool {
                name: "f",
                description: Some("d"),
                parameters: Some(&json!({"type": "object"}))
            }]
        );
        let other = obj(json!({"tools": [{"type": "web_search"}]}));
        assert_eq!(
            param(function_tools(&other, "Gemini").unwrap_err()),
            Some("tools[0].type".into())
        );
        assert_eq!(
            data_url("data:image/png;base64,AAA", AT).unwrap().unwrap(),
            DataUrl {
                media_type: "image/png",
                data: "AAA"
            }
        );
        assert!(data_url("https://x/y.png", AT).is_none());
        assert!(data_url("data:image/png,AAA", AT).unwrap().is_err());
        assert!(data_url("data:;base64,AAA", AT).unwrap().is_err());
    }

    const AT: Param<'static> = Param::Message(1, "content");

    #[test]
    fn a_param_is_spelled_as_the_path_to_its_value() {
        assert_eq!(AT.to_string(), "messages[1].content");
        let part = AT.item(3);
        assert_eq!(
            String::from(part.field("image_url.url")),
            "messages[1].content[3].image_url.url"
        );
        assert_eq!(
            param(
                data_url("data:image/png,AAA", part.field("file.file_data"))
                    .unwrap()
                    .unwrap_err()
            ),
            Some("messages[1].content[3].file.file_data".into())
        );
    }
}
