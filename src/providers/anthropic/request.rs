//! OpenAI Chat Completions request → Anthropic Messages request.
//!
//! Every field is read from the client's JSON and written only when Anthropic has an
//! equivalent, so OpenAI-only fields (`logprobs`, `logit_bias`, penalties, `seed`,
//! `stream_options`, gateway extensions such as `test_id`) are dropped by construction.

use std::borrow::Cow;

use serde_json::{json, Value};

use crate::core::error::ProxyError;
use crate::core::fields::Field;
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::providers::openai_input::{
    self as input, invalid, max_completion_tokens, number, text_of, text_parts, unsupported, Obj,
    Param, ToolChoice,
};
use crate::providers::tool_ids::{self, Wire};

use super::wire::{Content, Metadata, Request, Source, Tool, ToolOutput, Turn};
use super::{default_max_tokens, JSON_TOOL};
use crate::front::anthropic::signature;
use crate::providers::output_limit;

/// How error messages name the provider.
const PROVIDER: &str = "Anthropic";

/// Whether the client asked for JSON output (`response_format` json_schema/json_object),
/// which is answered through the forced [`JSON_TOOL`].
pub fn json_mode(body: &Obj) -> bool {
    json_schema(body).is_some()
}

/// The schema the JSON tool takes, when JSON output was asked for.
fn json_schema(body: &Obj) -> Option<Cow<'_, Value>> {
    let format = body.field("response_format")?.as_object()?;
    match format.field("type")?.as_str()? {
        "json_schema" => Some(
            format
                .field("json_schema")
                .and_then(|s| s.field("schema"))
                .filter(|s| s.is_object())
                .map_or_else(|| Cow::Owned(any_object()), Cow::Borrowed),
        ),
        "json_object" => Some(Cow::Owned(any_object())),
        _ => None,
    }
}

fn any_object() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": true})
}

/// The Anthropic request body for `target`.
pub fn body<'a>(target: &'a Target, request: &'a ChatRequest) -> Result<Request<'a>, ProxyError> {
    let body = request.body();
    input::check_outputs(body, PROVIDER)?;
    if let Some(n) = body.field("n").and_then(Value::as_u64) {
        if n > 1 {
            return Err(unsupported(
                "`n` greater than 1 is not supported by Anthropic models: they return one choice per request.",
                "n",
            ));
        }
    }
    let model = request.upstream_model(target);
    let max_tokens = max_tokens(target, &model, body)?;
    let thinking = thinking(body, max_tokens)?;
    let (system, messages) = messages(body)?;
    let mut tools = tools(body)?;
    let client_has_tools = !tools.is_empty();
    if let Some(schema) = json_schema(body) {
        tools.push(Tool {
            name: JSON_TOOL,
            description: Some("Respond with a JSON object that follows this schema."),
            input_schema: schema,
        });
    }
    let tool_choice = if tools.is_empty() {
        None
    } else if client_has_tools {
        // With client tools the JSON tool is offered beside them under the client's choice;
        // alone (the only tool there is), it is forced so the answer is always the JSON object.
        tool_choice(body)?
    } else {
        Some(json!({"type": "tool", "name": JSON_TOOL}))
    };
    let temperature = number(body, "temperature")?;
    let top_p = number(body, "top_p")?;
    // With thinking on, Anthropic takes no temperature but 1 and no top_p below 0.95: the
    // client's sampling settings give way to the thinking it asked for.
    let sampling = thinking.is_none();
    // OpenAI allows 0–2, Anthropic 0–1: clamping keeps "creative" requests valid.
    let temperature = temperature.filter(|_| sampling).map(|t| t.clamp(0.0, 1.0));
    // Claude 4.5-era models reject temperature and top_p together, and OpenAI clients often
    // send both; temperature is the one kept.
    let top_p = top_p.filter(|_| sampling && temperature.is_none());
    // Anthropic asks for an opaque id, never an email address: those are dropped.
    let metadata = body
        .field("user")
        .and_then(Value::as_str)
        .filter(|user| !user.is_empty() && !user.contains('@'))
        .map(|user_id| Metadata { user_id });
    Ok(Request {
        model,
        max_tokens,
        system,
        messages,
        tools,
        tool_choice,
        thinking,
        temperature,
        top_p,
        stop_sequences: stop_sequences(body)?,
        metadata,
        stream: request.stream,
    })
}

fn max_tokens(target: &Target, model: &str, body: &Obj) -> Result<u64, ProxyError> {
    let requested = max_completion_tokens(body)?.unwrap_or_else(|| {
        u64::from(
            target
                .max_tokens
                .unwrap_or_else(|| default_max_tokens(model)),
        )
    });
    Ok(output_limit::clamp(target, model, requested))
}

/// Thinking budgets for `reasoning_effort` (LiteLLM's: low 1024, medium 2048, high 4096 are
/// too small for Claude's long tool loops, so these follow Anthropic's own guidance: the 1024
/// minimum, then 4× steps).
const EFFORT_BUDGETS: [(&str, u64); 4] = [
    ("minimal", 1024),
    ("low", 1024),
    ("medium", 4096),
    ("high", 16_384),
];

/// `reasoning_effort` → `thinking: {"type":"enabled","budget_tokens":N}`, the budget kept
/// below `max_tokens` as Anthropic requires; `none` (or no effort) leaves thinking off.
fn thinking(body: &Obj, max_tokens: u64) -> Result<Option<Value>, ProxyError> {
    let effort = match body.field("reasoning_effort") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(effort)) => effort.as_str(),
        Some(_) => {
            return Err(invalid(
                "`reasoning_effort` must be a string.",
                "reasoning_effort",
            ))
        }
    };
    if effort == "none" {
        return Ok(None);
    }
    let budget = EFFORT_BUDGETS
        .iter()
        .find(|(name, _)| *name == effort)
        .map_or(4096, |(_, budget)| *budget);
    if max_tokens <= 1024 {
        // No room for the minimum budget below max_tokens: answer without thinking.
        return Ok(None);
    }
    let budget = budget.min(max_tokens - 1);
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

fn stop_sequences(body: &Obj) -> Result<Vec<&str>, ProxyError> {
    // Anthropic rejects whitespace-only stop sequences.
    Ok(input::stop(body)?
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect())
}

fn tools(body: &Obj) -> Result<Vec<Tool<'_>>, ProxyError> {
    Ok(input::function_tools(body, PROVIDER)?
        .into_iter()
        .map(|tool| Tool {
            name: tool.name,
            description: tool.description,
            input_schema: tool.parameters.map_or_else(
                || Cow::Owned(json!({"type": "object", "properties": {}})),
                Cow::Borrowed,
            ),
        })
        .collect())
}

fn tool_choice(body: &Obj) -> Result<Option<Value>, ProxyError> {
    let no_parallel = body.field("parallel_tool_calls") == Some(&Value::Bool(false));
    let mut choice = match input::tool_choice(body)? {
        None if no_parallel => json!({"type": "auto"}),
        None => return Ok(None),
        // `none` takes no `disable_parallel_tool_use`.
        Some(ToolChoice::None) => return Ok(Some(json!({"type": "none"}))),
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        // Anthropic cannot restrict `any` to a subset: any tool offered may be called.
        Some(ToolChoice::Required { .. }) => json!({"type": "any"}),
        Some(ToolChoice::Named(name)) => json!({"type": "tool", "name": name}),
    };
    if no_parallel {
        if let Some(o) = choice.as_object_mut() {
            o.insert("disable_parallel_tool_use".into(), true.into());
        }
    }
    Ok(Some(choice))
}

/// Tool-use ids must match `^[a-zA-Z0-9_-]+$` and be unique; ids minted by other providers
/// (Gemini's with their signature, Workers AI's with their suffix) are made to fit, the same
/// way on the `tool_use` and its `tool_result`, so the pair still matches.
fn tool_id(id: &str) -> String {
    tool_ids::portable(id, Wire::Anthropic).into_owned()
}

/// Appends `blocks` as a `role` turn, merged into the previous turn when it has the same role.
fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, blocks: Vec<Content<'a>>) {
    if blocks.is_empty() {
        // Anthropic rejects empty turns; an empty message adds nothing to the conversation.
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Turn {
            role,
            content: blocks,
        }),
    }
}

fn text_blocks<'a>(
    content: Option<&'a Value>,
    param: Param<'_>,
) -> Result<Vec<Content<'a>>, ProxyError> {
    Ok(text_parts(content, param)?
        .into_iter()
        .filter(|text| !text.is_empty())
        .map(|text| Content::Text { text })
        .collect())
}

/// A `data:<mime>;base64,<data>` URL as an Anthropic base64 source of an `allowed` type.
fn base64_source<'a>(
    url: &'a str,
    allowed: &[&str],
    param: Param<'_>,
) -> Result<Source<'a>, ProxyError> {
    let parsed = input::data_url(url, param)
        .unwrap_or_else(|| Err(invalid("Expected a base64 data URL.", param)))?;
    if !allowed.contains(&parsed.media_type) {
        return Err(unsupported(
            format!(
                "Media type `{}` is not supported by Anthropic models; use one of {}.",
                parsed.media_type,
                allowed.join(", ")
            ),
            param,
        ));
    }
    Ok(Source::Base64 {
        media_type: parsed.media_type,
        data: parsed.data,
    })
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

fn user_blocks<'a>(
    content: Option<&'a Value>,
    param: Param<'_>,
) -> Result<Vec<Content<'a>>, ProxyError> {
    let Some(Value::Array(parts)) = content else {
        return text_blocks(content, param);
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = param.item(j);
        match part.field("type").and_then(Value::as_str) {
            Some("text") => {
                let text = text_of(part, at)?;
                if !text.is_empty() {
                    out.push(Content::Text { text });
                }
            }
            Some("image_url") => {
                let url_param = at.field("image_url.url");
                let url = part
                    .field("image_url")
                    .and_then(|i| i.field("url").or(Some(i)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("An image part needs `image_url.url`.", url_param))?;
                let source = if url.starts_with("data:") {
                    base64_source(url, &IMAGE_TYPES, url_param)?
                } else if url.starts_with("https://") || url.starts_with("http://") {
                    Source::Url { url }
                } else {
                    return Err(invalid(
                        "`image_url.url` must be an https URL or a base64 data URL.",
                        url_param,
                    ));
                };
                out.push(Content::Image { source });
            }
            Some("file") => {
                let data = part
                    .field("file")
                    .and_then(|f| f.field("file_data"))
                    .and_then(Value::as_str);
                let Some(data) = data else {
                    return Err(unsupported(
                        "Only inline PDF files (`file.file_data` as a data URL) are supported by Anthropic models.",
                        at.field("file"),
                    ));
                };
                let source = base64_source(data, &["application/pdf"], at.field("file.file_data"))?;
                out.push(Content::Document { source });
            }
            other => {
                return Err(unsupported(
                    format!(
                        "Content part type `{}` is not supported by Anthropic models.",
                        other.unwrap_or("?")
                    ),
                    at.field("type"),
                ))
            }
        }
    }
    Ok(out)
}

/// The assistant's earlier thinking, sent back in LiteLLM's `thinking_blocks` (Anthropic
/// requires a tool loop's thinking block, signature and all, to come back); blocks the proxy
/// minted for another provider's reasoning carry no signature Anthropic accepts and are left out.
fn thinking_blocks(message: &Value) -> Vec<Content<'_>> {
    let Some(Value::Array(blocks)) = message.field("thinking_blocks") else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|block| match block.field("type").and_then(Value::as_str) {
            Some("thinking") => block
                .field("signature")
                .and_then(Value::as_str)
                .is_some_and(|sig| !sig.is_empty() && !signature::is_minted(sig)),
            Some("redacted_thinking") => block.field("data").is_some_and(Value::is_string),
            _ => false,
        })
        .map(Content::Kept)
        .collect()
}

fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Content<'_>>, ProxyError> {
    let mut out = thinking_blocks(message);
    out.extend(text_blocks(
        message.field("content"),
        Param::Message(i, "content"),
    )?);
    for call in input::tool_calls(message, i, PROVIDER)? {
        out.push(Content::ToolUse {
            id: tool_id(call.id),
            name: call.name,
            input: call.arguments,
        });
    }
    Ok(out)
}

fn tool_result(message: &Value, i: usize) -> Result<Content<'_>, ProxyError> {
    let id = message
        .field("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(
                "A tool message needs `tool_call_id`.",
                Param::Message(i, "tool_call_id"),
            )
        })?;
    let content = match message.field("content") {
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(ToolOutput::Text(s)),
        content => {
            let blocks = text_blocks(content, Param::Message(i, "content"))?;
            (!blocks.is_empty()).then_some(ToolOutput::Blocks(blocks))
        }
    };
    Ok(Content::ToolResult {
        tool_use_id: tool_id(id),
        content,
    })
}

/// `(system blocks, turns)`: system/developer messages, wherever they are, become the
/// top-level `system` in order; the rest become alternating user/assistant turns.
type Conversation<'a> = (Vec<Content<'a>>, Vec<Turn<'a>>);

fn messages(body: &Obj) -> Result<Conversation<'_>, ProxyError> {
    let list = body
        .field("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut system = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let role = message.field("role").and_then(Value::as_str).unwrap_or("");
        let param = Param::Message(i, "content");
        match role {
            "system" | "developer" => system.extend(text_blocks(message.field("content"), param)?),
            "user" => push_turn(&mut turns, "user", user_blocks(message.field("content"), param)?),
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(message, i)?),
            // Tool results go back in the next user turn, consecutive ones together, in order.
            "tool" => push_turn(&mut turns, "user", vec![tool_result(message, i)?]),
            other => {
                return Err(unsupported(
                    format!("Message role `{other}` is not supported; use system, developer, user, assistant or tool."),
                    Param::Message(i, "role"),
                ))
            }
        }
    }
    if turns.first().is_none_or(|turn| turn.role != "user") {
        // The conversation must open with a user turn with non-empty content.
        turns.insert(
            0,
            Turn {
                role: "user",
                content: vec![Content::Text { text: "." }],
            },
        );
    }
    Ok((system, turns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;
    use crate::providers::test_support::invalid_request;

    fn target(max_tokens: Option<u32>) -> Target {
        Target {
            provider: "anthropic",
            model: "claude-sonnet-4-20250514",
            base_url: "https://api.anthropic.com",
            vias: &[Via::Key("ANTHROPIC_KEY_1")],
            max_tokens,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        }
    }

    fn convert(request: Value) -> Result<Value, ProxyError> {
        let req = ChatRequest::parse(request.to_string().as_bytes()).unwrap();
        body(&target(None), &req).map(|body| serde_json::to_value(body).unwrap())
    }

    fn ok(request: Value) -> Value {
        convert(request).unwrap()
    }

    fn err_param(request: Value) -> (String, String) {
        invalid_request(convert(request))
    }

    #[test]
    fn a_plain_request_and_its_field_order() {
        let out = ok(json!({
            "model": "deep-think", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}],
            "logprobs": false, "logit_bias": {"1": 2}, "presence_penalty": 1, "frequency_penalty": 1,
            "seed": 4, "n": 1, "test_id": "t-1"
        }));
        assert_eq!(
            out.to_string(),
            r#"{"model":"claude-sonnet-4-20250514","max_tokens":64000,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}"#
        );
    }

    #[test]
    fn system_and_developer_messages_move_to_system_in_order() {
        let out = ok(json!({"model": "m", "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "a"},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}, {"type": "text", "text": ""}]},
            {"role": "user", "content": "b"}
        ]}));
        assert_eq!(
            out["system"],
            json!([{"type": "text", "text": "Be terse."}, {"type": "text", "text": "Use metric."}])
        );
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
        );
    }

    #[test]
    fn a_conversation_starting_with_the_assistant_gets_a_user_turn_first() {
        let out = ok(json!({"model": "m", "messages": [
            {"role": "system", "content": "s"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "x"}
        ]}));
        assert_eq!(
            out["messages"][0],
            json!({"role": "user", "content": [{"type": "text", "text": "."}]})
        );
        assert_eq!(out["messages"][1]["role"], "assistant");
        let only_system =
            ok(json!({"model": "m", "messages": [{"role": "system", "content": "s"}]}));
        assert_eq!(only_system["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn images_become_base64_or_url_sources_and_empty_text_is_dropped() {
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": ""},
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}]}),
        );
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ])
        );
        let (param, message) = err_param(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
            ]}]}),
        );
        assert_eq!(param, "messages[0].content[0].image_url.url");
        assert!(message.contains("image/bmp"), "{message}");
        let (param, _) = err_param(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}
            ]}]}),
        );
        assert_eq!(param, "messages[0].content[0].type");
    }

    #[test]
    fn tool_calls_and_results_round_trip() {
        let out = ok(json!({"model": "m", "messages": [
            {"role": "user", "content": "Weather in Paris and the time?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call.2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "15 degrees"},
            {"role": "tool", "tool_call_id": "call.2", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "user", "content": "Thanks"}
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and the time?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "call_2_5d7ef6d5", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "15 degrees"},
                    {"type": "tool_result", "tool_use_id": "call_2_5d7ef6d5", "content": [{"type": "text", "text": "12:00"}]},
                    {"type": "text", "text": "Thanks"}
                ]}
            ])
        );
    }

    #[test]
    fn assistant_text_comes_before_its_tool_use_and_bad_arguments_are_a_400() {
        let out = ok(json!({"model": "m", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": ""}
        ]}));
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}])
        );
        assert_eq!(
            out["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "toolu_1"}])
        );
        let (param, message) = err_param(json!({"model": "m", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}));
        assert_eq!(param, "messages[1].tool_calls[0].function.arguments");
        assert!(message.contains("not valid JSON"));
    }

    #[test]
    fn tools_keep_the_whole_schema_and_tool_choice_maps() {
        let schema = json!({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                            "required": ["a"], "additionalProperties": false, "$defs": {"x": {"type": "string"}}});
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "does f", "parameters": schema, "strict": true}},
                {"type": "function", "function": {"name": "g"}}
            ],
            "tool_choice": "required"}),
        );
        assert_eq!(
            out["tools"],
            json!([
                {"name": "f", "description": "does f", "input_schema": schema},
                {"name": "g", "input_schema": {"type": "object", "properties": {}}}
            ])
        );
        assert_eq!(out["tool_choice"], json!({"type": "any"}));
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |tc: Value, parallel: Value| {
            let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "tools": tools});
            if !tc.is_null() {
                req["tool_choice"] = tc;
            }
            if !parallel.is_null() {
                req["parallel_tool_calls"] = parallel;
            }
            ok(req).get("tool_choice").cloned()
        };
        assert_eq!(
            choice(json!("auto"), Value::Null),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(json!("none"), json!(false)),
            Some(json!({"type": "none"}))
        );
        assert_eq!(choice(Value::Null, Value::Null), None);
        assert_eq!(
            choice(Value::Null, json!(false)),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(
                json!({"type": "function", "function": {"name": "f"}}),
                json!(false)
            ),
            Some(json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!("required"), json!(true)),
            Some(json!({"type": "any"}))
        );
        // Without tools there is nothing to choose from, so no tool_choice is sent.
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "tool_choice": "none"}),
        );
        assert!(out.get("tool_choice").is_none() && out.get("tools").is_none());
    }

    #[test]
    fn reasoning_effort_switches_thinking_on_and_sampling_gives_way() {
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "reasoning_effort": "high", "temperature": 0.2, "top_p": 0.5, "max_tokens": 32000}),
        );
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert!(out.get("temperature").is_none() && out.get("top_p").is_none());
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "reasoning_effort": "medium", "max_tokens": 2000}),
        );
        // The budget stays below max_tokens, as Anthropic requires.
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": 1999})
        );
        for quiet in [json!("none"), json!(null)] {
            let out = ok(
                json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "reasoning_effort": quiet}),
            );
            assert!(out.get("thinking").is_none());
        }
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "reasoning_effort": "low", "max_tokens": 1000}),
        );
        assert!(out.get("thinking").is_none());
    }

    #[test]
    fn thinking_blocks_come_back_signed_and_minted_ones_are_left_out() {
        let minted = crate::front::anthropic::signature::mint("gemini thought");
        let out = ok(
            json!({"model": "m", "reasoning_effort": "low", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null,
             "thinking_blocks": [{"type": "thinking", "thinking": "call it", "signature": "EqQBCkYIBx"},
                                 {"type": "thinking", "thinking": "gemini thought", "signature": minted},
                                 {"type": "redacted_thinking", "data": "EmwKAhgB"}],
             "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}]}),
        );
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type": "thinking", "thinking": "call it", "signature": "EqQBCkYIBx"},
                   {"type": "redacted_thinking", "data": "EmwKAhgB"},
                   {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}])
        );
    }

    #[test]
    fn sampling_stop_user_and_max_tokens() {
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "temperature": 1.7, "top_p": 0.9, "stop": ["END", "  ", "\n\nHuman:"], "user": "user-42",
            "max_tokens": 100, "max_completion_tokens": 200}),
        );
        assert_eq!(out["temperature"], json!(1.0));
        assert!(out.get("top_p").is_none());
        assert_eq!(out["stop_sequences"], json!(["END", "\n\nHuman:"]));
        assert_eq!(out["metadata"], json!({"user_id": "user-42"}));
        assert_eq!(out["max_tokens"], json!(200));
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "top_p": 0.5, "stop": "STOP", "user": "someone@example.com", "max_tokens": 100, "temperature": null}),
        );
        assert_eq!(out["top_p"], json!(0.5));
        assert_eq!(out["stop_sequences"], json!(["STOP"]));
        assert!(out.get("metadata").is_none());
        assert_eq!(out["max_tokens"], json!(100));
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "stop": " ", "temperature": -1}),
        );
        assert!(out.get("stop_sequences").is_none());
        assert_eq!(out["temperature"], json!(0.0));
        let req =
            ChatRequest::parse(br#"{"model":"m","messages":[{"role":"user","content":"q"}]}"#)
                .unwrap();
        assert_eq!(body(&target(Some(1234)), &req).unwrap().max_tokens, 1234);
        let (param, _) = err_param(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "max_tokens": 0}),
        );
        assert_eq!(param, "max_tokens");
    }

    #[test]
    fn n_above_one_is_a_400_that_says_so() {
        let (param, message) = err_param(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}], "n": 2}),
        );
        assert_eq!(param, "n");
        assert!(message.contains("`n` greater than 1"));
    }

    #[test]
    fn response_format_becomes_a_forced_json_tool() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}}}),
        );
        assert_eq!(out["tools"][0]["name"], JSON_TOOL);
        assert_eq!(out["tools"][0]["input_schema"], schema);
        assert_eq!(
            out["tool_choice"],
            json!({"type": "tool", "name": JSON_TOOL})
        );
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(
            out["tools"][0]["input_schema"]["additionalProperties"],
            json!(true)
        );
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "response_format": {"type": "text"}}),
        );
        assert!(out.get("tools").is_none());
        // Beside client tools the JSON tool is offered, not forced.
        let out = ok(
            json!({"model": "m", "messages": [{"role": "user", "content": "q"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}}),
        );
        assert_eq!(out["tools"].as_array().unwrap().len(), 2);
        assert!(out.get("tool_choice").is_none());
    }
}
