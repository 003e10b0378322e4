//! The one reader of Workers AI outputs (workers-ai.md §3, §4): a whole answer or one stream
//! event, in any of their shapes, becomes an [`Output`]; [`Calls`] turns its tool-call entries
//! into calls with the ids and indexes the client sees. The JSON translator
//! ([`super::response`]) and the stream translator ([`super::stream`]) both read through here.
//!
//! Shapes: the native `{response, tool_calls, usage}` (a stream event may carry any subset of
//! it, a usage-only event included); OpenAI's `chat.completion` / `chat.completion.chunk` (the
//! chat-family models, `choices[0].message` or `.delta`); a bare string; and, over REST, any of
//! them inside the v4 envelope `{result, success, errors, messages}`.

use serde_json::Value;

use super::in_band;
use crate::core::completion::{PromptTokensDetails, Usage as OpenAiUsage};
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;

/// What is being read: a whole answer or one stream event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A whole answer: its tool calls arrive whole; an unknown shape is an error.
    Whole,
    /// One stream event: tool calls may come in fragments; an unknown shape says nothing.
    Event,
}

/// One output, or one event's worth of it.
#[derive(Debug, Default)]
pub struct Output<'a> {
    /// The upstream's response id (OpenAI shape only).
    pub id: Option<&'a str>,
    /// Text (structured output as JSON text).
    pub content: Option<String>,
    /// Reasoning text (`reasoning_content` / `reasoning`).
    pub reasoning: Option<String>,
    /// Tool-call entries, in either shape, for [`Calls`].
    pub calls: &'a [Value],
    /// The upstream's finish reason, if it gave one.
    pub finish: Option<&'a str>,
    /// Usage, if given.
    pub usage: Option<Usage>,
    /// OpenAI-shaped: its stream usage counts this event only, where native usage is cumulative.
    pub openai: bool,
}

/// Reads `value` as `part`; an error envelope or error event is the upstream's failure.
pub fn read(value: &Value, part: Part) -> Result<Output<'_>, UpstreamError> {
    if let Some(error) = in_band(value) {
        return Err(error);
    }
    // REST: `{"result": <output>, "success": true, "errors": [], "messages": []}`.
    let output = match value.get("result") {
        Some(result) if part == Part::Whole && value.get("success").is_some() => result,
        _ => value,
    };
    match output {
        Value::String(s) => Ok(Output {
            content: Some(s.clone()),
            ..Output::default()
        }),
        Value::Object(o) if o.get("choices").is_some_and(Value::is_array) => {
            let choice = o.get("choices").and_then(|c| c.get(0));
            let field = match part {
                Part::Whole => "message",
                Part::Event => "delta",
            };
            let message = choice.and_then(|c| c.get(field));
            let get = |name: &str| message.and_then(|m| m.get(name));
            Ok(Output {
                id: o.get("id").and_then(Value::as_str),
                content: get("content").and_then(text),
                reasoning: get("reasoning_content")
                    .or_else(|| get("reasoning"))
                    .and_then(text),
                calls: calls(get("tool_calls")),
                finish: choice.and_then(finish),
                usage: Usage::read(o.get("usage")),
                openai: true,
            })
        }
        Value::Object(o)
            if part == Part::Event
                || o.contains_key("response")
                || o.contains_key("tool_calls") =>
        {
            Ok(Output {
                content: o.get("response").and_then(text),
                calls: calls(o.get("tool_calls")),
                finish: finish(output),
                usage: Usage::read(o.get("usage")),
                ..Output::default()
            })
        }
        Value::Object(o) if o.contains_key("request_id") => Err(UpstreamError::truncated(
            "Workers AI queued the request (async batch) instead of answering it",
        )),
        _ if part == Part::Event => Ok(Output::default()),
        _ => Err(UpstreamError::truncated(
            "Workers AI answered with an output of no known shape",
        )),
    }
}

/// A `tool_calls` list's entries (none when it is missing or not a list).
fn calls(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn finish(value: &Value) -> Option<&str> {
    value.get("finish_reason").and_then(Value::as_str)
}

/// Token counts; Workers AI's last native usage is cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: u64,
    /// Generated tokens.
    pub completion: u64,
    /// Cached prompt tokens.
    pub cached: u64,
    /// The reasoning share of `completion`, where reported.
    pub reasoning: u64,
}

impl Usage {
    /// `usage` as Workers AI writes it (either shape), if it is an object.
    pub fn read(value: Option<&Value>) -> Option<Self> {
        let u = value.filter(|v| v.is_object())?;
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        Some(Self {
            prompt: n(u.get("prompt_tokens")),
            completion: n(u.get("completion_tokens")),
            cached: n(u.pointer("/prompt_tokens_details/cached_tokens")),
            reasoning: n(u.pointer("/completion_tokens_details/reasoning_tokens")),
        })
    }

    /// Adds one OpenAI-format event's usage, which counts that event's tokens only.
    pub fn add(&mut self, event: Usage) {
        self.prompt = self.prompt.max(event.prompt);
        self.completion += event.completion;
        self.cached = self.cached.max(event.cached);
        self.reasoning += event.reasoning;
    }

    /// The native counts, for the meter: OpenAI's shape (the cached tokens are a share of the
    /// prompt).
    pub fn metered(self) -> Metered {
        Metered::from_openai(self.prompt, self.cached, self.completion, self.reasoning)
    }

    /// OpenAI's usage object.
    pub fn to_openai(self) -> OpenAiUsage {
        OpenAiUsage {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            total_tokens: self.prompt + self.completion,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: self.cached,
            },
            completion_tokens_details: None,
        }
    }
}

/// OpenAI's finish reason. Workers AI's legacy outputs have none: tool calls mean
/// `tool_calls`, a completion that used the whole budget means `length`, otherwise `stop`.
pub fn finish_reason(
    given: Option<&str>,
    tool_calls: bool,
    usage: Option<Usage>,
    max_tokens: u32,
) -> &'static str {
    match given {
        Some("length" | "model_length" | "max_tokens") => "length",
        Some("content_filter") => "content_filter",
        _ if tool_calls => "tool_calls",
        Some("tool_calls" | "function_call") => "tool_calls",
        Some(_) => "stop",
        None if usage.is_some_and(|u| u.completion >= u64::from(max_tokens)) => "length",
        None => "stop",
    }
}

/// A value that should be text: strings as they are, objects and numbers as JSON (structured
/// output mode answers `response` as an object; workers-ai-provider's `processText`).
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Tool-call `arguments`, object or string, as JSON text (`""`/null → `{}`).
pub fn arguments(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => "{}".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// Separates a model's own tool-call id from the suffix that makes it unique (the marker
/// Cloudflare's workers-ai-provider uses).
pub const ID_MARKER: &str = "::cf-wai-tool-call::";

/// A model-given tool-call id as the client sees it. Workers AI models repeat ids across turns
/// (`call123` every time), which breaks clients that key tool results by id; a per-response
/// suffix makes them unique, and the request side strips it again (workers-ai-provider
/// "Fix Workers AI tool call ID collisions").
pub fn outgoing_id(id: &str, salt: u64) -> String {
    format!("{id}{ID_MARKER}{salt:016x}")
}

/// A made-up tool-call id: unique within a response (`n`) and, through `salt` (the response's
/// timestamp and a hash of its bytes), across turns — Workers AI models omit ids or repeat them
/// across turns (workers-ai-provider "Fix Workers AI tool call ID collisions").
pub fn call_id(salt: u64, n: usize) -> String {
    format!("call_{salt:016x}{n}")
}

/// The response id: the upstream's, or one made from the salt.
pub fn response_id(upstream: Option<&str>, salt: u64) -> String {
    upstream
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("chatcmpl-wai{salt:016x}"), str::to_owned)
}

/// FNV-1a, to salt made-up ids with the bytes they came from.
pub fn fnv(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What one tool-call entry adds to the response's calls.
#[derive(Debug, PartialEq, Eq)]
pub enum CallPiece<'a> {
    /// A new call, `index` among the response's calls, with the id the client sees.
    Start {
        /// Its position among this response's calls.
        index: u32,
        /// The id the client sees (the model's, made unique, or made up).
        id: String,
        /// The function's name.
        name: &'a str,
        /// The arguments so far (all of them for a whole call), JSON text.
        arguments: String,
    },
    /// More arguments for call `index`.
    More {
        /// The call's position among this response's calls.
        index: u32,
        /// The next piece of its JSON arguments.
        arguments: String,
    },
}

/// The calls of one response as their entries arrive.
#[derive(Debug)]
pub struct Calls {
    salt: u64,
    /// Per call: the upstream's index and id (the model's, or the one made up for it).
    slots: Vec<(u64, String)>,
}

impl Calls {
    /// No calls yet; made-up and rewritten ids are salted with `salt`.
    pub fn new(salt: u64) -> Self {
        Self {
            salt,
            slots: Vec::new(),
        }
    }

    /// Whether any call has started.
    pub fn any(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Reads entry `position` of a `tool_calls` list. A flat `{name, arguments}` entry, or any
    /// entry of a whole answer, is a whole call. A fragment is keyed by (index, id): a name or
    /// a new id on an index starts a call, a bare `arguments` piece continues the latest call on
    /// that index (Ollama-style upstreams reuse index 0 for parallel calls). Entries without a
    /// name that start nothing, the null sentinel `{id: null, function: {name: null}}` that
    /// closes a call, and empty pieces add nothing.
    pub fn entry<'a>(
        &mut self,
        position: usize,
        entry: &'a Value,
        part: Part,
    ) -> Option<CallPiece<'a>> {
        let f = entry.get("function").unwrap_or(entry);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let id = entry
            .get("id")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty());
        let whole = part == Part::Whole || entry.get("function").is_none();
        let upstream_index = entry
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let latest = self.slots.iter().rposition(|(i, _)| *i == upstream_index);
        let starts = whole
            || match (latest, id, name) {
                (None, _, Some(_)) | (None, Some(_), _) => true,
                (Some(i), Some(id), _) => self.slots[i].1 != id,
                _ => false,
            };
        if starts {
            let name = name?;
            let n = self.slots.len();
            let upstream_id = id.map_or_else(|| call_id(self.salt, n), str::to_owned);
            let shown = id.map_or_else(|| upstream_id.clone(), |i| outgoing_id(i, self.salt));
            let arguments = if whole {
                arguments(f.get("arguments"))
            } else {
                fragment(f.get("arguments"))
            };
            self.slots.push((upstream_index, upstream_id));
            return Some(CallPiece::Start {
                index: u32::try_from(n).unwrap_or(u32::MAX),
                id: shown,
                name,
                arguments,
            });
        }
        let arguments = fragment(f.get("arguments"));
        match latest {
            Some(i) if !arguments.is_empty() => Some(CallPiece::More {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                arguments,
            }),
            _ => None,
        }
    }
}

/// A fragment's `arguments` piece as text (`""` when there is none).
fn fragment(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
