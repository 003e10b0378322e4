//! Anthropic `Message` → OpenAI `chat.completion`, and the non-streaming body translator.

use bytes::Bytes;

use crate::core::completion::{
    self, Completion, CompletionChoice, FunctionCall, ResponseMessage, ThinkingBlock, ToolCall,
};
use crate::core::usage::{Converted, MeteredWhole};
use crate::core::verdict::UpstreamError;

use super::wire::{Block, ErrorEnvelope, Message};
use super::{finish_reason, in_band_error, JSON_TOOL};

/// The `chat.completion` JSON for `message`. In JSON mode the JSON tool's input is the content.
pub fn completion(message: &Message, created: u64, json_mode: bool) -> Vec<u8> {
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    let mut json_answer = false;
    for block in &message.content {
        match block {
            Block::Text { text } => content.get_or_insert_with(String::new).push_str(text),
            Block::Thinking {
                thinking,
                signature,
            } => {
                reasoning.get_or_insert_with(String::new).push_str(thinking);
                if !signature.is_empty() {
                    thinking_blocks.push(ThinkingBlock::Thinking {
                        thinking: thinking.clone(),
                        signature: signature.clone(),
                    });
                }
            }
            Block::RedactedThinking { data } => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking { data: data.clone() })
            }
            Block::ToolUse { name, input, .. } if json_mode && name == JSON_TOOL => {
                // The structured answer replaces any text said around it.
                json_answer = true;
                content = Some(input.to_string());
            }
            Block::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id: id.clone(),
                kind: "function",
                function: FunctionCall {
                    name: name.clone(),
                    arguments: if input.is_null() {
                        "{}".to_owned()
                    } else {
                        input.to_string()
                    },
                },
            }),
            Block::Other => {}
        }
    }
    let finish = finish_reason(
        message.stop_reason.as_deref(),
        !tool_calls.is_empty(),
        json_answer,
    );
    let mut answer = ResponseMessage::assistant(content, tool_calls, reasoning);
    answer.thinking_blocks = thinking_blocks;
    let body = Completion::new(
        &message.id,
        created,
        &message.model,
        vec![CompletionChoice::new(0, answer, finish)],
        message.usage.to_openai(),
    );
    completion::to_json(&body)
}

/// The non-streaming translator: the whole `Message` becomes the whole `chat.completion`; an
/// error envelope in a 200 body is an in-band failure. Its usage is the message's.
pub fn json_translator(
    created: u64,
    json_mode: bool,
) -> MeteredWhole<impl FnMut(&[u8]) -> Converted> {
    MeteredWhole::new(move |body: &[u8]| {
        // One pass reads a message or an error envelope; a body that is neither as a whole may
        // still carry an error envelope's `error`.
        let message = match serde_json::from_slice::<Message>(body) {
            Ok(Message {
                error: Some(error), ..
            }) => return Err(in_band_error(&error)),
            Ok(message) => message,
            Err(e) => {
                return Err(match serde_json::from_slice::<ErrorEnvelope>(body) {
                    Ok(envelope) => in_band_error(&envelope.error),
                    Err(_) => UpstreamError::truncated(format!(
                        "the upstream response is not a complete Anthropic message: {e}"
                    )),
                })
            }
        };
        let usage = message.usage.metered();
        Ok((Bytes::from(completion(&message, created, json_mode)), usage))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::stream::Translate;
    use crate::core::usage::Metered;
    use serde_json::{json, Value};

    fn translate(body: &str, json_mode: bool) -> Result<Value, UpstreamError> {
        let mut t = json_translator(1_700_000_000, json_mode);
        // Fed in two pieces: nothing is emitted before the end.
        let (a, b) = body.split_at(body.len() / 2);
        assert!(t.chunk(Bytes::from(a.to_owned()))?.is_empty());
        assert!(t.chunk(Bytes::from(b.to_owned()))?.is_empty());
        Ok(serde_json::from_slice(&t.end()?).unwrap())
    }

    #[test]
    fn text_message_exactly() {
        let out = translate(
            include_str!("../../../tests/fixtures/anthropic/text.json"),
            false,
        )
        .unwrap();
        assert_eq!(
            out.to_string(),
            r#"{"id":"msg_4QpJur2dWWDjF6C758FbBw5vm12BaVipnK","object":"chat.completion","created":1700000000,"model":"claude-3-opus-latest","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":6,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0}}}"#
        );
    }

    #[test]
    fn tool_use_message_keeps_the_id_and_serialises_the_input() {
        let out = translate(
            include_str!("../../../tests/fixtures/anthropic/tool_use.json"),
            false,
        )
        .unwrap();
        assert_eq!(
            out["choices"][0],
            json!({"index": 0, "message": {
                "role": "assistant",
                "content": "I'll check the current weather in Paris for you.",
                "refusal": null,
                "tool_calls": [{"id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]
            }, "logprobs": null, "finish_reason": "tool_calls"})
        );
        assert_eq!(out["usage"]["total_tokens"], json!(442));
    }

    #[test]
    fn thinking_goes_to_reasoning_content_and_cache_tokens_to_the_prompt() {
        let out = translate(
            include_str!("../../../tests/fixtures/anthropic/thinking.json"),
            false,
        )
        .unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], "The GCD is 21.");
        assert_eq!(message["reasoning_content"], "I need to find the GCD...");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 80, "completion_tokens": 120, "total_tokens": 200,
                   "prompt_tokens_details": {"cached_tokens": 30}})
        );
    }

    #[test]
    fn no_text_is_null_content_and_stop_reasons_map() {
        for (reason, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("refusal", "content_filter"),
            ("something_new", "stop"),
        ] {
            let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [], "stop_reason": reason, "usage": {"input_tokens": 1, "output_tokens": 0}});
            let out = translate(&body.to_string(), false).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], finish, "{reason}");
            assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
            assert!(out["choices"][0]["message"]
                .as_object()
                .unwrap()
                .contains_key("refusal"));
        }
    }

    #[test]
    fn json_mode_turns_the_tool_input_into_content_with_stop() {
        let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 7}});
        let out = translate(&body.to_string(), true).unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        assert!(out["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn an_error_body_or_garbage_fails_the_attempt() {
        let e = translate(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!((e.status, e.error.kind.as_str()), (529, "overloaded_error"));
        let e = translate(r#"{"id":"msg_1","content":["#, false).unwrap_err();
        assert_eq!(e.status, 502);
        // Not a message, but an error envelope's `error` all the same.
        let e = translate(
            r#"{"content":5,"error":{"type":"rate_limit_error","message":"slow down"}}"#,
            false,
        )
        .unwrap_err();
        assert_eq!((e.status, e.error.kind.as_str()), (429, "rate_limit_error"));
        // An `error` that is not an object is not an envelope: the message is read as before.
        let out = translate(
            r#"{"id":"msg_1","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","error":null}"#,
            false,
        )
        .unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "hi");
    }

    #[test]
    fn usage_is_the_messages_own_counts() {
        let metered = |body: &str| {
            let mut t = json_translator(1_700_000_000, false);
            t.chunk(Bytes::from(body.to_owned())).unwrap();
            let _ = t.end();
            t.usage()
        };
        assert_eq!(
            metered(include_str!("../../../tests/fixtures/anthropic/text.json")),
            Some(Metered::from_anthropic(11, 0, 0, 6))
        );
        // 40 uncached, 30 read from the cache, 10 written to it: 80 in all.
        let cached = metered(include_str!(
            "../../../tests/fixtures/anthropic/thinking.json"
        ));
        assert_eq!(cached, Some(Metered::from_anthropic(40, 30, 10, 120)));
        assert_eq!(cached.map(|m| m.total_input()), Some(80));
        assert_eq!(
            metered(r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#),
            None
        );
    }
}
