//! The OpenAI `chat.completion` and `chat.completion.chunk` shapes that translating providers
//! write: one set of types, so every provider answers in exactly the same shape.
//!
//! Field order and nullability follow the official OpenAPI schema (`CreateChatCompletionResponse`,
//! `CreateChatCompletionStreamResponse`): fields the schema requires are always written, even
//! when null; optional ones are omitted when empty.

use bytes::Bytes;
use serde::Serialize;

/// `CompletionUsage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens, thinking included.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// The cached share of `prompt_tokens`.
    pub prompt_tokens_details: PromptTokensDetails,
    /// The thinking share of `completion_tokens`, where the provider reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Tokens read from the provider's prompt cache.
    pub cached_tokens: u64,
}

/// `completion_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompletionTokensDetails {
    /// Thinking tokens.
    pub reasoning_tokens: u64,
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
    /// One per candidate.
    pub choices: Vec<CompletionChoice>,
    /// Token counts.
    pub usage: Usage,
}

impl<'a> Completion<'a> {
    /// A `chat.completion` with these choices.
    pub fn new(
        id: &'a str,
        created: u64,
        model: &'a str,
        choices: Vec<CompletionChoice>,
        usage: Usage,
    ) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices,
            usage,
        }
    }
}

/// A `chat.completion` choice; `logprobs` is required by the schema, hence always written.
#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    /// The candidate's index.
    pub index: u32,
    /// The answer.
    pub message: ResponseMessage,
    /// Always null.
    pub logprobs: Option<()>,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: &'static str,
}

/// `ChatCompletionResponseMessage`; `content` and `refusal` are required even when null.
#[derive(Debug, Serialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text, or null when there is none.
    pub content: Option<String>,
    /// Why the provider refused, when it says so; otherwise null.
    pub refusal: Option<String>,
    /// Tool calls, omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Thinking text, omitted when none (the field other gateways use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Anthropic's thinking blocks with their signatures, omitted when none (LiteLLM's field):
    /// a client sends them back on the assistant message so a tool loop keeps its thinking.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
}

/// One signed thinking block (`thinking_blocks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    /// Thinking text and its signature.
    Thinking {
        /// The text.
        thinking: String,
        /// Anthropic's signature.
        signature: String,
    },
    /// Encrypted thinking.
    RedactedThinking {
        /// The encrypted text.
        data: String,
    },
}

impl CompletionChoice {
    /// Choice `index`: `message`, ended for `finish_reason`.
    pub fn new(index: u32, message: ResponseMessage, finish_reason: &'static str) -> Self {
        Self {
            index,
            message,
            logprobs: None,
            finish_reason,
        }
    }
}

impl ResponseMessage {
    /// The assistant's answer, without a refusal.
    pub fn assistant(
        content: Option<String>,
        tool_calls: Vec<ToolCall>,
        reasoning_content: Option<String>,
    ) -> Self {
        Self {
            role: "assistant",
            content,
            refusal: None,
            tool_calls,
            reasoning_content,
            thinking_blocks: Vec::new(),
        }
    }
}

/// `ChatCompletionMessageToolCall`.
#[derive(Debug, Serialize)]
pub struct ToolCall {
    /// The call's id, as the client must send it back with the result.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name and JSON-encoded arguments.
    pub function: FunctionCall,
}

/// A complete function call.
#[derive(Debug, Serialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments object, serialised.
    pub arguments: String,
}

/// The start of every `chat.completion.chunk` of a stream, up to its `choices`:
/// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,`. Written once per id and
/// model rather than serialised again for every event.
#[derive(Debug, Default)]
struct ChunkHead {
    bytes: Vec<u8>,
    id: String,
    model: String,
}

impl ChunkHead {
    /// The head for `id` and `model`, made again only when either changed.
    fn get(&mut self, id: &str, created: u64, model: &str) -> &[u8] {
        if self.bytes.is_empty() || self.id != id || self.model != model {
            self.bytes.clear();
            self.bytes.extend_from_slice(b"{\"id\":");
            // Serialising a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.bytes, id);
            self.bytes
                .extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
            self.bytes.extend_from_slice(created.to_string().as_bytes());
            self.bytes.extend_from_slice(b",\"model\":");
            let _ = serde_json::to_writer(&mut self.bytes, model);
            self.bytes.push(b',');
            id.clone_into(&mut self.id);
            model.clone_into(&mut self.model);
        }
        &self.bytes
    }
}

/// A chunk choice.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    /// The candidate's index.
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
    /// Why the provider refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<&'a str>,
    /// A thinking piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// One tool call fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    /// A whole signed thinking block, once its signature has come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<[&'a ThinkingBlock; 1]>,
}

/// `ChatCompletionMessageToolCallChunk`.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    /// The call's position among this choice's tool calls.
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
    /// The next piece of the JSON arguments (`""` on a first fragment that has none yet).
    pub arguments: &'a str,
}

/// The SSE output of one translated stream: every chunk carries the same id, `created` and
/// model and, when the client asked for usage, `usage: null` until the final usage chunk. Each
/// choice's first chunk is preceded by its role chunk (`role: "assistant"`, `content: ""`), so
/// nothing is written for a choice before it has something to say: an upstream error that comes
/// first still fails over, because no byte has reached the client.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    /// The response id on every chunk (set once the upstream names it).
    pub id: String,
    /// The model on every chunk.
    pub model: String,
    created: u64,
    include_usage: bool,
    /// The choices whose role chunk has been written.
    started: Vec<u32>,
    head: ChunkHead,
    out: Vec<u8>,
}

impl ChunkWriter {
    /// A writer stamping `created` (Unix seconds); `include_usage` is the client's
    /// `stream_options.include_usage`.
    pub fn new(created: u64, include_usage: bool) -> Self {
        Self {
            created,
            include_usage,
            ..Self::default()
        }
    }

    /// A text piece of choice `choice`; an empty one writes nothing.
    pub fn content(&mut self, choice: u32, text: &str) {
        if !text.is_empty() {
            self.delta(
                choice,
                ChunkDelta {
                    content: Some(text),
                    ..ChunkDelta::default()
                },
            );
        }
    }

    /// A thinking piece of choice `choice`; an empty one writes nothing.
    pub fn reasoning(&mut self, choice: u32, text: &str) {
        if !text.is_empty() {
            self.delta(
                choice,
                ChunkDelta {
                    reasoning_content: Some(text),
                    ..ChunkDelta::default()
                },
            );
        }
    }

    /// A whole signed thinking block of choice `choice`.
    pub fn thinking_block(&mut self, choice: u32, block: &ThinkingBlock) {
        self.delta(
            choice,
            ChunkDelta {
                thinking_blocks: Some([block]),
                ..ChunkDelta::default()
            },
        );
    }

    /// Why the provider refused, for choice `choice`; an empty one writes nothing.
    pub fn refusal(&mut self, choice: u32, text: &str) {
        if !text.is_empty() {
            self.delta(
                choice,
                ChunkDelta {
                    refusal: Some(text),
                    ..ChunkDelta::default()
                },
            );
        }
    }

    /// A fragment of tool call `call` of choice `choice`: the first one carries `id` and
    /// `name` (and `type: "function"`), every one a piece of the JSON `arguments`.
    pub fn tool_call(
        &mut self,
        choice: u32,
        call: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        self.delta(
            choice,
            ChunkDelta {
                tool_calls: Some([ToolCallDelta {
                    index: call,
                    id,
                    kind: id.map(|_| "function"),
                    function: FunctionDelta { name, arguments },
                }]),
                ..ChunkDelta::default()
            },
        );
    }

    /// Choice `choice`'s finish chunk (empty delta, `finish_reason` set).
    pub fn finish(&mut self, choice: u32, reason: &'static str) {
        self.write_choice(choice, ChunkDelta::default(), Some(reason));
    }

    /// The usage chunk (`choices: []`), written only when the client asked for usage.
    pub fn usage(&mut self, usage: Usage) {
        if self.include_usage {
            self.write(&[], Some(Some(usage)));
        }
    }

    /// The stream's last event, `data: [DONE]`.
    pub fn done(&mut self) {
        self.out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// What was written since the last call.
    pub fn take(&mut self) -> Bytes {
        if self.out.is_empty() {
            return Bytes::new();
        }
        // The next chunk starts at the size of this one: grown from nothing, a chunk's few
        // hundred bytes cost half a dozen reallocations.
        let next = Vec::with_capacity(self.out.len().clamp(64, 1024));
        Bytes::from(std::mem::replace(&mut self.out, next))
    }

    fn delta(&mut self, choice: u32, delta: ChunkDelta<'_>) {
        self.write_choice(choice, delta, None);
    }

    /// One chunk for `choice`, preceded by its role chunk if it is still owed.
    fn write_choice(&mut self, choice: u32, delta: ChunkDelta<'_>, finish: Option<&'static str>) {
        if !self.started.contains(&choice) {
            self.started.push(choice);
            let role = ChunkDelta {
                role: Some("assistant"),
                content: Some(""),
                ..ChunkDelta::default()
            };
            self.write_one(choice, role, None);
        }
        self.write_one(choice, delta, finish);
    }

    fn write_one(
        &mut self,
        index: u32,
        delta: ChunkDelta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        };
        self.write(&[choice], self.include_usage.then_some(None));
    }

    /// One `chat.completion.chunk` event; `usage` is absent without `include_usage`, and with
    /// it null except on the usage chunk.
    fn write(&mut self, choices: &[ChunkChoice<'_>], usage: Option<Option<Usage>>) {
        self.out.extend_from_slice(b"data: ");
        let head = self.head.get(&self.id, self.created, &self.model);
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(b"\"choices\":");
        // Serialising these plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.out, choices);
        if let Some(usage) = usage {
            self.out.extend_from_slice(b",\"usage\":");
            let _ = serde_json::to_writer(&mut self.out, &usage);
        }
        self.out.extend_from_slice(b"}\n\n");
    }
}

/// The whole `chat.completion` document.
pub fn to_json(completion: &Completion<'_>) -> Vec<u8> {
    // Serialising these plain structs cannot fail.
    serde_json::to_vec(completion).unwrap_or_default()
}
