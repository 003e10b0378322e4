//! The most output tokens a target's model can produce, and a client's `max_tokens` clamped to
//! it: a budget above the model's limit is a 400 on every provider, and clients such as Claude
//! Code ask for 32,000 or 64,000 whatever the model behind the route.

use crate::core::route::Target;
use crate::providers::anthropic::OUTPUT_MAXIMA;

/// Documented output limits of common non-Claude models, by id prefix (after any `vendor/`),
/// most specific first. OpenAI: model pages (gpt-4o/4o-mini 16,384; gpt-4.1 32,768; o1/o3/o4-mini
/// 100,000; gpt-5 128,000), 2026-11. Gemini: models overview (2.5 and 3: 65,536; 2.0 and 1.5:
/// 8,192), 2026-11.
const KNOWN: [(&str, u32); 13] = [
    ("gpt-4o-mini", 16_384),
    ("gpt-4o", 16_384),
    ("gpt-4.1", 32_768),
    ("gpt-4-turbo", 4_096),
    ("gpt-3.5-turbo", 4_096),
    ("gpt-5", 128_000),
    ("o4-mini", 100_000),
    ("o3", 100_000),
    ("o1", 100_000),
    ("gemini-3", 65_536),
    ("gemini-2.5", 65_536),
    ("gemini-2.0", 8_192),
    ("gemini-1.5", 8_192),
];

/// routes.toml's `max_output_tokens` for `target`, else the known limit of `model` (the model
/// actually asked for), else none.
pub fn limit(target: &Target, model: &str) -> Option<u64> {
    if let Some(max) = target.max_output_tokens {
        return Some(u64::from(max));
    }
    // Claude ids carry vendor prefixes and dates anywhere (`anthropic.claude-3-haiku-…-v1:0`).
    if let Some((_, max)) = OUTPUT_MAXIMA
        .iter()
        .find(|(family, _)| model.contains(family))
    {
        return Some(u64::from(*max));
    }
    let name = model.rsplit('/').next().unwrap_or(model);
    KNOWN
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, max)| u64::from(*max))
}

/// `requested` output tokens, clamped to the target's limit.
pub fn clamp(target: &Target, model: &str, requested: u64) -> u64 {
    limit(target, model).map_or(requested, |max| requested.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::route::{TargetPolicy, Via};

    fn target(max_output_tokens: Option<u32>) -> Target {
        Target {
            provider: "openai",
            model: "m",
            base_url: "",
            vias: &[Via::Key("K")],
            max_tokens: None,
            max_output_tokens,
            anthropic_betas: None,
            account_id: None,
            policy: TargetPolicy::DEFAULT,
        }
    }

    #[test]
    fn routes_toml_wins_then_known_models() {
        assert_eq!(clamp(&target(Some(4096)), "gpt-4o", 32_000), 4096);
        assert_eq!(clamp(&target(None), "gpt-4o-mini", 32_000), 16_384);
        assert_eq!(
            clamp(&target(None), "openai/gpt-4.1-2025-04-14", 64_000),
            32_768
        );
        assert_eq!(clamp(&target(None), "gemini-2.5-flash", 100_000), 65_536);
        assert_eq!(
            clamp(&target(None), "claude-opus-4-20250514", 64_000),
            32_000
        );
        assert_eq!(clamp(&target(None), "gpt-4o", 100), 100);
        assert_eq!(clamp(&target(None), "llama-3.3-70b", 1_000_000), 1_000_000);
    }
}
