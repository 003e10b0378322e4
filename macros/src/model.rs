//! The validated contents of routes.toml: once a file reaches these types it is known good.

/// An upstream API family, as written in `provider = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini generateContent API.
    Google,
    /// OpenAI itself.
    OpenAi,
    /// Any API that speaks OpenAI Chat Completions (NVIDIA, Groq, vLLM, ...).
    OpenAiCompatible,
    /// Cloudflare Workers AI through the Worker's AI binding.
    CloudflareAi,
}

impl Provider {
    /// Every provider, with the name routes.toml uses for it.
    pub const ALL: [(&'static str, Provider); 5] = [
        ("anthropic", Provider::Anthropic),
        ("google", Provider::Google),
        ("openai", Provider::OpenAi),
        ("openai-compatible", Provider::OpenAiCompatible),
        ("cloudflare-ai", Provider::CloudflareAi),
    ];

    /// Looks a provider up by its routes.toml name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// The base URL of the provider's official SDK, used when a target gives none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Google => Some("https://generativelanguage.googleapis.com"),
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::OpenAiCompatible => None,
            // The binding needs no URL; the REST fallback is built from the account id.
            Provider::CloudflareAi => Some("https://api.cloudflare.com/client/v4"),
        }
    }

    /// Whether a target of this provider needs at least one API key.
    pub fn needs_keys(self) -> bool {
        !matches!(self, Provider::CloudflareAi)
    }
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesFile {
    /// Name of the secret holding the proxy's own bearer token.
    pub auth_token_secret: String,
    /// Routes in file order.
    pub routes: Vec<Route>,
}

/// A model name clients send, and the targets tried for it in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The `model` value clients send.
    pub name: String,
    /// Targets, tried in order.
    pub targets: Vec<Target>,
}

/// One provider + model + keys to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Which API family.
    pub provider: Provider,
    /// The provider's model id.
    pub model: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Names of the secrets holding API keys, tried in order.
    pub api_keys: Vec<String>,
    /// Default completion-token budget when the client sets none.
    pub max_tokens: Option<u32>,
    /// Name of the secret holding the Cloudflare account id (`cloudflare-ai` over REST).
    pub account_id: Option<String>,
}
