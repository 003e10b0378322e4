//! Serde types of Gemini's `GenerateContentRequest` (written) and `GenerateContentResponse`
//! (read leniently: every field optional, unknown fields ignored).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::completion::{CompletionTokensDetails, PromptTokensDetails, Usage as OpenAiUsage};
use crate::core::usage::Metered;

// ----------------------------------------------------------------------------- Gemini, written

/// `GenerateContentRequest`, in the field order of the Gemini docs.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The conversation, alternating `user` / `model`.
    pub contents: Vec<Content>,
    /// System and developer messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<SystemInstruction>,
    /// One `Tool` holding every function declaration, when the client sent tools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// `tool_choice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    /// Sampling, limits, JSON output and thinking.
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig,
}

/// `systemInstruction` (a `Content` without a role).
#[derive(Debug, Serialize)]
pub struct SystemInstruction {
    /// Text parts.
    pub parts: Vec<Part>,
}

/// One turn. Read and written.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Content {
    /// `user` or `model`.
    #[serde(default)]
    pub role: String,
    /// The turn's parts.
    #[serde(default)]
    pub parts: Vec<Part>,
}

/// A `Part`: a oneof on the wire, so exactly one data field is set (plus `thought` flags and a
/// `thoughtSignature`). Read and written.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text (visible, or a thought summary when `thought` is true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Marks a thought-summary text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Inline media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Blob>,
    /// Media by URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    /// A call the model asks the client to make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall>,
    /// The result of a call, sent back by the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<FunctionResponse>,
    /// Opaque signature that must be echoed back on the same part in later turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

/// `inlineData`: raw base64, no `data:` prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    /// e.g. `image/png`.
    pub mime_type: String,
    /// Base64 bytes.
    pub data: String,
}

/// `fileData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// e.g. `image/jpeg`.
    pub mime_type: String,
    /// The file's URI.
    pub file_uri: String,
}

/// `functionCall`: arrives whole on the Developer API (no argument streaming).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Usually absent from Developer API responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments, a JSON object.
    #[serde(default)]
    pub args: Value,
}

/// `functionResponse`: `name` is required, `response` must be an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionResponse {
    /// The function's name.
    pub name: String,
    /// The result object.
    pub response: Value,
}

/// A `Tool` with function declarations.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The client's functions.
    pub function_declarations: Vec<FunctionDeclaration>,
}

/// `FunctionDeclaration`.
#[derive(Debug, Serialize)]
pub struct FunctionDeclaration {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The cleaned OpenAPI-subset schema (see `schema.rs`); absent for no arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The function-calling mode.
    pub function_calling_config: FunctionCallingConfig,
}

/// `functionCallingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    /// `AUTO`, `ANY` or `NONE`.
    pub mode: &'static str,
    /// With `ANY` only: the functions the model may call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<String>,
}

/// `generationConfig`; only the fields the client set are written.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    /// `max_completion_tokens` ?? `max_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// 0–2, as in OpenAI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// `top_p`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Non-standard `top_k`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    /// `stop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// `n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u64>,
    /// `seed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// `presence_penalty`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// `frequency_penalty`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// `application/json` for `response_format` json_object / json_schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    /// The cleaned `json_schema.schema`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// `reasoning_effort`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    /// Nothing set: the whole object is omitted.
    pub fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.top_k.is_none()
            && self.stop_sequences.is_none()
            && self.candidate_count.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
            && self.thinking_config.is_none()
    }
}

/// `thinkingConfig`: a level on Gemini 3, a token budget before it.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Return thought summaries (shown as `reasoning_content`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
    /// Gemini 2.5: tokens (0 = off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u32>,
    /// Gemini 3: `MINIMAL`, `LOW`, `MEDIUM`, `HIGH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<&'static str>,
}

// ----------------------------------------------------------------------------- Gemini, read

/// `GenerateContentResponse`, also every streamed event; `error` is set when a 200 body (or a
/// stream event) is Google's error envelope instead.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// One per requested candidate.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Present when the prompt itself was blocked (then there are no candidates).
    #[serde(default)]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts (cumulative in streams).
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model that answered.
    #[serde(default)]
    pub model_version: Option<String>,
    /// Google's id for the response.
    #[serde(default)]
    pub response_id: Option<String>,
    /// An error envelope in place of a response.
    #[serde(default)]
    pub error: Option<Status>,
}

/// A candidate answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The new parts (a delta in streams).
    #[serde(default)]
    pub content: Option<Content>,
    /// Absent until the candidate is finished.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The candidate's position (absent means 0).
    #[serde(default)]
    pub index: Option<u32>,
}

/// `promptFeedback`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// `SAFETY`, `OTHER`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `IMAGE_SAFETY`.
    #[serde(default)]
    pub block_reason: Option<String>,
    /// Human-readable detail, when given.
    #[serde(default)]
    pub block_reason_message: Option<String>,
}

/// `usageMetadata`; `candidatesTokenCount` excludes `thoughtsTokenCount`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens (cached included).
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Visible output tokens.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Tokens of tool-use prompts (part of the input).
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    /// The cached share of the prompt.
    #[serde(default)]
    pub cached_content_token_count: u64,
}

impl UsageMetadata {
    /// Takes in a later stream event's counts. They are cumulative, but an event may carry
    /// only some of them (`{"trafficType": …}` alone), so each count keeps its largest value.
    pub fn merge(&mut self, newer: &UsageMetadata) {
        self.prompt_token_count = self.prompt_token_count.max(newer.prompt_token_count);
        self.candidates_token_count = self
            .candidates_token_count
            .max(newer.candidates_token_count);
        self.thoughts_token_count = self.thoughts_token_count.max(newer.thoughts_token_count);
        self.tool_use_prompt_token_count = self
            .tool_use_prompt_token_count
            .max(newer.tool_use_prompt_token_count);
        self.cached_content_token_count = self
            .cached_content_token_count
            .max(newer.cached_content_token_count);
    }

    /// The native counts, for the meter: tool-use prompt tokens are input too.
    pub fn metered(&self) -> Metered {
        Metered::from_gemini(
            self.prompt_token_count
                .saturating_add(self.tool_use_prompt_token_count),
            self.cached_content_token_count,
            self.candidates_token_count,
            self.thoughts_token_count,
        )
    }

    /// The OpenAI usage: thoughts count as completion tokens and are shown as reasoning tokens.
    pub fn to_openai(self) -> OpenAiUsage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        let completion = self.candidates_token_count + self.thoughts_token_count;
        OpenAiUsage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: self.cached_content_token_count,
            },
            completion_tokens_details: Some(CompletionTokensDetails {
                reasoning_tokens: self.thoughts_token_count,
            }),
        }
    }
}

/// Google's RPC status, the payload of `{"error": ...}`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Status {
    /// The HTTP status it corresponds to.
    #[serde(default)]
    pub code: u16,
    /// Human-readable text.
    #[serde(default)]
    pub message: String,
    /// `INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …
    #[serde(default)]
    pub status: String,
    /// `google.rpc.*` details (an `ErrorInfo.reason` names an invalid key).
    #[serde(default)]
    pub details: Vec<Value>,
}

/// `{"error": Status}`: non-2xx bodies, and an error appended to a 200 stream.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: Status,
}
