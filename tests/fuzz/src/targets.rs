//! The routes.toml targets the translators are fuzzed against: a few per provider, chosen so
//! that each branch a target's settings select (model family, `max_tokens`, REST or binding)
//! is reached. A fuzz input picks one with a flag byte.

use ai_worker_proxy::core::route::{Target, TargetPolicy, Via};

const fn target(
    provider: &'static str,
    model: &'static str,
    max_tokens: Option<u32>,
    account_id: Option<&'static str>,
) -> Target {
    Target {
        provider,
        model,
        base_url: "https://upstream.invalid",
        vias: &[Via::Key("FUZZ_KEY")],
        max_tokens,
        max_output_tokens: None,
        account_id,
        anthropic_betas: None,
        policy: TargetPolicy::DEFAULT,
    }
}

/// `provider = "anthropic"`: a model with a documented output maximum, and one set in routes.toml.
pub static ANTHROPIC: [Target; 2] = [
    target("anthropic", "claude-opus-4-20250514", None, None),
    target("anthropic", "claude-3-haiku-20240307", Some(1000), None),
];

/// `provider = "google"`: a bare id and a `models/` one.
pub static GOOGLE: [Target; 2] = [
    target("google", "gemini-2.5-flash", None, None),
    target("google", "models/gemini-2.0-flash", Some(2048), None),
];

/// `provider = "cloudflare-ai"`: the legacy input family over REST, the chat family through
/// the binding, and Llama 4.
pub static WORKERS_AI: [Target; 3] = [
    target(
        "cloudflare-ai",
        "@cf/meta/llama-3.1-8b-instruct",
        None,
        Some("CF_ACCOUNT_ID"),
    ),
    target("cloudflare-ai", "@cf/openai/gpt-oss-120b", Some(512), None),
    target(
        "cloudflare-ai",
        "@cf/meta/llama-4-scout-17b-16e-instruct",
        None,
        None,
    ),
];

/// `provider = "openai"` (and every OpenAI-compatible one: the same type).
pub static OPENAI: [Target; 1] = [target("openai", "gpt-4o-mini", None, None)];

/// The target of `targets` that `selector` picks.
pub fn pick(targets: &'static [Target], selector: u8) -> &'static Target {
    &targets[usize::from(selector) % targets.len()]
}

/// What the proxy reads besides keys: every secret is set (an account id).
pub fn secret(_name: &str) -> Option<std::rc::Rc<str>> {
    Some("0123456789abcdef".into())
}
