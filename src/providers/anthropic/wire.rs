//! Serde types of what Anthropic sends back, read leniently: unknown block, delta and event
//! types are tolerated.

use serde::Deserialize;
use serde_json::Value;

use crate::core::completion::{self, PromptTokensDetails};

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
    },
    /// `redacted_thinking`, server tools, and anything newer.
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

/// One streaming event, by its `type` field.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
        #[serde(default)]
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
    #[serde(other)]
    Ignored,
}

/// `content_block_delta.delta`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    /// Text.
    TextDelta {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A fragment of a tool's JSON input.
    InputJsonDelta {
        /// The fragment.
        #[serde(default)]
        partial_json: String,
    },
    /// Reasoning text.
    ThinkingDelta {
        /// The text.
        #[serde(default)]
        thinking: String,
    },
    /// `signature_delta`, `citations_delta` and anything newer.
    #[serde(other)]
    Other,
}

/// `message_delta.delta`.
#[derive(Debug, Default, Deserialize)]
pub struct MessageDeltaBody {
    /// Why generation stopped.
    #[serde(default)]
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
