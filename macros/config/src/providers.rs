//! The provider registry: every value `provider = "..."` may take in routes.toml, what a target of
//! that provider accepts, and the type of the proxy that implements its wire format.
//!
//! Adding a provider is one module in the proxy's `src/providers/` implementing
//! `core::provider::Provider`, and one line in [`PROVIDERS`].

/// What routes.toml may say about one provider, and which type of the proxy speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSpec {
    /// The name `provider = "..."` takes.
    pub name: &'static str,
    /// The type implementing its wire format, as a path inside the proxy's `providers` module.
    pub implementation: &'static str,
    /// The base URL of the provider's official SDK, used when a target gives none; `None` makes
    /// `base_url` required.
    pub default_base_url: Option<&'static str>,
    /// The host binding a target with `api_keys = []` is reached through; `None` makes at least
    /// one key required.
    pub binding: Option<&'static str>,
    /// Whether a keyed target names the secret holding its account id (`account_id`), which its
    /// URL needs.
    pub account_id: bool,
    /// Whether a target may list the `anthropic-beta` header values forwarded to it
    /// (`anthropic_betas`).
    pub anthropic_betas: bool,
}

impl ProviderSpec {
    /// A provider reached over HTTP with API keys and nothing else.
    pub const fn keyed(
        name: &'static str,
        implementation: &'static str,
        default_base_url: Option<&'static str>,
    ) -> Self {
        Self {
            name,
            implementation,
            default_base_url,
            binding: None,
            account_id: false,
            anthropic_betas: false,
        }
    }
}

/// Every provider routes.toml can name, in the order the reference lists them; one line each.
#[rustfmt::skip]
pub static PROVIDERS: &[ProviderSpec] = &[
    // Its API gates features behind `anthropic-beta` headers, which a target may allow through.
    ProviderSpec { anthropic_betas: true, ..ProviderSpec::keyed("anthropic", "anthropic::Anthropic", Some("https://api.anthropic.com")) },
    ProviderSpec::keyed("google", "google::Google", Some("https://generativelanguage.googleapis.com")),
    ProviderSpec::keyed("openai", "openai::OpenAi", Some("https://api.openai.com/v1")),
    ProviderSpec::keyed("openai-compatible", "openai::OpenAi", None),
    // Through the Worker's AI binding with `api_keys = []`, else the REST API of an account.
    ProviderSpec { binding: Some("AI"), account_id: true, ..ProviderSpec::keyed("cloudflare-ai", "workers_ai::WorkersAi", Some("https://api.cloudflare.com/client/v4")) },
];

/// The provider routes.toml calls `name`.
pub fn find(name: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_implementations_are_paths() {
        for (i, p) in PROVIDERS.iter().enumerate() {
            assert!(
                PROVIDERS[..i].iter().all(|q| q.name != p.name),
                "{} registered twice",
                p.name
            );
            assert!(
                p.implementation.split("::").all(|seg| !seg.is_empty()
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
                "{}: {:?} is not a path",
                p.name,
                p.implementation
            );
        }
        assert_eq!(
            find("google").map(|p| p.implementation),
            Some("google::Google")
        );
        assert_eq!(find("gemini"), None);
    }
}
