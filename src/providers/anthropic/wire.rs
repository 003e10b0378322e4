//! Serde types of both sides: what Anthropic sends back (read leniently, unknown block, delta
//! and event types tolerated) and the OpenAI shapes the client gets (written with the field
//! order and presence rules of the OpenAI schema).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub fn to_openai(self) -> OpenAiUsage {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt =
            self.input_tokens.unwrap_or(0) + cached + self.cache_creation_input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        OpenAiUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: cached,
            },
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

// ----------------------------------------------------------------------------- OpenAI, written

/// `CompletionUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OpenAiUsage {
    /// All input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// The cached share of `prompt_tokens`.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Tokens read from the prompt cache.
    pub cached_tokens: u64,
}

/// `chat.completion`.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    /// Response id.
    pub id: &'a str,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The upstream model.
    pub model: &'a str,
    /// Exactly one choice.
    pub choices: [CompletionChoice<'a>; 1],
    /// Token counts.
    pub usage: OpenAiUsage,
}

/// A `chat.completion` choice; `logprobs` is required by the schema, hence always written.
#[derive(Debug, Serialize)]
pub struct CompletionChoice<'a> {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: ResponseMessage<'a>,
    /// Always null.
    pub logprobs: Option<()>,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: &'static str,
}

/// `ChatCompletionResponseMessage`; `content` and `refusal` are required even when null.
#[derive(Debug, Serialize)]
pub struct ResponseMessage<'a> {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text, or null when there is none.
    pub content: Option<String>,
    /// Always null (refusals surface as `finish_reason: content_filter`).
    pub refusal: Option<()>,
    /// Tool calls, omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall<'a>>,
    /// Thinking text, omitted when none (the field other gateways use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

/// `ChatCompletionMessageToolCall`.
#[derive(Debug, Serialize)]
pub struct ToolCall<'a> {
    /// The `toolu_…` id.
    pub id: &'a str,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name and JSON-encoded arguments.
    pub function: FunctionCall<'a>,
}

/// A complete function call.
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    /// The tool name.
    pub name: &'a str,
    /// The input object serialised.
    pub arguments: String,
}

/// `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// Same on every chunk.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Same on every chunk.
    pub created: u64,
    /// Same on every chunk.
    pub model: &'a str,
    /// One choice, or none on the usage chunk.
    pub choices: &'a [ChunkChoice<'a>],
    /// Absent without `include_usage`; with it, null except on the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<OpenAiUsage>>,
}

/// A chunk choice.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// Always 0.
    pub index: u32,
    /// What this chunk adds.
    pub delta: ChunkDelta<'a>,
    /// Always null.
    pub logprobs: Option<()>,
    /// Null until the finish chunk.
    pub finish_reason: Option<&'static str>,
}

/// `ChatCompletionStreamResponseDelta`: only the fields a chunk carries are written.
#[derive(Debug, Default, Serialize)]
pub struct ChunkDelta<'a> {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// A text piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// A thinking piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// One tool call fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// `ChatCompletionMessageToolCallChunk`.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    /// The call's position among this response's tool calls.
    pub index: u32,
    /// Only on the call's first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function`, only on the first fragment.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name (first fragment) and an arguments piece.
    pub function: FunctionDelta<'a>,
}

/// A function call fragment.
#[derive(Debug, Serialize)]
pub struct FunctionDelta<'a> {
    /// Only on the first fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// The next piece of the JSON arguments (`""` on the first fragment).
    pub arguments: &'a str,
}
