//! An Anthropic Messages request → the OpenAI chat request every non-Anthropic provider reads.
//!
//! What has an OpenAI equivalent is translated; what only tunes Anthropic's own service
//! (`cache_control` anywhere, `context_management`, `service_tier`, `top_k`, `metadata` apart
//! from `user_id`, `inference_geo`) is dropped, and so are thinking blocks in the history:
//! only an Anthropic model can read them back. Top-level fields this module does not know are
//! dropped too, silently: Anthropic clients add new optional fields often, and refusing each
//! one would break them with every release. What would change the answer if dropped is
//! refused with a 400 `unsupported_parameter` instead: server tools (`web_search_*`,
//! `bash_*`, `text_editor_*`, `computer_*`, ...), `mcp_servers`, `container`,
//! `output_config.format`, and content blocks other than text, images, documents, tool calls
//! and their results.

use serde_json::{Map, Value};

use crate::core::error::ProxyError;
use crate::core::fields::Field;

use super::tool_id;

/// An Anthropic Messages request as an OpenAI chat request, and what that body cannot say.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The OpenAI chat completions request.
    pub body: Map<String, Value>,
    /// The client's `thinking.budget_tokens`, which `reasoning_effort` only approximates.
    pub thinking_budget: Option<u32>,
}

/// Translates an Anthropic Messages request body; a 400 for what it cannot carry.
pub fn to_openai(body: &Map<String, Value>) -> Result<Translated, ProxyError> {
    for name in ["mcp_servers", "container"] {
        if set(body, name).is_some() {
            return Err(unsupported(
                name,
                "this proxy only forwards custom tools to non-Anthropic models.",
            ));
        }
    }
    let mut out = Map::new();
    let model = match body.field("model") {
        Some(Value::String(model)) if !model.is_empty() => model,
        None | Some(Value::Null) => return Err(missing("model")),
        Some(_) => return Err(invalid("`model` must be a non-empty string.", "model")),
    };
    out.insert("model".into(), Value::String(model.clone()));

    let mut messages = Vec::new();
    if let Some(system) = system(body)? {
        messages.push(object(&mut [
            ("role", "system".into()),
            ("content", system.into()),
        ]));
    }
    let list = match body.field("messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(_)) => {
            return Err(invalid(
                "`messages` must hold at least one message.",
                "messages",
            ))
        }
        Some(_) => return Err(wrong_type("`messages` must be an array.", "messages")),
    };
    for (i, message) in list.iter().enumerate() {
        turn(message, &path("messages", i), &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));

    let max_tokens = match body.field("max_tokens") {
        None | Some(Value::Null) => return Err(missing("max_tokens")),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid("`max_tokens` must be a positive integer.", "max_tokens"))?,
    };
    out.insert("max_tokens".into(), max_tokens.into());

    for name in ["temperature", "top_p"] {
        match set(body, name) {
            None => {}
            Some(v @ Value::Number(_)) => {
                out.insert(name.into(), v.clone());
            }
            Some(_) => return Err(wrong_type(format!("`{name}` must be a number."), name)),
        }
    }
    let stop = stop_sequences(body)?;
    if !stop.is_empty() {
        out.insert("stop".into(), Value::Array(stop));
    }
    match set(body, "stream") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), Value::Bool(true));
            // Always: the Anthropic answer ends with usage, whether or not the client reads it.
            out.insert(
                "stream_options".into(),
                object(&mut [("include_usage", Value::Bool(true))]),
            );
        }
        Some(_) => return Err(wrong_type("`stream` must be a boolean.", "stream")),
    }

    let tools = tools(body)?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        // Without tools there is nothing to choose among, and OpenAI refuses a choice alone.
        if let Some(choice) = set(body, "tool_choice") {
            let (choice, parallel) = tool_choice(choice)?;
            out.insert("tool_choice".into(), choice);
            if !parallel {
                out.insert("parallel_tool_calls".into(), Value::Bool(false));
            }
        }
    }

    let (effort, thinking_budget) = reasoning(body)?;
    if let Some(effort) = effort {
        out.insert("reasoning_effort".into(), Value::String(effort.into()));
    }
    if let Some(user) = set(body, "metadata")
        .and_then(|m| m.field("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), Value::String(user.into()));
    }
    Ok(Translated {
        body: out,
        thinking_budget,
    })
}

// ---------------------------------------------------------------------------------- errors

fn missing(param: &str) -> ProxyError {
    ProxyError::InvalidRequest {
        message: format!("`{param}` is required."),
        param: Some(param.to_owned()),
        code: "missing_required_parameter",
    }
}

fn wrong_type(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "invalid_type",
    }
}

fn invalid(message: impl Into<String>, param: impl Into<String>) -> ProxyError {
    ProxyError::InvalidRequest {
        message: message.into(),
        param: Some(param.into()),
        code: "invalid_value",
    }
}

fn unsupported(param: impl Into<String>, why: &str) -> ProxyError {
    let param = param.into();
    ProxyError::InvalidRequest {
        message: format!("Unsupported parameter: '{param}' is not supported on this route: {why}"),
        param: Some(param),
        code: "unsupported_parameter",
    }
}

/// An object of `fields`, in order, their values taken: what `json!` builds, without the
/// serialisation code it adds for every type of value it is given.
fn object(fields: &mut [(&str, Value)]) -> Value {
    let mut object = Map::with_capacity(fields.len());
    for (key, value) in fields {
        object.insert((*key).to_owned(), value.take());
    }
    Value::Object(object)
}

/// `{"type":"function","function":…}`, a tool and a named tool choice alike.
fn function_named(function: Value) -> Value {
    object(&mut [("type", "function".into()), ("function", function)])
}

/// The path of a field or item, for errors: `at.name`.
fn path(at: &str, name: impl std::fmt::Display) -> String {
    format!("{at}.{name}")
}

/// A field's value unless absent or null.
fn set<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

/// A string field of a block, required.
fn string<'a>(block: &'a Map<String, Value>, name: &str, at: &str) -> Result<&'a str, ProxyError> {
    match block.get(name) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(missing(&path(at, name))),
        Some(_) => Err(wrong_type(
            format!("`{name}` must be a string."),
            path(at, name),
        )),
    }
}

// ---------------------------------------------------------------------------------- system

/// The system prompt as one text: its blocks joined by a blank line.
fn system(body: &Map<String, Value>) -> Result<Option<String>, ProxyError> {
    let text = match set(body, "system") {
        None => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let at = path("system", j);
                let (kind, block) = typed(block, &at)?;
                if kind != "text" {
                    return Err(invalid(
                        "System blocks must be `text` blocks.",
                        path(&at, "type"),
                    ));
                }
                texts.push(string(block, "text", &at)?);
            }
            texts.join("\n\n")
        }
        Some(_) => {
            return Err(wrong_type(
                "`system` must be a string or an array of text blocks.",
                "system",
            ))
        }
    };
    Ok((!text.is_empty()).then_some(text))
}

// -------------------------------------------------------------------------------- messages

/// A content block as an object, with its `type`.
fn typed<'a>(block: &'a Value, at: &str) -> Result<(&'a str, &'a Map<String, Value>), ProxyError> {
    let block = block
        .as_object()
        .ok_or_else(|| wrong_type("A content block must be an object.", at))?;
    Ok((string(block, "type", at)?, block))
}

/// Appends the OpenAI messages of one Anthropic turn.
fn turn(message: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let message = message
        .as_object()
        .ok_or_else(|| wrong_type("A message must be an object.", at))?;
    let role = string(message, "role", at)?;
    if role != "user" && role != "assistant" {
        return Err(invalid(
            "`role` must be `user` or `assistant` (the system prompt is the top-level `system`).",
            path(at, "role"),
        ));
    }
    let content = set(message, "content").ok_or_else(|| missing(&path(at, "content")))?;
    let blocks = match content {
        Value::String(text) => {
            out.push(object(&mut [
                ("role", role.into()),
                ("content", text.as_str().into()),
            ]));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(wrong_type(
                "`content` must be a string or an array of content blocks.",
                path(at, "content"),
            ))
        }
    };
    if role == "user" {
        user_turn(blocks, at, out)
    } else {
        assistant_turn(blocks, at, out)
    }
}

/// A user turn: each tool result becomes a `tool` message, in order, and what else the turn
/// says (images of tool results included) a user message after them, because OpenAI wants
/// tool results right after the assistant message that called the tools.
fn user_turn(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let mut parts = Vec::new();
    let mut tool_results = false;
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        let (kind, block) = typed(block, &at)?;
        match kind {
            "text" => parts.push(text_part(string(block, "text", &at)?)),
            "image" => parts.push(image(block, &at)?),
            "document" => parts.push(document(block, &at)?),
            "tool_result" => {
                tool_results = true;
                out.push(tool_result(block, &at, &mut parts)?);
            }
            // Only the Anthropic model that wrote them can read them; they belong to
            // assistant turns anyway.
            "thinking" | "redacted_thinking" => {}
            "tool_use" => {
                return Err(invalid(
                    "`tool_use` blocks belong in assistant messages.",
                    path(&at, "type"),
                ))
            }
            other => return Err(unknown_block(other, &at)),
        }
    }
    if parts.is_empty() && tool_results {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [] => Value::String(String::new()),
        [part] if part["type"] == "text" => part["text"].clone(),
        _ => Value::Array(parts),
    };
    out.push(object(&mut [("role", "user".into()), ("content", content)]));
    Ok(())
}

/// An assistant turn: its text and its tool calls. Text blocks that a tool call or thinking
/// separated are joined by a blank line (they were separate utterances); adjacent ones are
/// one text. A turn left with nothing (only thinking) is dropped.
fn assistant_turn(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let mut text: Option<String> = None;
    let mut separated = false;
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}.content.{j}");
        let (kind, block) = typed(block, &at)?;
        match kind {
            "text" => {
                let piece = string(block, "text", &at)?;
                match text.as_mut() {
                    None => text = Some(piece.to_owned()),
                    Some(text) => {
                        if separated {
                            text.push_str("\n\n");
                        }
                        text.push_str(piece);
                    }
                }
                separated = false;
            }
            "tool_use" => {
                calls.push(tool_call(block, &at)?);
                separated = true;
            }
            "thinking" | "redacted_thinking" => separated = true,
            other => return Err(unknown_block(other, &at)),
        }
    }
    if text.is_none() && calls.is_empty() {
        return Ok(());
    }
    let role = ("role", Value::from("assistant"));
    let content = ("content", text.map_or(Value::Null, Value::String));
    out.push(if calls.is_empty() {
        object(&mut [role, content])
    } else {
        object(&mut [role, content, ("tool_calls", Value::Array(calls))])
    });
    Ok(())
}

fn unknown_block(kind: &str, at: &str) -> ProxyError {
    unsupported(
        path(at, "type"),
        &format!("`{kind}` content blocks cannot be forwarded to non-Anthropic models."),
    )
}

fn text_part(text: &str) -> Value {
    object(&mut [("type", "text".into()), ("text", text.into())])
}

/// The `source` object of an image or document.
fn source<'a>(
    block: &'a Map<String, Value>,
    at: &str,
) -> Result<(&'a str, &'a Map<String, Value>), ProxyError> {
    let at = path(at, "source");
    match block.field("source") {
        Some(Value::Object(source)) => Ok((string(source, "type", &at)?, source)),
        None | Some(Value::Null) => Err(missing(&at)),
        Some(_) => Err(wrong_type("`source` must be an object.", at)),
    }
}

fn image(block: &Map<String, Value>, at: &str) -> Result<Value, ProxyError> {
    let (kind, source) = source(block, at)?;
    let at = path(at, "source");
    let url = match kind {
        "base64" => format!(
            "data:{};base64,{}",
            string(source, "media_type", &at)?,
            string(source, "data", &at)?
        ),
        "url" => string(source, "url", &at)?.to_owned(),
        _ => {
            return Err(unsupported(
                path(&at, "type"),
                "only base64 and url images can be forwarded to non-Anthropic models.",
            ))
        }
    };
    Ok(object(&mut [
        ("type", "image_url".into()),
        ("image_url", object(&mut [("url", url.into())])),
    ]))
}

fn document(block: &Map<String, Value>, at: &str) -> Result<Value, ProxyError> {
    let (kind, source) = source(block, at)?;
    let at = path(at, "source");
    match kind {
        "base64" => {
            let media_type = match source.field("media_type") {
                None | Some(Value::Null) => "application/pdf",
                Some(_) => string(source, "media_type", &at)?,
            };
            let data = format!("data:{media_type};base64,{}", string(source, "data", &at)?);
            let filename = block
                .field("title")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .unwrap_or("document.pdf");
            let file = object(&mut [("file_data", data.into()), ("filename", filename.into())]);
            Ok(object(&mut [("type", "file".into()), ("file", file)]))
        }
        "text" => Ok(text_part(string(source, "data", &at)?)),
        // A document given as content blocks: its text.
        "content" => match source.field("content") {
            Some(Value::String(text)) => Ok(text_part(text)),
            Some(Value::Array(blocks)) => {
                let mut texts = Vec::with_capacity(blocks.len());
                for (k, block) in blocks.iter().enumerate() {
                    let at = format!("{at}.content.{k}");
                    match typed(block, &at)? {
                        ("text", block) => texts.push(string(block, "text", &at)?),
                        (other, _) => return Err(unknown_block(other, &at)),
                    }
                }
                Ok(text_part(&texts.join("\n")))
            }
            _ => Err(missing(&path(&at, "content"))),
        },
        _ => Err(unsupported(
            path(&at, "type"),
            "only base64, text and content documents can be forwarded to non-Anthropic models; send a PDF as base64.",
        )),
    }
}

/// The `tool` message of a `tool_result`; its images and documents join `media` (the user
/// message that follows), since a tool message holds text only.
fn tool_result(
    block: &Map<String, Value>,
    at: &str,
    media: &mut Vec<Value>,
) -> Result<Value, ProxyError> {
    let id = string(block, "tool_use_id", at)?;
    let text = match set(block, "content") {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::new();
            for (k, inner) in blocks.iter().enumerate() {
                let at = format!("{at}.content.{k}");
                match typed(inner, &at)? {
                    ("text", inner) => texts.push(string(inner, "text", &at)?),
                    ("image", inner) => media.push(image(inner, &at)?),
                    ("document", inner) => media.push(document(inner, &at)?),
                    (other, _) => return Err(unknown_block(other, &at)),
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(wrong_type(
                "`content` must be a string or an array of content blocks.",
                path(at, "content"),
            ))
        }
    };
    Ok(object(&mut [
        ("role", "tool".into()),
        ("tool_call_id", tool_id::decode(id).into()),
        ("content", text.into()),
    ]))
}

fn tool_call(block: &Map<String, Value>, at: &str) -> Result<Value, ProxyError> {
    let id = string(block, "id", at)?;
    let name = string(block, "name", at)?;
    let arguments = match set(block, "input") {
        None => "{}".to_owned(),
        Some(input @ Value::Object(_)) => input.to_string(),
        Some(_) => return Err(wrong_type("`input` must be an object.", path(at, "input"))),
    };
    Ok(object(&mut [
        ("id", tool_id::decode(id).into()),
        ("type", "function".into()),
        (
            "function",
            object(&mut [("name", name.into()), ("arguments", arguments.into())]),
        ),
    ]))
}

// ----------------------------------------------------------------------- sampling and tools

fn stop_sequences(body: &Map<String, Value>) -> Result<Vec<Value>, ProxyError> {
    match set(body, "stop_sequences") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(n, item)| match item {
                Value::String(_) => Ok(item.clone()),
                _ => Err(wrong_type(
                    "Stop sequences must be strings.",
                    path("stop_sequences", n),
                )),
            })
            .collect(),
        Some(_) => Err(wrong_type(
            "`stop_sequences` must be an array of strings.",
            "stop_sequences",
        )),
    }
}

/// Custom tools as OpenAI function tools; any other tool is Anthropic's to run, so a 400.
fn tools(body: &Map<String, Value>) -> Result<Vec<Value>, ProxyError> {
    let list = match set(body, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(wrong_type("`tools` must be an array.", "tools")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (n, tool) in list.iter().enumerate() {
        let at = path("tools", n);
        let tool = tool
            .as_object()
            .ok_or_else(|| wrong_type("A tool must be an object.", &at))?;
        match set(tool, "type") {
            None => {}
            Some(Value::String(kind)) if kind == "custom" => {}
            Some(Value::String(kind)) => {
                return Err(unsupported(
                    path(&at, "type"),
                    &format!(
                        "`{kind}` is a tool Anthropic runs; this proxy only forwards custom tools to non-Anthropic models."
                    ),
                ))
            }
            Some(_) => return Err(wrong_type("`type` must be a string.", path(&at, "type"))),
        }
        let mut function = Map::new();
        function.insert("name".into(), string(tool, "name", &at)?.into());
        match set(tool, "description") {
            None => {}
            Some(d @ Value::String(_)) => {
                function.insert("description".into(), d.clone());
            }
            Some(_) => {
                return Err(wrong_type(
                    "`description` must be a string.",
                    path(&at, "description"),
                ))
            }
        }
        match set(tool, "input_schema") {
            None => {}
            Some(schema @ Value::Object(_)) => {
                function.insert("parameters".into(), schema.clone());
            }
            Some(_) => {
                return Err(wrong_type(
                    "`input_schema` must be a JSON Schema object.",
                    path(&at, "input_schema"),
                ))
            }
        }
        out.push(function_named(Value::Object(function)));
    }
    Ok(out)
}

/// The OpenAI `tool_choice`, and whether parallel tool calls stay allowed.
fn tool_choice(choice: &Value) -> Result<(Value, bool), ProxyError> {
    let choice = choice
        .as_object()
        .ok_or_else(|| wrong_type("`tool_choice` must be an object.", "tool_choice"))?;
    let openai = match string(choice, "type", "tool_choice")? {
        "auto" => "auto".into(),
        "any" => "required".into(),
        "none" => "none".into(),
        "tool" => {
            let name = string(choice, "name", "tool_choice")?;
            function_named(object(&mut [("name", name.into())]))
        }
        _ => {
            return Err(invalid(
                "`tool_choice.type` must be `auto`, `any`, `tool` or `none`.",
                "tool_choice.type",
            ))
        }
    };
    let parallel = match set(choice, "disable_parallel_tool_use") {
        None => true,
        Some(Value::Bool(disable)) => !disable,
        Some(_) => {
            return Err(wrong_type(
                "`disable_parallel_tool_use` must be a boolean.",
                "tool_choice.disable_parallel_tool_use",
            ))
        }
    };
    Ok((openai, parallel))
}

// -------------------------------------------------------------------------------- thinking

/// What the client asked of thinking.
enum Thinking {
    Unset,
    Enabled(u32),
    Adaptive,
    Disabled,
}

/// `reasoning_effort` from `thinking` and `output_config.effort` (which, being the more
/// explicit of the two, wins over a budget), and the budget itself.
fn reasoning(body: &Map<String, Value>) -> Result<(Option<&'static str>, Option<u32>), ProxyError> {
    let thinking = match set(body, "thinking") {
        None => Thinking::Unset,
        Some(Value::Object(thinking)) => match string(thinking, "type", "thinking")? {
            "enabled" => {
                let budget = match thinking.field("budget_tokens") {
                    None | Some(Value::Null) => return Err(missing("thinking.budget_tokens")),
                    Some(v) => v
                        .as_u64()
                        .filter(|&n| n > 0)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            invalid(
                                "`budget_tokens` must be a positive integer.",
                                "thinking.budget_tokens",
                            )
                        })?,
                };
                Thinking::Enabled(budget)
            }
            "adaptive" => Thinking::Adaptive,
            "disabled" => Thinking::Disabled,
            _ => {
                return Err(invalid(
                    "`thinking.type` must be `enabled`, `adaptive` or `disabled`.",
                    "thinking.type",
                ))
            }
        },
        Some(_) => return Err(wrong_type("`thinking` must be an object.", "thinking")),
    };
    let effort = output_effort(body)?;
    Ok(match thinking {
        Thinking::Unset => (effort, None),
        Thinking::Disabled => (None, None),
        Thinking::Adaptive => (Some(effort.unwrap_or("medium")), None),
        Thinking::Enabled(budget) => {
            let bucket = match budget {
                ..4_096 => "low",
                4_096..16_384 => "medium",
                _ => "high",
            };
            (Some(effort.unwrap_or(bucket)), Some(budget))
        }
    })
}

/// `output_config.effort` as a `reasoning_effort`; any other `output_config` setting is a 400.
fn output_effort(body: &Map<String, Value>) -> Result<Option<&'static str>, ProxyError> {
    let config = match set(body, "output_config") {
        None => return Ok(None),
        Some(Value::Object(config)) => config,
        Some(_) => {
            return Err(wrong_type(
                "`output_config` must be an object.",
                "output_config",
            ))
        }
    };
    let mut effort = None;
    for (key, value) in config {
        match key.as_str() {
            _ if value.is_null() => {}
            "effort" => {
                effort = Some(match value.as_str() {
                    Some("low") => "low",
                    Some("medium") => "medium",
                    Some("high" | "xhigh" | "max") => "high",
                    _ => return Err(invalid(
                        "`output_config.effort` must be `low`, `medium`, `high`, `xhigh` or `max`.",
                        "output_config.effort",
                    )),
                })
            }
            _ => {
                return Err(unsupported(
                    path("output_config", key),
                    "this proxy does not forward it to non-Anthropic models.",
                ))
            }
        }
    }
    Ok(effort)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn translate(body: Value) -> Result<Translated, ProxyError> {
        match body {
            Value::Object(map) => to_openai(&map),
            _ => unreachable!("tests pass objects"),
        }
    }

    fn ok(body: Value) -> Value {
        Value::Object(translate(body).unwrap().body)
    }

    /// `(param, code, message)` of the 400 a translation must fail with.
    fn error(body: Value) -> (String, &'static str, String) {
        match translate(body) {
            Err(ProxyError::InvalidRequest {
                message,
                param,
                code,
            }) => (param.unwrap_or_default(), code, message),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    fn with(extra: Value) -> Value {
        let mut body = json!({"model": "m", "max_tokens": 100,
                              "messages": [{"role": "user", "content": "Hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn a_claude_code_request_exactly() {
        let request = json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 32000,
            "system": [
                {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                {"type": "text", "text": "Use the tools.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                    {"type": "text", "text": "List the files", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCgIYAhIM"},
                    {"type": "text", "text": "Listing."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "Bash", "input": {"command": "ls", "description": "List"}},
                    {"type": "tool_use", "id": "toolu_01B", "name": "Read", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "a.rs\nb.rs"},
                    {"type": "tool_result", "tool_use_id": "toolu_01B", "is_error": true,
                     "content": [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}],
                     "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "redacted_thinking", "data": "EmwKAhgB"},
                    {"type": "text", "text": "Two files."}
                ]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{
                "name": "Bash",
                "description": "Runs a command",
                "input_schema": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
                                 "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                                 "required": ["command"], "additionalProperties": false},
                "cache_control": {"type": "ephemeral"}
            }, {"type": "custom", "name": "Read", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "enabled", "budget_tokens": 31999},
            "metadata": {"user_id": "user_abc_account_def_session_123"},
            "temperature": 1,
            "stream": true,
            "context_management": {"edits": []},
            "service_tier": "auto",
            "top_k": 5,
            "some_future_field": {"x": 1}
        });
        let out = translate(request).unwrap();
        assert_eq!(out.thinking_budget, Some(31999));
        assert_eq!(
            Value::Object(out.body).to_string(),
            json!({
                "model": "claude-sonnet-4-5-20250929",
                "messages": [
                    {"role": "system", "content": "You are Claude Code, Anthropic's official CLI for Claude.\n\nUse the tools."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                        {"type": "text", "text": "List the files"}
                    ]},
                    {"role": "assistant", "content": "Listing.", "tool_calls": [
                        {"id": "toolu_01A", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\",\"description\":\"List\"}"}},
                        {"id": "toolu_01B", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "toolu_01A", "content": "a.rs\nb.rs"},
                    {"role": "tool", "tool_call_id": "toolu_01B", "content": "line 1\nline 2"},
                    {"role": "assistant", "content": "Two files."},
                    {"role": "user", "content": "Thanks"}
                ],
                "max_tokens": 32000,
                "temperature": 1,
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [
                    {"type": "function", "function": {"name": "Bash", "description": "Runs a command",
                     "parameters": {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#",
                                    "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
                                    "required": ["command"], "additionalProperties": false}}},
                    {"type": "function", "function": {"name": "Read", "parameters": {"type": "object", "properties": {}}}}
                ],
                "tool_choice": "auto",
                "reasoning_effort": "high",
                "user": "user_abc_account_def_session_123"
            })
            .to_string()
        );
    }

    #[test]
    fn the_wire_notes_example_request() {
        let out = ok(json!({
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are terse."}],
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What's the weather where this photo was taken? Paris, I think."}
            ]}],
            "tools": [{"name": "get_weather", "description": "Get the current weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": false},
            "temperature": 0.7,
            "stop_sequences": ["\n\nHuman:"],
            "metadata": {"user_id": "8f14e45f-ceea-467f-a0e6-6f1b2c3d4e5f"},
            "stream": true
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-20250514",
                "messages": [
                    {"role": "system", "content": "You are terse."},
                    {"role": "user", "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "What's the weather where this photo was taken? Paris, I think."}
                    ]}
                ],
                "max_tokens": 1024,
                "temperature": 0.7,
                "stop": ["\n\nHuman:"],
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather",
                           "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
                "tool_choice": "auto",
                "user": "8f14e45f-ceea-467f-a0e6-6f1b2c3d4e5f"
            })
        );
    }

    #[test]
    fn tool_results_come_first_and_their_images_follow_in_a_user_message() {
        let out = ok(with(json!({"messages": [
            {"role": "user", "content": "Shoot"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Here:"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "taken"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo"}}
                ]},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0"}, "title": "spec.pdf"},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi1"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}
            ]}
        ]})));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Shoot"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "taken"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0", "filename": "spec.pdf"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi1", "filename": "document.pdf"}},
                    {"type": "text", "text": "plain doc"}
                ]}
            ])
        );
    }

    #[test]
    fn assistant_text_around_tool_calls_and_thinking_only_turns() {
        let out = ok(with(json!({"messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "One"}, {"type": "text", "text": " two"},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
                {"type": "text", "text": "Three"}
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
            {"role": "assistant", "content": "Prefill"}
        ]})));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Go"},
                {"role": "assistant", "content": "One two\n\nThree", "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": ""},
                {"role": "assistant", "content": "Prefill"}
            ])
        );
    }

    #[test]
    fn ids_the_proxy_escaped_come_back_as_the_provider_minted_them() {
        let id = "chatcmpl-tool-0::cf-wai-tool-call::41d65b7e894ad159";
        let escaped = super::tool_id::encode(id).into_owned();
        let out = ok(with(json!({"messages": [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": escaped, "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": escaped, "content": "ok"}]}
        ]})));
        assert_eq!(out["messages"][1]["tool_calls"][0]["id"], id);
        assert_eq!(out["messages"][2]["tool_call_id"], id);
    }

    #[test]
    fn tool_choice_variants() {
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        for (choice, want, parallel) in [
            (json!({"type": "auto"}), json!("auto"), None),
            (json!({"type": "any"}), json!("required"), None),
            (json!({"type": "none"}), json!("none"), None),
            (
                json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}),
                json!({"type": "function", "function": {"name": "f"}}),
                Some(json!(false)),
            ),
            (
                json!({"type": "any", "disable_parallel_tool_use": false}),
                json!("required"),
                None,
            ),
        ] {
            let out = ok(with(json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(out["tool_choice"], want);
            assert_eq!(out.get("parallel_tool_calls"), parallel.as_ref());
        }
        // No tools: no choice either.
        let out = ok(with(
            json!({"tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}),
        ));
        assert!(out.get("tool_choice").is_none() && out.get("parallel_tool_calls").is_none());
        assert_eq!(
            error(with(
                json!({"tools": tools, "tool_choice": {"type": "sometimes"}})
            ))
            .0,
            "tool_choice.type"
        );
        assert_eq!(
            error(with(
                json!({"tools": tools, "tool_choice": {"type": "tool"}})
            )),
            (
                "tool_choice.name".into(),
                "missing_required_parameter",
                "`tool_choice.name` is required.".into()
            )
        );
    }

    #[test]
    fn thinking_and_effort() {
        let effort = |extra: Value| {
            let out = translate(with(extra)).unwrap();
            (
                out.body
                    .get("reasoning_effort")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                out.thinking_budget,
            )
        };
        let some = |e: &str, b: Option<u32>| (Some(e.to_owned()), b);
        assert_eq!(effort(json!({})), (None, None));
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})),
            some("low", Some(1024))
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 4096}})),
            some("medium", Some(4096))
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 16383}})),
            some("medium", Some(16383))
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "enabled", "budget_tokens": 16384}})),
            some("high", Some(16384))
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive", "display": "summarized"}})),
            some("medium", None)
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}})),
            some("high", None)
        );
        assert_eq!(
            effort(
                json!({"thinking": {"type": "enabled", "budget_tokens": 2000},
                          "output_config": {"effort": "medium"}})
            ),
            some("medium", Some(2000))
        );
        assert_eq!(
            effort(json!({"output_config": {"effort": "low"}})),
            some("low", None)
        );
        assert_eq!(
            effort(json!({"thinking": {"type": "disabled"}, "output_config": {"effort": "high"}})),
            (None, None)
        );
        assert_eq!(
            error(with(json!({"thinking": {"type": "enabled"}}))).0,
            "thinking.budget_tokens"
        );
        assert_eq!(
            error(with(json!({"output_config": {"effort": "extreme"}}))).0,
            "output_config.effort"
        );
        let (param, code, _) = error(with(json!({"output_config": {"format": {
            "type": "json_schema", "schema": {"type": "object"}}}})));
        assert_eq!(
            (param.as_str(), code),
            ("output_config.format", "unsupported_parameter")
        );
    }

    #[test]
    fn server_tools_and_unknown_blocks_are_refused() {
        let (param, code, message) = error(with(json!({"tools": [
            {"name": "f", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ]})));
        assert_eq!(
            (param.as_str(), code),
            ("tools.1.type", "unsupported_parameter")
        );
        assert!(
            message.contains("only forwards custom tools to non-Anthropic models"),
            "{message}"
        );
        for name in ["mcp_servers", "container"] {
            let (param, code, _) = error(with(json!({name: [{"type": "url"}]})));
            assert_eq!((param.as_str(), code), (name, "unsupported_parameter"));
        }
        for kind in [
            "search_result",
            "server_tool_use",
            "web_search_tool_result",
            "container_upload",
        ] {
            let (param, code, _) = error(with(json!({"messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": kind}]}
            ]})));
            assert_eq!(
                (param.as_str(), code),
                ("messages.1.content.1.type", "unsupported_parameter")
            );
        }
        let (param, _, _) = error(with(json!({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}]}]})));
        assert_eq!(param, "messages.0.content.0.content.0.type");
    }

    #[test]
    fn required_fields_and_types() {
        let cases = [
            (
                json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
                "model",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
                "invalid_value",
            ),
            (
                json!({"model": "m", "max_tokens": 1}),
                "messages",
                "missing_required_parameter",
            ),
            (
                json!({"model": "m", "max_tokens": 1, "messages": []}),
                "messages",
                "invalid_value",
            ),
            (
                json!({"model": "", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
                "model",
                "invalid_value",
            ),
            (
                with(json!({"messages": [{"role": "system", "content": "x"}]})),
                "messages.0.role",
                "invalid_value",
            ),
            (
                with(json!({"messages": [{"role": "user"}]})),
                "messages.0.content",
                "missing_required_parameter",
            ),
            (
                with(json!({"messages": [{"role": "user", "content": 5}]})),
                "messages.0.content",
                "invalid_type",
            ),
            (
                with(json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]})),
                "messages.0.content.0.text",
                "missing_required_parameter",
            ),
            (
                with(
                    json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
                ),
                "messages.0.content.0.source.type",
                "unsupported_parameter",
            ),
            (
                with(
                    json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}]}),
                ),
                "messages.0.content.0.input",
                "invalid_type",
            ),
            (
                with(json!({"stop_sequences": ["a", 1]})),
                "stop_sequences.1",
                "invalid_type",
            ),
            (
                with(json!({"temperature": "hot"})),
                "temperature",
                "invalid_type",
            ),
            (
                with(json!({"system": [{"type": "image"}]})),
                "system.0.type",
                "invalid_value",
            ),
        ];
        for (body, param, code) in cases {
            let (got_param, got_code, _) = error(body.clone());
            assert_eq!((got_param.as_str(), got_code), (param, code), "{body}");
        }
    }

    #[test]
    fn a_minimal_request_stays_minimal() {
        assert_eq!(
            ok(with(
                json!({"stream": false, "metadata": {}, "top_p": 0.9, "stop_sequences": []})
            )),
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
                   "max_tokens": 100, "top_p": 0.9})
        );
    }
}
