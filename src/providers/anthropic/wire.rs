//! Serde types of what Anthropic sends back, read leniently (unknown block, delta and event
//! types are tolerated), and of the Messages request the proxy writes, which borrows the
//! client's text, tool schemas and arguments rather than copying them.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::completion::{self, PromptTokensDetails};
use crate::core::usage::Metered;

// ----------------------------------------------------------------------------- Anthropic, read

/// A Messages API response (`Message`), also the `message` of `message_start`.
#[derive(Debug, Deserialize)]
pub struct Message {
    /// `msg_…`, reused as the OpenAI id.
    #[serde(default)]
    pub id: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Content blocks in order.
    #[serde(default)]
    pub content: Vec<Block>,
    /// Why generation stopped (null in `message_start`).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
    /// An error envelope's `error` (`{"type":"error","error":{...}}`), read in the same pass as
    /// the message; anything but an object reads as none.
    #[serde(default, deserialize_with = "crate::core::usage::lenient")]
    pub error: Option<ErrorBody>,
}

/// A response content block; types the proxy does not translate are kept as `Other`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Visible text.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A client tool call.
    ToolUse {
        /// `toolu_…`, kept as the OpenAI tool call id.
        #[serde(default)]
        id: String,
        /// The tool's name.
        #[serde(default)]
        name: String,
        /// The arguments object.
        #[serde(default)]
        input: Value,
    },
    /// Extended thinking, shown as `reasoning_content`.
    Thinking {
        /// The (summarised) reasoning.
        #[serde(default)]
        thinking: String,
        /// What Anthropic needs to see the block again in a later turn.
        #[serde(default)]
        signature: String,
    },
    /// Thinking Anthropic encrypted; it goes back as it came.
    RedactedThinking {
        /// The encrypted reasoning.
        #[serde(default)]
        data: String,
    },
    /// Server tools, and anything newer.
    #[serde(other)]
    Other,
}

/// Anthropic usage; every field optional because `message_delta` sends only what changed.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens (cumulative in streams).
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Overwrites the counts `newer` carries (stream usage is cumulative, not additive).
    pub fn merge(&mut self, newer: &Usage) {
        let pick = |old: &mut Option<u64>, new: Option<u64>| {
            if new.is_some() {
                *old = new;
            }
        };
        pick(&mut self.input_tokens, newer.input_tokens);
        pick(&mut self.output_tokens, newer.output_tokens);
        pick(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        pick(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
    }

    /// The native counts, for the meter; `None` when Anthropic reported none of them.
    pub fn metered(&self) -> Option<Metered> {
        let counts = [
            self.input_tokens,
            self.cache_read_input_tokens,
            self.cache_creation_input_tokens,
            self.output_tokens,
        ];
        counts.iter().any(Option::is_some).then(|| {
            let [input, cache_read, cache_write, output] = counts.map(|n| n.unwrap_or(0));
            Metered::from_anthropic(input, cache_read, cache_write, output)
        })
    }

    /// The OpenAI usage: all input (uncached + cache read + cache write) counts as prompt.
    pub fn to_openai(self) -> completion::Usage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + cached + self.cache_creation_input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        completion::Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
            // Anthropic counts thinking in output_tokens without a separate figure.
            completion_tokens_details: None,
        }
    }
}

/// One streaming event, by its `type` field (read with [`Event::parse`]).
#[derive(Debug)]
pub enum Event {
    /// The message envelope with empty content.
    MessageStart {
        /// The envelope.
        message: Message,
    },
    /// A block begins.
    ContentBlockStart {
        /// Anthropic's block index (counts every block type).
        index: u64,
        /// The block, with empty text/input.
        content_block: Block,
    },
    /// A piece of a block.
    ContentBlockDelta {
        /// Anthropic's block index.
        index: u64,
        /// The piece.
        delta: Delta,
    },
    /// The end of a message: stop reason and cumulative usage.
    MessageDelta {
        /// `stop_reason`, `stop_sequence`.
        delta: MessageDeltaBody,
        /// Cumulative usage.
        usage: Usage,
    },
    /// The message is complete.
    MessageStop,
    /// An error after the 200.
    Error {
        /// Anthropic's error object.
        error: ErrorBody,
    },
    /// `ping`, `content_block_stop` and event types added later: nothing to translate.
    Ignored,
}

/// `content_block_delta.delta`.
#[derive(Debug)]
pub enum Delta {
    /// Text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A fragment of a tool's JSON input.
    InputJsonDelta {
        /// The fragment.
        partial_json: String,
    },
    /// Reasoning text.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The signature that ends a thinking block.
    SignatureDelta {
        /// Anthropic's opaque signature.
        signature: String,
    },
    /// `citations_delta` and anything newer.
    Other,
}

/// Every field any event has, read in one pass: serde's internally tagged enums would first
/// buffer each event into a tree to find its `type`, which is most of an event's cost.
#[derive(Deserialize)]
struct AnyEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    index: Option<u64>,
    message: Option<Message>,
    content_block: Option<Block>,
    #[serde(borrow)]
    delta: Option<AnyDelta<'a>>,
    usage: Option<Usage>,
    error: Option<ErrorBody>,
}

/// Every field of `content_block_delta.delta` and `message_delta.delta`.
#[derive(Deserialize)]
struct AnyDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    signature: Option<Cow<'a, str>>,
    stop_reason: Option<String>,
}

impl Event {
    /// Reads an event's `data`. A field its type requires being absent is an error, as is a
    /// delta of a `content_block_delta` without a `type`.
    pub fn parse(data: &str) -> Result<Event, serde_json::Error> {
        use serde::de::Error;
        let missing = |field| serde_json::Error::missing_field(field);
        let event: AnyEvent<'_> = serde_json::from_str(data)?;
        let owned = |text: Option<Cow<'_, str>>| text.map(Cow::into_owned).unwrap_or_default();
        Ok(match event.kind.as_ref() {
            "message_start" => Event::MessageStart {
                message: event.message.ok_or_else(|| missing("message"))?,
            },
            "content_block_start" => Event::ContentBlockStart {
                index: event.index.ok_or_else(|| missing("index"))?,
                content_block: event
                    .content_block
                    .ok_or_else(|| missing("content_block"))?,
            },
            "content_block_delta" => {
                let delta = event.delta.ok_or_else(|| missing("delta"))?;
                Event::ContentBlockDelta {
                    index: event.index.ok_or_else(|| missing("index"))?,
                    delta: match delta.kind.ok_or_else(|| missing("type"))?.as_ref() {
                        "text_delta" => Delta::TextDelta {
                            text: owned(delta.text),
                        },
                        "input_json_delta" => Delta::InputJsonDelta {
                            partial_json: owned(delta.partial_json),
                        },
                        "thinking_delta" => Delta::ThinkingDelta {
                            thinking: owned(delta.thinking),
                        },
                        "signature_delta" => Delta::SignatureDelta {
                            signature: owned(delta.signature),
                        },
                        _ => Delta::Other,
                    },
                }
            }
            "message_delta" => Event::MessageDelta {
                delta: MessageDeltaBody {
                    stop_reason: event.delta.ok_or_else(|| missing("delta"))?.stop_reason,
                },
                usage: event.usage.unwrap_or_default(),
            },
            "message_stop" => Event::MessageStop,
            "error" => Event::Error {
                error: event.error.ok_or_else(|| missing("error"))?,
            },
            _ => Event::Ignored,
        })
    }
}

/// `message_delta.delta`.
#[derive(Debug, Default)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    pub stop_reason: Option<String>,
}

/// Anthropic's `error` object (`{"type","message"}`).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    /// `overloaded_error`, `rate_limit_error`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
}

/// The error envelope `{"type":"error","error":{...}}` of non-2xx bodies and `error` events.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

// ----------------------------------------------------------------------------- Anthropic, written

/// A Messages API request, its fields in the order the proxy has always written them.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    /// The upstream model.
    pub model: Cow<'a, str>,
    /// Required by Anthropic.
    pub max_tokens: u64,
    /// The system and developer messages' text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<Content<'a>>,
    /// Alternating user and assistant turns, opening with a user one.
    pub messages: Vec<Turn<'a>>,
    /// The client's function tools, then the JSON tool when JSON output was asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    /// `{"type": "auto" | "any" | "none" | "tool", ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `{"type": "enabled", "budget_tokens": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// 0–1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Only without a temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Non-blank stop sequences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
    /// `{"user_id": ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'a>>,
    /// Written only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// One turn of the conversation.
#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// Its blocks, never empty.
    pub content: Vec<Content<'a>>,
}

/// A content block of a request.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content<'a> {
    /// Text.
    Text {
        /// The text, as the client sent it.
        text: &'a str,
    },
    /// An image.
    Image {
        /// Where it is.
        source: Source<'a>,
    },
    /// A PDF.
    Document {
        /// Where it is.
        source: Source<'a>,
    },
    /// An assistant's tool call.
    ToolUse {
        /// The call's id, made to fit Anthropic's pattern.
        id: String,
        /// The function's name.
        name: &'a str,
        /// The parsed arguments.
        input: Value,
    },
    /// A tool's answer.
    ToolResult {
        /// The id of the call it answers.
        tool_use_id: String,
        /// Its output, left out when empty.
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ToolOutput<'a>>,
    },
    /// An earlier thinking block, sent back exactly as the client kept it.
    #[serde(untagged)]
    Kept(&'a Value),
}

/// Where an image or a document is.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source<'a> {
    /// Inline, from a data URL.
    Base64 {
        /// `image/png`, `application/pdf`, …
        media_type: &'a str,
        /// The base64 payload.
        data: &'a str,
    },
    /// Fetched by Anthropic.
    Url {
        /// The http(s) URL.
        url: &'a str,
    },
}

/// A tool result's content: one string, or text blocks.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ToolOutput<'a> {
    /// The client's string.
    Text(&'a str),
    /// The client's text parts.
    Blocks(Vec<Content<'a>>),
}

/// A function tool.
#[derive(Debug, Serialize)]
pub struct Tool<'a> {
    /// Its name.
    pub name: &'a str,
    /// What it does, if said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Its JSON Schema, whole: Anthropic accepts JSON Schema 2020-12 as it is.
    pub input_schema: Cow<'a, Value>,
}

/// The request's `metadata`.
#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    /// An opaque id for the end user.
    pub user_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_by_type_and_need_their_fields() {
        let text = Event::parse(
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Hi \"you\""}}"#,
        )
        .unwrap();
        assert!(
            matches!(text, Event::ContentBlockDelta { index: 2, delta: Delta::TextDelta { text } } if text == "Hi \"you\"")
        );
        let signature = Event::parse(
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
        )
        .unwrap();
        assert!(matches!(
            signature,
            Event::ContentBlockDelta {
                delta: Delta::SignatureDelta { signature },
                ..
            } if signature == "x"
        ));
        let stop = Event::parse(
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        )
        .unwrap();
        assert!(
            matches!(stop, Event::MessageDelta { delta, usage } if delta.stop_reason.as_deref() == Some("end_turn") && usage.output_tokens == Some(15))
        );
        assert!(matches!(
            Event::parse(r#"{"type":"ping"}"#).unwrap(),
            Event::Ignored
        ));
        assert!(matches!(
            Event::parse(r#"{"type":"brand_new","delta":{"anything":[1]}}"#).unwrap(),
            Event::Ignored
        ));
        for broken in [
            r#"{"type":"content_block_delta","index":0}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"text":"no type"}}"#,
            r#"{"type":"message_start"}"#,
            r#"{"type":"error"}"#,
            r#"{"index":0}"#,
        ] {
            assert!(Event::parse(broken).is_err(), "{broken}");
        }
    }
}
