//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`, and the non-streaming body
//! translator.

use bytes::Bytes;

use crate::core::completion::{
    self, Completion, CompletionChoice, FunctionCall, ResponseMessage, ToolCall,
};
use crate::core::usage::{Converted, MeteredWhole};
use crate::core::verdict::UpstreamError;

use super::ids::{completion_id, IdMinter};
use super::wire::{Response, UsageMetadata};
use super::{finish_reason, in_band_error};

/// The `refusal` text for a prompt Gemini blocked, if it did.
pub fn block_refusal(response: &Response) -> Option<String> {
    let feedback = response.prompt_feedback.as_ref()?;
    let reason = feedback.block_reason.as_deref()?;
    Some(match feedback.block_reason_message.as_deref() {
        Some(message) if !message.is_empty() => {
            format!("Gemini blocked the prompt ({reason}): {message}")
        }
        _ => format!("Gemini blocked the prompt ({reason})."),
    })
}

/// The `chat.completion` JSON for `response`, or the error it stands for. A blocked prompt is
/// a `content_filter` answer whose `refusal` says why (mapping.md §5), never an empty `stop`.
pub fn completion(
    response: &Response,
    created: u64,
    fallback_model: &str,
) -> Result<Vec<u8>, UpstreamError> {
    if let Some(error) = &response.error {
        return Err(in_band_error(error));
    }
    let mut ids = IdMinter::new(created);
    let rid = response.response_id.as_deref();
    let mut choices: Vec<CompletionChoice> = Vec::new();
    for (position, candidate) in response.candidates.iter().enumerate() {
        let mut content: Option<String> = None;
        let mut reasoning: Option<String> = None;
        let mut tool_calls = Vec::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if let Some(call) = &part.function_call {
                tool_calls.push(ToolCall {
                    id: ids.id(rid, call.id.as_deref(), part.thought_signature.as_deref()),
                    kind: "function",
                    function: FunctionCall {
                        name: call.name.clone(),
                        arguments: arguments(&call.args),
                    },
                });
            } else if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
                let target = if part.thought == Some(true) {
                    &mut reasoning
                } else {
                    &mut content
                };
                target.get_or_insert_with(String::new).push_str(text);
            }
        }
        let finish = finish_reason(candidate.finish_reason.as_deref(), !tool_calls.is_empty());
        choices.push(CompletionChoice::new(
            candidate.index.unwrap_or(position as u32),
            ResponseMessage::assistant(content, tool_calls, reasoning),
            finish,
        ));
    }
    if choices.is_empty() {
        let Some(refusal) = block_refusal(response) else {
            return Err(UpstreamError::truncated(
                "Gemini answered without any candidate",
            ));
        };
        let message = ResponseMessage {
            refusal: Some(refusal),
            ..ResponseMessage::assistant(None, Vec::new(), None)
        };
        choices.push(CompletionChoice::new(0, message, "content_filter"));
    }
    choices.sort_by_key(|c| c.index);
    let id = completion_id(rid, created);
    let body = Completion::new(
        &id,
        created,
        response.model_version.as_deref().unwrap_or(fallback_model),
        choices,
        response.usage_metadata.unwrap_or_default().to_openai(),
    );
    Ok(completion::to_json(&body))
}

/// A call's `args` as OpenAI's JSON-encoded `arguments` (`{}` when Gemini sent none).
pub fn arguments(args: &serde_json::Value) -> String {
    if args.is_null() {
        "{}".to_owned()
    } else {
        args.to_string()
    }
}

/// The non-streaming translator: the whole response becomes the whole `chat.completion`;
/// `model` names the model when Gemini does not. Its usage is the response's `usageMetadata`.
pub fn json_translator(created: u64, model: &str) -> MeteredWhole<impl FnMut(&[u8]) -> Converted> {
    let model = model.to_owned();
    MeteredWhole::new(move |body: &[u8]| {
        let response: Response = serde_json::from_slice(body).map_err(|e| {
            UpstreamError::truncated(format!(
                "the upstream response is not a complete Gemini response: {e}"
            ))
        })?;
        let usage = response.usage_metadata.as_ref().map(UsageMetadata::metered);
        let out = completion(&response, created, &model)?;
        Ok((Bytes::from(out), usage))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::Translate;
    use crate::core::usage::Metered;
    use serde_json::{json, Value};

    fn translate(body: &str) -> Result<Value, UpstreamError> {
        let mut t = json_translator(1_700_000_000, "gemini-fallback");
        // Fed in two pieces: nothing is emitted before the end.
        let (a, b) = body.split_at(body.len() / 2);
        assert!(t.chunk(Bytes::from(a.to_owned()))?.is_empty());
        assert!(t.chunk(Bytes::from(b.to_owned()))?.is_empty());
        Ok(serde_json::from_slice(&t.end()?).unwrap())
    }

    #[test]
    fn text_response_exactly() {
        let out = translate(include_str!("../../../tests/fixtures/google/text.json")).unwrap();
        assert_eq!(
            out.to_string(),
            r#"{"id":"chatcmpl-JPozaonvK7yzvdIPrJ7FyAk","object":"chat.completion","created":1700000000,"model":"gemini-2.5-flash","choices":[{"index":0,"message":{"role":"assistant","content":"A wooden boardwalk through a meadow.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}"#
        );
    }

    #[test]
    fn a_function_call_with_stop_is_tool_calls_with_the_signature_in_the_id() {
        let out = translate(include_str!(
            "../../../tests/fixtures/google/function_call.json"
        ))
        .unwrap();
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(
            call["function"],
            json!({"name": "get_current_weather", "arguments": "{\"location\":\"Paris\"}"})
        );
        assert_eq!(call["type"], "function");
        let id = call["id"].as_str().unwrap();
        assert!(
            id.starts_with("call_") && id.ends_with("__thought__CiQB0e2Kb..."),
            "{id}"
        );
        // Thoughts count as completion tokens and are shown as reasoning tokens.
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 107, "completion_tokens": 179, "total_tokens": 286,
                   "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 148}})
        );
        assert_eq!(out["model"], "gemini-2.5-flash");
    }

    #[test]
    fn parallel_calls_get_distinct_ids_and_thoughts_are_reasoning() {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Thinking about weather.", "thought": true},
            {"text": "Checking."},
            {"functionCall": {"name": "get_current_weather", "args": {"location": "Paris"}}, "thoughtSignature": "sig"},
            {"functionCall": {"name": "get_current_weather", "args": {"location": "London"}}},
            {"functionCall": {"name": "now"}}
        ]}, "finishReason": "STOP", "index": 0}]});
        let out = translate(&body.to_string()).unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "Checking.");
        assert_eq!(message["reasoning_content"], "Thinking about weather.");
        let calls = message["tool_calls"].as_array().unwrap();
        let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 3);
        assert!(
            ids[0].ends_with("_0__thought__sig")
                && ids[1].ends_with("_1")
                && ids[2].ends_with("_2"),
            "{ids:?}"
        );
        assert_eq!(calls[2]["function"]["arguments"], "{}");
        // No modelVersion: the target's model names the answer.
        assert_eq!(out["model"], "gemini-fallback");
        assert_eq!(out["usage"]["total_tokens"], 0);
    }

    #[test]
    fn finish_reasons_and_several_candidates() {
        let body = json!({"candidates": [
            {"content": {"role": "model", "parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS", "index": 1},
            {"content": {"role": "model", "parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
            {"finishReason": "SAFETY", "index": 2}
        ]});
        let out = translate(&body.to_string()).unwrap();
        let got: Vec<(Value, Value, Value)> = out["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["index"].clone(),
                    c["message"]["content"].clone(),
                    c["finish_reason"].clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (json!(0), json!("a"), json!("stop")),
                (json!(1), json!("b"), json!("length")),
                (json!(2), Value::Null, json!("content_filter")),
            ]
        );
    }

    #[test]
    fn a_blocked_prompt_is_content_filter_with_a_refusal_not_an_empty_success() {
        let out = translate(include_str!(
            "../../../tests/fixtures/google/prompt_blocked.json"
        ))
        .unwrap();
        assert_eq!(
            out["choices"][0],
            json!({"index": 0, "message": {"role": "assistant", "content": null,
                    "refusal": "Gemini blocked the prompt (SAFETY)."},
                   "logprobs": null, "finish_reason": "content_filter"})
        );
        assert_eq!(out["usage"]["prompt_tokens"], 8);
    }

    #[test]
    fn an_error_body_or_garbage_fails_the_attempt() {
        let e = translate(
            r#"{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}"#,
        )
        .unwrap_err();
        assert_eq!((e.status, e.error.kind.as_str()), (429, "rate_limit_error"));
        assert_eq!(translate(r#"{"candidates":["#).unwrap_err().status, 502);
        assert_eq!(translate(r#"{"candidates":[]}"#).unwrap_err().status, 502);
    }

    #[test]
    fn usage_is_the_responses_usage_metadata() {
        let metered = |body: &str| {
            let mut t = json_translator(1_700_000_000, "gemini-fallback");
            t.chunk(Bytes::from(body.to_owned())).unwrap();
            let _ = t.end();
            t.usage()
        };
        assert_eq!(
            metered(include_str!("../../../tests/fixtures/google/text.json")),
            Some(Metered::from_gemini(19, 0, 9, 0))
        );
        assert_eq!(
            metered(include_str!(
                "../../../tests/fixtures/google/function_call.json"
            )),
            Some(Metered::from_gemini(107, 0, 31, 148))
        );
        let cached = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"ok"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1000,"cachedContentTokenCount":600,"toolUsePromptTokenCount":50,"candidatesTokenCount":5,"thoughtsTokenCount":20,"totalTokenCount":1075}}"#;
        let m = metered(cached).unwrap();
        assert_eq!(
            (m.input, m.cache_read, m.output, m.reasoning),
            (450, 600, 25, 20)
        );
        assert_eq!(m.total(), 1075);
        assert_eq!(
            metered(
                r#"{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}]}"#
            ),
            None
        );
    }
}
