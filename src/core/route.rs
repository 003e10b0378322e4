//! The types the generated routing table is made of.

/// A model name clients send, and the targets tried for it in order.
#[derive(Debug)]
pub struct Route {
    /// The `model` value clients send.
    pub name: &'static str,
    /// Targets, tried in order until one answers.
    pub targets: &'static [Target],
}

/// One upstream model on one provider, with the names of the keys to try.
#[derive(Debug)]
pub struct Target {
    /// Which API family speaks at `base_url`.
    pub provider: Provider,
    /// The provider's model id, sent upstream in place of the route name.
    pub model: &'static str,
    /// Base URL without a trailing slash (OpenAI-style ones include `/v1`).
    pub base_url: &'static str,
    /// Names of the secrets holding API keys, tried in order.
    pub api_keys: &'static [&'static str],
    /// Completion-token budget to send when the client sets none (providers that need one).
    pub max_tokens: Option<u32>,
    /// Name of the secret holding the Cloudflare account id (`cloudflare-ai` over REST only).
    pub account_id: Option<&'static str>,
}

/// An upstream API family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini generateContent API.
    Google,
    /// OpenAI itself.
    OpenAi,
    /// Any API speaking OpenAI Chat Completions.
    OpenAiCompatible,
    /// Cloudflare Workers AI.
    CloudflareAi,
}

impl Provider {
    /// The name routes.toml uses for this provider.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Google => "google",
            Provider::OpenAi => "openai",
            Provider::OpenAiCompatible => "openai-compatible",
            Provider::CloudflareAi => "cloudflare-ai",
        }
    }
}
