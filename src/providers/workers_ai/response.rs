//! Workers AI output (any of the shapes of workers-ai.md §3) → OpenAI `chat.completion`: the
//! non-streaming translator, reading through [`super::output`].

use bytes::Bytes;
use serde_json::Value;

use super::output::{self, fnv, response_id, CallPiece, Calls, Output, Part};
use crate::core::completion::{
    self, Completion, CompletionChoice, FunctionCall, ResponseMessage, ToolCall,
};
use crate::core::usage::{Converted, MeteredWhole};
use crate::core::verdict::UpstreamError;

/// Parses a buffered whole answer (JSON output, or a REST envelope around one); the salt for
/// made-up ids is `seed` mixed with the body's bytes.
pub fn parse_whole(body: &[u8], seed: u64) -> Result<(Value, u64), UpstreamError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::truncated(format!("the Workers AI response is not complete JSON: {e}"))
    })?;
    Ok((value, fnv(seed, body)))
}

/// The `chat.completion` for a whole answer.
pub fn completion(
    answer: &Output<'_>,
    salt: u64,
    model: &str,
    created: u64,
    max_tokens: u32,
) -> Vec<u8> {
    let mut calls = Calls::new(salt);
    let tool_calls: Vec<ToolCall> = answer
        .calls
        .iter()
        .enumerate()
        .filter_map(|(n, entry)| match calls.entry(n, entry, Part::Whole)? {
            CallPiece::Start {
                id,
                name,
                arguments,
                ..
            } => Some(ToolCall {
                id,
                kind: "function",
                function: FunctionCall {
                    name: name.to_owned(),
                    arguments,
                },
            }),
            // Every entry of a whole answer is a whole call.
            CallPiece::More { .. } => None,
        })
        .collect();
    let finish = output::finish_reason(
        answer.finish,
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
    let id = response_id(answer.id, salt);
    let body = Completion::new(
        &id,
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

/// The non-streaming translator for `model`, stamping `created` (Unix seconds); made-up and
/// rewritten ids are salted with `seed`.
pub fn json_translator(
    model: &str,
    created: u64,
    max_tokens: u32,
    seed: u64,
) -> MeteredWhole<impl FnMut(&[u8]) -> Converted> {
    let model = model.to_owned();
    MeteredWhole::new(move |body: &[u8]| {
        let (value, salt) = parse_whole(body, seed)?;
        let answer = output::read(&value, Part::Whole)?;
        let usage = answer.usage.map(output::Usage::metered);
        let out = completion(&answer, salt, &model, created, max_tokens);
        Ok((Bytes::from(out), usage))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::Translate;
    use crate::core::usage::Metered;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/workers_ai/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn translate(body: &[u8]) -> Result<Value, UpstreamError> {
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

    #[test]
    fn usage_is_the_outputs_in_any_shape() {
        let metered = |body: &[u8]| {
            let mut t = json_translator("@cf/m", 1, 4096, 1);
            t.chunk(Bytes::copy_from_slice(body)).unwrap();
            let _ = t.end();
            t.usage()
        };
        assert_eq!(
            metered(&fixture("output_legacy.json")),
            Some(Metered::from_openai(12, 0, 3, 0))
        );
        assert_eq!(
            metered(&fixture("output_openai.json")),
            Some(Metered::from_openai(9, 0, 2, 0))
        );
        // REST's envelope around the binding's output.
        assert_eq!(
            metered(br#"{"result":{"response":"Hi there","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}},"success":true,"errors":[],"messages":[]}"#),
            Some(Metered::from_openai(3, 0, 2, 0))
        );
        let cached = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":12}}}"#;
        assert_eq!(
            metered(cached),
            Some(Metered {
                input: 36,
                cache_read: 64,
                cache_write: 0,
                output: 20,
                reasoning: 12,
            })
        );
        assert_eq!(metered(br#"{"response":"Hi"}"#), None);
    }
}
