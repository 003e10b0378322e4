//! Each upstream's wire format. The failover loop reaches them only through [`Adapter`], a
//! static dispatch over every provider routes.toml can name.

pub mod anthropic;
pub mod google;
pub mod openai;
pub mod openai_input;
#[cfg(test)]
mod test_support;
pub mod workers_ai;

use bytes::Bytes;

use crate::core::error::{ErrorObject, ProxyError};
use crate::core::host::{UpstreamRequest, UpstreamResponse};
use crate::core::request::ChatRequest;
use crate::core::route::{Provider, Target};
use crate::core::stream::Translate;

/// An implemented wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// OpenAI Chat Completions, passed through (OpenAI and OpenAI-compatible APIs).
    OpenAiChat,
    /// Anthropic Messages, translated both ways.
    Anthropic,
    /// Google Gemini generateContent, translated both ways.
    Google,
    /// Cloudflare Workers AI, through the AI binding or its REST API.
    WorkersAi,
}

/// The adapter that speaks `provider`'s wire format.
pub fn adapter(provider: Provider) -> Adapter {
    match provider {
        Provider::OpenAi | Provider::OpenAiCompatible => Adapter::OpenAiChat,
        Provider::Anthropic => Adapter::Anthropic,
        Provider::Google => Adapter::Google,
        Provider::CloudflareAi => Adapter::WorkersAi,
    }
}

impl Adapter {
    /// The upstream body for `request`, built once per target and reused for each key.
    pub fn prepare(self, target: &Target, request: &ChatRequest) -> Result<Bytes, ProxyError> {
        match self {
            Adapter::OpenAiChat => Ok(openai::body(target, request)),
            Adapter::Anthropic => anthropic::body(target, request),
            Adapter::Google => google::body(target, request),
            Adapter::WorkersAi => workers_ai::body(target, request),
        }
    }

    /// Whether `target` is reached through the host's AI binding rather than over HTTP with
    /// keys: a `cloudflare-ai` target with `api_keys = []`.
    pub fn uses_binding(self, target: &Target) -> bool {
        self == Adapter::WorkersAi && target.api_keys.is_empty()
    }

    /// The response a binding call that threw `message` stands for (Workers AI only).
    pub fn thrown(self, message: &str) -> UpstreamResponse {
        workers_ai::thrown(message)
    }

    /// The HTTP request for one key; `account` is the value of the target's `account_id`
    /// secret, for the providers whose URL names an account (Workers AI's REST API).
    pub fn upstream_request(
        self,
        target: &Target,
        body: &Bytes,
        key: &str,
        account: Option<&str>,
        request: &ChatRequest,
    ) -> UpstreamRequest {
        match self {
            Adapter::OpenAiChat => openai::request(target, body, key, request.stream),
            Adapter::Anthropic => anthropic::upstream_request(target, body, key, request.stream),
            Adapter::Google => google::upstream_request(target, body, key, request.stream),
            Adapter::WorkersAi => {
                workers_ai::upstream_request(target, body, key, account.unwrap_or_default())
            }
        }
    }

    /// The client-facing error for an upstream error response.
    pub fn error(self, status: u16, body: &[u8]) -> ErrorObject {
        match self {
            Adapter::OpenAiChat => ErrorObject::from_upstream(status, body),
            Adapter::Anthropic => anthropic::error(status, body),
            Adapter::Google => google::error(status, body),
            Adapter::WorkersAi => workers_ai::error(status, body),
        }
    }

    /// Whether a client-error response (4xx other than the retryable ones) really rejects
    /// the key, so the next key should be tried: Gemini reports an invalid key as a 400.
    pub fn key_rejected(self, status: u16, body: &[u8]) -> bool {
        match self {
            Adapter::OpenAiChat | Adapter::Anthropic | Adapter::WorkersAi => false,
            Adapter::Google => google::key_rejected(status, body),
        }
    }

    /// Translates a successful upstream body into the client's body; `created` (Unix seconds)
    /// is the timestamp translating providers stamp on what they emit.
    pub fn translator(
        self,
        target: &Target,
        request: &ChatRequest,
        created: u64,
    ) -> Box<dyn Translate> {
        match self {
            Adapter::OpenAiChat => Box::new(openai::PassThrough::new(request.stream)),
            Adapter::Anthropic => anthropic::translator(request, created),
            Adapter::Google => google::translator(target, request, created),
            Adapter::WorkersAi => workers_ai::translator(target, request, created),
        }
    }
}
