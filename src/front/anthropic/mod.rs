//! The Anthropic Messages front door (`POST /v1/messages`): Claude Code and the Anthropic SDKs on
//! any route. An `anthropic` target gets the client's body unchanged except `model`; every other
//! target gets the request translated into an OpenAI chat request ([`request`]), and its OpenAI
//! answer translated back ([`response`], [`stream`]).

pub mod error;
pub mod estimate;
pub mod models;
pub mod request;
pub mod response;
pub mod signature;
pub mod stream;
pub mod tool_id;

use bytes::Bytes;
use serde_json::Value;

use crate::core::error::ProxyError;
use crate::core::http::{ProxyResponse, RequestHeaders};
use crate::core::request::{parse_kept, AnthropicInbound, ChatRequest, Front, Operation};

/// A Messages (or count_tokens) request body and headers as the request the core serves: its
/// OpenAI translation, with the client's own body kept for `anthropic` targets.
pub fn chat_request(
    bytes: Bytes,
    headers: &dyn RequestHeaders,
    operation: Operation,
) -> Result<ChatRequest, ProxyError> {
    let (body, sent) = parse_kept(bytes)?;
    let translated = if operation == Operation::CountTokens && !body.contains_key("max_tokens") {
        // count_tokens takes no `max_tokens`; the translation needs one, and nothing is generated.
        let mut with_budget = body.clone();
        with_budget.insert("max_tokens".into(), Value::from(1));
        with_budget.remove("stream");
        request::to_openai(&with_budget)?
    } else {
        request::to_openai(&body)?
    };
    let mut chat = ChatRequest::from_map(translated.body)?;
    chat.thinking_budget = translated.thinking_budget;
    chat.operation = operation;
    let betas = headers
        .get("anthropic-beta")
        .map(|value| {
            value
                .split(',')
                .map(str::trim)
                .filter(|beta| !beta.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    chat.front = Front::Anthropic(Box::new(AnthropicInbound {
        input_estimate: estimate::input_tokens(&body),
        body,
        sent,
        version: headers.get("anthropic-version"),
        betas,
    }));
    Ok(chat)
}

/// `{"input_tokens": N}` from the proxy's estimate, for a route none of whose targets can count.
pub fn estimated_count(chat: &ChatRequest) -> ProxyResponse {
    let tokens = chat.anthropic().map_or(0, |inbound| inbound.input_estimate);
    ProxyResponse::json(200, Bytes::from(format!(r#"{{"input_tokens":{tokens}}}"#)))
}
