//! OpenAI Chat Completions request → Gemini `GenerateContentRequest`.
//!
//! Every field is read from the client's JSON and written only when Gemini has an equivalent,
//! so OpenAI-only fields (`logprobs`, `logit_bias`, `user`, `metadata`, `parallel_tool_calls`,
//! `stream_options`, gateway extensions such as `test_id`) are dropped by construction.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::core::error::ProxyError;
use crate::core::fields::Field;
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::providers::openai_input::{
    self as input, invalid, max_completion_tokens, number, positive, text_of, text_parts,
    unsupported, Obj, Param, ToolChoice,
};
use crate::providers::output_limit;

use super::ids;
use super::schema::{self, Budget};
use super::wire::{
    Blob, Content, FileData, FunctionCall, FunctionCallingConfig, FunctionDeclaration,
    FunctionResponse, GenerationConfig, Part, Request, SystemInstruction, ThinkingConfig, Tool,
    ToolConfig,
};

/// How error messages name the provider.
const PROVIDER: &str = "Gemini";

/// The sentinel Google documents for a function call whose signature is unknown (history
/// written by another provider, or trimmed by the client); Gemini 3 rejects a call without one.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Gemini 3 models need signatures on function calls and take `thinkingLevel`.
fn is_gemini_3(model: &str) -> bool {
    model
        .strip_prefix("models/")
        .unwrap_or(model)
        .starts_with("gemini-3")
}

/// The Gemini request body for `target`.
pub fn body(target: &Target, request: &ChatRequest) -> Result<Request, ProxyError> {
    let body = request.body();
    input::check_outputs(body, PROVIDER)?;
    let model = request.upstream_model(target);
    let (system, contents) = contents(body, is_gemini_3(&model))?;
    // Every schema of the request shares one budget.
    let mut budget = Budget::new();
    let declarations = tools(body, &mut budget)?;
    let tool_config = if declarations.is_empty() {
        None
    } else {
        tool_choice(body)?
    };
    let tools = if declarations.is_empty() {
        Vec::new()
    } else {
        vec![Tool {
            function_declarations: declarations,
        }]
    };
    Ok(Request {
        contents,
        system_instruction: system,
        tools,
        tool_config,
        generation_config: generation_config(target, &model, request, &mut budget)?,
    })
}

// ----------------------------------------------------------------------------- messages

/// Turns being built: consecutive same-role messages share one `Content`.
#[derive(Default)]
struct Turns {
    list: Vec<Content>,
}

impl Turns {
    fn push(&mut self, role: &str, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        match self.list.last_mut() {
            Some(last) if last.role == role => last.parts.extend(parts),
            _ => self.list.push(Content {
                role: role.to_owned(),
                parts,
            }),
        }
    }
}

/// `(systemInstruction, contents)`: system/developer messages, wherever they are, become the
/// system instruction in order; the rest alternating `user` / `model` turns.
fn contents(
    body: &Obj,
    needs_signatures: bool,
) -> Result<(Option<SystemInstruction>, Vec<Content>), ProxyError> {
    let list = body
        .field("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut system = Vec::new();
    let mut turns = Turns::default();
    // Tool-call id → function name: Gemini's functionResponse needs the name, OpenAI's tool
    // message only has the id.
    let mut names: HashMap<&str, &str> = HashMap::new();
    for (i, message) in list.iter().enumerate() {
        let role = message.field("role").and_then(Value::as_str).unwrap_or("");
        let param = Param::Message(i, "content");
        match role {
            "system" | "developer" => system.extend(
                text_parts(message.field("content"), param)?
                    .into_iter()
                    .filter(|t| !t.is_empty())
                    .map(Part::text),
            ),
            "user" => turns.push("user", user_parts(message.field("content"), param)?),
            "assistant" => {
                let parts = model_parts(message, i, &mut names, needs_signatures)?;
                turns.push("model", parts);
            }
            "tool" | "function" => turns.push("user", vec![tool_result(message, i, &names)?]),
            other => {
                return Err(unsupported(
                    format!("Message role `{other}` is not supported; use system, developer, user, assistant or tool."),
                    Param::Message(i, "role"),
                ))
            }
        }
    }
    let mut contents = turns.list;
    if contents.is_empty() {
        // Only system messages: Gemini needs at least one turn (LiteLLM's fix, litellm#9733).
        contents.push(Content {
            role: "user".into(),
            parts: vec![Part::text(" ")],
        });
    }
    let system = (!system.is_empty()).then_some(SystemInstruction { parts: system });
    Ok((system, contents))
}

/// The texts of a content that may only hold text: a string, or text (and refusal) parts.
fn user_parts(content: Option<&Value>, param: Param<'_>) -> Result<Vec<Part>, ProxyError> {
    let Some(Value::Array(parts)) = content else {
        return Ok(text_parts(content, param)?
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(Part::text)
            .collect());
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let at = param.item(j);
        match part.field("type").and_then(Value::as_str) {
            Some("text") => {
                let text = text_of(part, at)?;
                if !text.is_empty() {
                    out.push(Part::text(text));
                }
            }
            Some("image_url") => {
                let url_param = at.field("image_url.url");
                let url = part
                    .field("image_url")
                    .and_then(|i| i.field("url").or(Some(i)))
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("An image part needs `image_url.url`.", url_param))?;
                out.push(media(url, url_param)?);
            }
            Some("input_audio") => {
                let audio = part.field("input_audio");
                let data = audio.and_then(|a| a.field("data")).and_then(Value::as_str);
                let format = audio
                    .and_then(|a| a.field("format"))
                    .and_then(Value::as_str);
                let (Some(data), Some(format @ ("wav" | "mp3"))) = (data, format) else {
                    return Err(invalid(
                        "An audio part needs base64 `input_audio.data` and `input_audio.format` wav or mp3.",
                        at.field("input_audio"),
                    ));
                };
                out.push(Part {
                    inline_data: Some(Blob {
                        mime_type: format!("audio/{format}"),
                        data: data.to_owned(),
                    }),
                    ..Part::default()
                });
            }
            Some("file") => {
                let data = part
                    .field("file")
                    .and_then(|f| f.field("file_data"))
                    .and_then(Value::as_str);
                let Some(data) = data else {
                    return Err(unsupported(
                        "Only inline files (`file.file_data` as a base64 data URL) are supported by Gemini models.",
                        at.field("file"),
                    ));
                };
                out.push(media(data, at.field("file.file_data"))?);
            }
            other => {
                return Err(unsupported(
                    format!(
                        "Content part type `{}` is not supported by Gemini models.",
                        other.unwrap_or("?")
                    ),
                    at.field("type"),
                ))
            }
        }
    }
    Ok(out)
}

/// A data URL as `inlineData`, an http(s) URL as `fileData` (its media type from the file
/// extension, which Gemini requires; without one the client is told to inline the file).
fn media(url: &str, param: Param<'_>) -> Result<Part, ProxyError> {
    if let Some(parsed) = input::data_url(url, param) {
        let parsed = parsed?;
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: parsed.media_type.to_owned(),
                data: parsed.data.to_owned(),
            }),
            ..Part::default()
        });
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(invalid(
            "A media URL must be an https URL or a base64 data URL.",
            param,
        ));
    }
    let Some(mime) = mime_from_url(url) else {
        return Err(unsupported(
            "Gemini needs the media type of a file URL and this URL has no known file extension (.jpg, .png, .webp, .gif, .heic, .pdf, .mp3, .wav, .mp4); send the file as a base64 data URL instead.",
            param,
        ));
    };
    Ok(Part {
        file_data: Some(FileData {
            mime_type: mime.to_owned(),
            file_uri: url.to_owned(),
        }),
        ..Part::default()
    })
}

fn mime_from_url(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let file = path.rsplit('/').next().unwrap_or(path);
    let ext = file.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => return None,
    })
}

/// An assistant message as `model` parts: its text, then one `functionCall` per tool call,
/// each with the thought signature its id carries. `names` learns each call's name.
fn model_parts<'a>(
    message: &'a Value,
    i: usize,
    names: &mut HashMap<&'a str, &'a str>,
    needs_signatures: bool,
) -> Result<Vec<Part>, ProxyError> {
    let mut out: Vec<Part> = text_parts(message.field("content"), Param::Message(i, "content"))?
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(Part::text)
        .collect();
    let mut first_call = true;
    for call in input::tool_calls(message, i, PROVIDER)? {
        let (id, name, args) = (call.id, call.name, call.arguments);
        names.insert(id, name);
        let (_, signature) = ids::split(id);
        // Gemini 3 validates the signature of the first call of each step; a history
        // without one (written by another provider) gets Google's documented sentinel.
        let signature = match signature {
            Some(sig) => Some(sig.to_owned()),
            None if needs_signatures && first_call => Some(SKIP_SIGNATURE.to_owned()),
            None => None,
        };
        first_call = false;
        // Gemini's own call ids are not sent back: the Developer API matches responses by
        // name and order, and an id from another provider or minted here would be one Gemini
        // never issued.
        out.push(Part {
            function_call: Some(FunctionCall {
                id: None,
                name: name.to_owned(),
                args,
            }),
            thought_signature: signature,
            ..Part::default()
        });
    }
    Ok(out)
}

/// A `tool` (or legacy `function`) message as a `functionResponse` part: the name comes from
/// the assistant call with the same id; the response is the output parsed as a JSON object,
/// or `{"content": output}` when it is not one (Gemini requires an object).
fn tool_result(message: &Value, i: usize, names: &HashMap<&str, &str>) -> Result<Part, ProxyError> {
    let own_name = message
        .field("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let name = match message.field("tool_call_id").and_then(Value::as_str) {
        Some(id) => names
            .get(id)
            .copied()
            .or(own_name)
            .ok_or_else(|| {
                invalid(
                    format!("No earlier assistant tool call has the id `{id}`; Gemini needs the function's name to accept its result."),
                    Param::Message(i, "tool_call_id"),
                )
            })?,
        None => own_name.ok_or_else(|| {
            invalid(
                "A tool message needs `tool_call_id`.",
                Param::Message(i, "tool_call_id"),
            )
        })?,
    };
    let output = text_parts(message.field("content"), Param::Message(i, "content"))?.join("");
    let response = match serde_json::from_str::<Value>(&output) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({ "content": other }),
        Err(_) => json!({ "content": output }),
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            name: name.to_owned(),
            response,
        }),
        ..Part::default()
    })
}

// ----------------------------------------------------------------------------- tools

fn tools(body: &Obj, budget: &mut Budget) -> Result<Vec<FunctionDeclaration>, ProxyError> {
    input::function_tools(body, PROVIDER)?
        .into_iter()
        .enumerate()
        .map(|(i, tool)| {
            let parameters = match tool.parameters {
                Some(p) => Some(schema::clean(p, false, budget).map_err(|_| {
                    too_large(
                        &format!("The parameters of tool `{}`", tool.name),
                        format!("tools[{i}].function.parameters"),
                    )
                })?),
                None => None,
            };
            Ok(FunctionDeclaration {
                name: tool.name.to_owned(),
                description: tool.description.map(str::to_owned),
                // A schema without properties is a function without arguments: Gemini
                // expresses that by leaving `parameters` out.
                parameters: parameters
                    .filter(|p| p.field("properties").is_some() || p.field("anyOf").is_some()),
            })
        })
        .collect()
}

/// A 400 for a schema whose `$ref`s, inlined as Gemini needs, would exceed the request's
/// budget: the client can simplify it, and a route's other targets may take it as it is.
fn too_large(what: &str, param: String) -> ProxyError {
    ProxyError::InvalidRequest {
        message: format!(
            "{what} expand past the proxy's limit for Gemini ({} units, about that many bytes) once their `$ref`s are inlined, as Gemini requires: reference definitions fewer times, or inline a simpler schema.",
            schema::MAX_COST
        ),
        param: Some(param),
        code: "schema_too_large",
    }
}

fn mode(mode: &'static str, names: Vec<String>) -> Option<ToolConfig> {
    Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: names,
        },
    })
}

fn tool_choice(body: &Obj) -> Result<Option<ToolConfig>, ProxyError> {
    Ok(match input::tool_choice(body)? {
        None => None,
        Some(ToolChoice::Auto) => mode("AUTO", Vec::new()),
        Some(ToolChoice::None) => mode("NONE", Vec::new()),
        // `allowedFunctionNames` is only valid with ANY.
        Some(ToolChoice::Required { allowed }) => {
            mode("ANY", allowed.into_iter().map(str::to_owned).collect())
        }
        Some(ToolChoice::Named(name)) => mode("ANY", vec![name.to_owned()]),
    })
}

// ----------------------------------------------------------------------------- generationConfig

fn generation_config(
    target: &Target,
    model: &str,
    request: &ChatRequest,
    budget: &mut Budget,
) -> Result<GenerationConfig, ProxyError> {
    let body = request.body();
    let max_output_tokens = max_completion_tokens(body)?
        .or(target.max_tokens.map(u64::from))
        .map(|max| output_limit::clamp(target, model, max));
    let seed = match body.field("seed") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| invalid("`seed` must be an integer.", "seed"))?,
        ),
    };
    let (response_mime_type, response_schema) = response_format(body, budget)?;
    Ok(GenerationConfig {
        max_output_tokens,
        temperature: number(body, "temperature")?,
        top_p: number(body, "top_p")?,
        top_k: positive(body, "top_k")?,
        stop_sequences: stop_sequences(body)?,
        candidate_count: positive(body, "n")?,
        seed,
        presence_penalty: number(body, "presence_penalty")?,
        frequency_penalty: number(body, "frequency_penalty")?,
        response_mime_type,
        response_schema,
        thinking_config: thinking(body, model, request.thinking_budget)?,
    })
}

fn stop_sequences(body: &Obj) -> Result<Option<Vec<String>>, ProxyError> {
    let list: Vec<String> = input::stop(body)?
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((!list.is_empty()).then_some(list))
}

type ResponseFormat = (Option<&'static str>, Option<Value>);

fn response_format(body: &Obj, budget: &mut Budget) -> Result<ResponseFormat, ProxyError> {
    let Some(format) = body.field("response_format").filter(|f| !f.is_null()) else {
        return Ok((None, None));
    };
    match format.field("type").and_then(Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some("application/json"), None)),
        Some("json_schema") => {
            let schema = match format
                .field("json_schema")
                .and_then(|s| s.field("schema"))
                .filter(|s| s.is_object())
            {
                Some(s) => Some(schema::clean(s, true, budget).map_err(|_| {
                    too_large(
                        "The schema of `response_format`",
                        "response_format.json_schema.schema".to_owned(),
                    )
                })?),
                None => None,
            };
            Ok((Some("application/json"), schema))
        }
        _ => Err(invalid(
            "`response_format.type` must be text, json_object or json_schema.",
            "response_format",
        )),
    }
}

/// `reasoning_effort` → `thinkingConfig`: a `thinkingLevel` on Gemini 3, a `thinkingBudget`
/// before (LiteLLM's budgets; `none` turns thinking off where the model allows it). Thought
/// summaries are asked for whenever thinking is on, so they can be shown as
/// `reasoning_content`. Unknown efforts (the enum keeps growing) leave the model's default.
/// An exact `budget` (Anthropic's `budget_tokens`, through the Messages front door) is sent as
/// it is on models that take a budget, up to the model's maximum.
fn thinking(
    body: &Obj,
    model: &str,
    budget: Option<u32>,
) -> Result<Option<ThinkingConfig>, ProxyError> {
    let gemini_3 = is_gemini_3(model);
    let effort = match body.field("reasoning_effort") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(invalid(
                "`reasoning_effort` must be a string.",
                "reasoning_effort",
            ))
        }
    };
    let include_thoughts = (effort != "none").then_some(true);
    if gemini_3 {
        let level = match effort {
            "none" | "minimal" => "MINIMAL",
            "low" => "LOW",
            "medium" => "MEDIUM",
            "high" | "xhigh" | "max" => "HIGH",
            _ => return Ok(None),
        };
        return Ok(Some(ThinkingConfig {
            include_thoughts,
            thinking_budget: None,
            thinking_level: Some(level),
        }));
    }
    if let Some(budget) = budget.filter(|_| effort != "none") {
        return Ok(Some(ThinkingConfig {
            include_thoughts,
            thinking_budget: Some(budget.min(max_thinking_budget(model))),
            thinking_level: None,
        }));
    }
    let budget = match effort {
        "none" => 0,
        "minimal" => 128,
        "low" => 1024,
        "medium" => 2048,
        "high" => 4096,
        "xhigh" | "max" => 24_576,
        _ => return Ok(None),
    };
    Ok(Some(ThinkingConfig {
        include_thoughts,
        thinking_budget: Some(budget),
        thinking_level: None,
    }))
}

/// The largest `thinkingBudget` a model takes (Gemini thinking guide: 2.5 Pro 32,768; Flash
/// and Flash-Lite 24,576); a larger one is a 400.
fn max_thinking_budget(model: &str) -> u32 {
    if model.contains("pro") {
        32_768
    } else {
        24_576
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::Via;
    use crate::providers::test_support::invalid_request;

    fn target(model: &'static str, max_tokens: Option<u32>) -> Target {
        Target {
            provider: "google",
            model,
            base_url: "https://generativelanguage.googleapis.com",
            vias: &[Via::Key("GOOGLE_KEY_1")],
            max_tokens,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        }
    }

    fn convert_for(model: &'static str, request: Value) -> Result<Value, ProxyError> {
        let req = ChatRequest::parse(request.to_string().as_bytes()).unwrap();
        body(&target(model, None), &req).map(|r| serde_json::to_value(r).unwrap())
    }

    fn ok(request: Value) -> Value {
        convert_for("gemini-2.5-flash", request).unwrap()
    }

    fn err_param(request: Value) -> (String, String) {
        invalid_request(convert_for("gemini-2.5-flash", request))
    }

    #[test]
    fn a_plain_request_drops_openai_only_fields() {
        let out = ok(json!({
            "model": "g", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}],
            "logprobs": false, "logit_bias": {"1": 2}, "user": "u", "metadata": {"a": "b"},
            "parallel_tool_calls": false, "test_id": "t-1"
        }));
        assert_eq!(
            out.to_string(),
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#
        );
    }

    #[test]
    fn a_schema_that_fans_out_through_its_refs_is_a_400_naming_the_tool() {
        // Ten definitions, each referring to the next four times: 4^10 nodes once inlined, from
        // a schema of about 1.6 KB.
        let mut defs = serde_json::Map::new();
        for level in 0..10 {
            let next = json!({"$ref": format!("#/$defs/d{}", level + 1)});
            defs.insert(
                format!("d{level}"),
                json!({"type": "object", "description": "one level", "properties": {
                    "a": next, "b": next, "c": next, "d": next
                }}),
            );
        }
        defs.insert("d10".into(), json!({"type": "string"}));
        let schema = json!({"type": "object", "$defs": defs,
            "properties": {"root": {"$ref": "#/$defs/d0"}}});
        assert!(schema.to_string().len() < 2_000);
        let small = json!({"type": "object", "properties": {"q": {"type": "string"}}});
        let (param, message) = err_param(json!({"model": "g",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [
            {"type": "function", "function": {"name": "fine", "parameters": small}},
            {"type": "function", "function": {"name": "fan_out", "parameters": schema}}
        ]}));
        assert_eq!(param, "tools[1].function.parameters");
        assert!(message.contains("tool `fan_out`"), "{message}");
        // The same schema as the response format.
        let (param, _) = err_param(json!({"model": "g",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}));
        assert_eq!(param, "response_format.json_schema.schema");
    }

    #[test]
    fn outputs_gemini_cannot_give_back_are_unsupported_parameters() {
        for (field, value) in [
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("modalities", json!(["text", "audio"])),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
        ] {
            let mut request =
                json!({"model": "g", "messages": [{"role": "user", "content": "hi"}]});
            request[field] = value;
            let error = convert_for("gemini-2.5-flash", request).unwrap_err();
            let ProxyError::InvalidRequest {
                param,
                code,
                message,
            } = error
            else {
                panic!("{error:?}");
            };
            assert_eq!(
                (param.as_deref(), code),
                (Some(field), "unsupported_parameter")
            );
            assert!(message.contains("Gemini"), "{message}");
        }
        // What asks for nothing extra passes.
        ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "hi"}],
            "logprobs": false, "top_logprobs": 0, "modalities": ["text"], "audio": null}),
        );
    }

    #[test]
    fn the_gemini_md_example_request() {
        // gemini.md §2.5, from the equivalent OpenAI request.
        let out = ok(json!({"model": "g", "stream": true,
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture, and what's the weather there?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ..."}}
                ]}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_current_weather",
                "description": "Get the current weather in a given location",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"], "additionalProperties": false}
            }}],
            "tool_choice": "auto",
            "temperature": 0.7, "max_tokens": 1024, "stop": ["END"], "reasoning_effort": "none"
        }));
        assert_eq!(
            out,
            json!({
                "contents": [{"role": "user", "parts": [
                    {"text": "What is in this picture, and what's the weather there?"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRgABAQ..."}}
                ]}],
                "systemInstruction": {"parts": [{"text": "You are terse."}]},
                "tools": [{"functionDeclarations": [{
                    "name": "get_current_weather",
                    "description": "Get the current weather in a given location",
                    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
                }]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
                "generationConfig": {"maxOutputTokens": 1024, "temperature": 0.7, "stopSequences": ["END"],
                                     "thinkingConfig": {"thinkingBudget": 0}}
            })
        );
    }

    #[test]
    fn system_messages_anywhere_roles_and_merging() {
        let out = ok(json!({"model": "g", "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "a"},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric."}]},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "c"},
            {"role": "assistant", "content": [{"type": "text", "text": "d"}, {"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": ""}
        ]}));
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "Be terse."}, {"text": "Use metric."}]})
        );
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]}
            ])
        );
        let only_system =
            ok(json!({"model": "g", "messages": [{"role": "system", "content": "s"}]}));
        assert_eq!(
            only_system["contents"],
            json!([{"role": "user", "parts": [{"text": " "}]}])
        );
    }

    #[test]
    fn media_parts() {
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.JPG?size=2"}},
                {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
            ]}]}),
        );
        assert_eq!(
            out["contents"][0]["parts"],
            json!([
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/a/cat.JPG?size=2"}},
                {"inlineData": {"mimeType": "audio/wav", "data": "UklGR"}},
                {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
            ])
        );
        let (param, message) = err_param(
            json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/image?id=5"}}
            ]}]}),
        );
        assert_eq!(param, "messages[0].content[0].image_url.url");
        assert!(message.contains("base64 data URL"), "{message}");
        let (param, _) = err_param(
            json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "gs://bucket/a.png"}}
            ]}]}),
        );
        assert_eq!(param, "messages[0].content[0].image_url.url");
        let (param, _) = err_param(
            json!({"model": "g", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-abc"}}
            ]}]}),
        );
        assert_eq!(param, "messages[0].content[0].file");
    }

    #[test]
    fn tool_calls_results_and_the_signature_round_trip() {
        // Turn two of gemini.md §2.5: the id the proxy minted carries the signature back.
        let out = ok(json!({"model": "g", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_r1_0__thought__CiQB0e2Kb...", "type": "function",
                 "function": {"name": "get_current_weather", "arguments": "{\"location\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_r1_0__thought__CiQB0e2Kb...", "content": "{\"output\": {\"temp_c\": 12, \"sky\": \"cloudy\"}}"}
        ]}));
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_current_weather", "args": {"location": "Paris"}},
                                            "thoughtSignature": "CiQB0e2Kb..."}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_current_weather",
                                                                 "response": {"output": {"temp_c": 12, "sky": "cloudy"}}}}]}
            ])
        );
    }

    #[test]
    fn parallel_results_share_one_turn_and_plain_text_is_wrapped() {
        let out = ok(json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
                {"id": "b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "tool", "tool_call_id": "a", "content": "[1, 2]"},
            {"role": "user", "content": "thanks"}
        ]}));
        assert_eq!(
            out["contents"][1],
            json!({"role": "model", "parts": [
                {"text": "Checking."},
                {"functionCall": {"name": "get_weather", "args": {}}},
                {"functionCall": {"name": "get_time", "args": {}}}
            ]})
        );
        assert_eq!(
            out["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": [1, 2]}}},
                {"text": "thanks"}
            ]})
        );
    }

    #[test]
    fn unknown_tool_ids_and_bad_arguments_are_400s() {
        let (param, message) = err_param(json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "tool", "tool_call_id": "nope", "content": "x"}
        ]}));
        assert_eq!(param, "messages[1].tool_call_id");
        assert!(message.contains("`nope`"));
        let (param, _) = err_param(json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}
        ]}));
        assert_eq!(param, "messages[1].tool_calls[0].function.arguments");
        let (param, _) = err_param(json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}
        ]}));
        assert_eq!(param, "messages[1].tool_calls[0].function.arguments");
        // A legacy function message names itself.
        let out = ok(json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "function", "name": "f", "content": "done"}
        ]}));
        assert_eq!(
            out["contents"][0]["parts"][1],
            json!({"functionResponse": {"name": "f", "response": {"content": "done"}}})
        );
    }

    #[test]
    fn gemini_3_gets_the_sentinel_for_unsigned_history() {
        let request = json!({"model": "g", "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "1"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "2"}
        ]});
        let out = convert_for("gemini-3-pro-preview", request.clone()).unwrap();
        let parts = &out["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], SKIP_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        let out = ok(request);
        assert!(out["contents"][1]["parts"][0]
            .get("thoughtSignature")
            .is_none());
    }

    #[test]
    fn tools_are_cleaned_and_tool_choice_maps() {
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "does f", "strict": true,
                    "parameters": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "additionalProperties": false}}},
                {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}},
                {"type": "function", "function": {"name": "h"}},
                {"type": "function", "function": {"name": "i", "parameters": {}}}
            ],
            "tool_choice": "required"}),
        );
        assert_eq!(
            out["tools"],
            json!([{"functionDeclarations": [
                {"name": "f", "description": "does f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "nullable": true}}}},
                {"name": "g"},
                {"name": "h"},
                {"name": "i"}
            ]}])
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let choice = |tc: Value| {
            let mut req = json!({"model": "g", "messages": [{"role": "user", "content": "q"}], "tools": tools});
            if !tc.is_null() {
                req["tool_choice"] = tc;
            }
            ok(req).get("toolConfig").cloned()
        };
        assert_eq!(
            choice(json!("none")),
            Some(json!({"functionCallingConfig": {"mode": "NONE"}}))
        );
        assert_eq!(
            choice(json!("auto")),
            Some(json!({"functionCallingConfig": {"mode": "AUTO"}}))
        );
        assert_eq!(choice(Value::Null), None);
        assert_eq!(
            choice(json!({"type": "function", "function": {"name": "f"}})),
            Some(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}))
        );
        assert_eq!(
            choice(
                json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}})
            ),
            Some(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}))
        );
        let (param, _) = err_param(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}], "tools": tools, "tool_choice": "sometimes"}),
        );
        assert_eq!(param, "tool_choice");
        let (param, _) = err_param(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}],
            "tools": [{"type": "custom", "custom": {"name": "x"}}]}),
        );
        assert_eq!(param, "tools[0].type");
        // Without tools there is no toolConfig.
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}], "tool_choice": "none"}),
        );
        assert!(out.get("toolConfig").is_none() && out.get("tools").is_none());
    }

    #[test]
    fn generation_config_fields() {
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}],
            "max_tokens": 100, "max_completion_tokens": 200, "temperature": 1.5, "top_p": 0.9, "top_k": 40,
            "stop": "STOP", "n": 2, "seed": -7, "presence_penalty": 0.5, "frequency_penalty": -0.5,
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "strict": true,
                "schema": {"type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "integer"}}, "required": ["city"], "additionalProperties": false}}},
            "reasoning_effort": "high"}),
        );
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 200, "temperature": 1.5, "topP": 0.9, "topK": 40, "stopSequences": ["STOP"],
                   "candidateCount": 2, "seed": -7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                   "responseMimeType": "application/json",
                   "responseSchema": {"type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "integer"}},
                                      "required": ["city"], "propertyOrdering": ["city", "pop"]},
                   "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 4096}})
        );
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}],
            "response_format": {"type": "json_object"}, "stop": ["", "a"]}),
        );
        assert_eq!(
            out["generationConfig"],
            json!({"stopSequences": ["a"], "responseMimeType": "application/json"})
        );
        let out = convert_for(
            "gemini-3-flash-preview",
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}],
            "reasoning_effort": "low"}),
        )
        .unwrap();
        assert_eq!(
            out["generationConfig"]["thinkingConfig"],
            json!({"includeThoughts": true, "thinkingLevel": "LOW"})
        );
        let out = ok(
            json!({"model": "g", "messages": [{"role": "user", "content": "q"}], "reasoning_effort": "ultra"}),
        );
        assert!(out.get("generationConfig").is_none());
        let req =
            ChatRequest::parse(br#"{"model":"g","messages":[{"role":"user","content":"q"}]}"#)
                .unwrap();
        let out = serde_json::to_value(body(&target("gemini-2.5-flash", Some(512)), &req).unwrap())
            .unwrap();
        assert_eq!(out["generationConfig"], json!({"maxOutputTokens": 512}));
        for (field, value) in [
            ("max_tokens", json!(0)),
            ("temperature", json!("hot")),
            ("n", json!(0)),
            ("seed", json!(1.5)),
        ] {
            let mut req = json!({"model": "g", "messages": [{"role": "user", "content": "q"}]});
            req[field] = value;
            assert_eq!(err_param(req).0, field);
        }
    }
}
