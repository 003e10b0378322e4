//! What common models cost, and the one lookup the macro (checking that a client's `budget`
//! can be counted) and the proxy (counting it) share: [`price_of`].
//!
//! A price's `model` is an upstream model id, or a prefix of ids when it ends in `*`
//! (`claude-sonnet-4-*` prices every dated Sonnet 4 id). Amounts are pico-USD per token, which
//! is USD per million tokens × 10⁶: `2_500_000` is $2.50 per million tokens.
//!
//! The built-in table is a snapshot, taken on the date each entry's comment gives, of each
//! provider's published standard (pay-as-you-go, non-batch) rates; it errs on no side. Where a
//! provider charges more for long prompts (Gemini 2.5 Pro above 200k tokens), the table has
//! the short-prompt rate. `[prices."MODEL"]` in routes.toml overrides any entry here.

use crate::schema::Price;

/// A price in pico-USD per token (USD per million tokens × 10⁶).
const fn price(
    model: &'static str,
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
) -> Price {
    Price {
        model,
        input,
        output,
        cache_read,
        cache_write,
    }
}

/// Prices of common models, used for any model routes.toml's `[prices]` does not price.
///
/// OpenAI and Gemini charge nothing extra to write their prompt caches, so `cache_write` is the
/// input rate there; Anthropic's is its 5-minute cache write, 1.25 × input, and its cache read
/// 0.1 × input.
#[rustfmt::skip]
pub const BUILT_IN: &[Price] = &[
    // OpenAI: input, output, cached input, (no cache write). Source:
    // https://platform.openai.com/docs/pricing, taken 2025-08.
    price("gpt-4o",                      2_500_000,  10_000_000, 1_250_000,  2_500_000),
    price("gpt-4o-2024-08-06",           2_500_000,  10_000_000, 1_250_000,  2_500_000),
    price("gpt-4o-2024-11-20",           2_500_000,  10_000_000, 1_250_000,  2_500_000),
    price("gpt-4o-2024-05-13",           5_000_000,  15_000_000, 5_000_000,  5_000_000), // no cached rate
    price("gpt-4o-mini",                   150_000,     600_000,    75_000,    150_000),
    price("gpt-4o-mini-2024-07-18",        150_000,     600_000,    75_000,    150_000),
    price("gpt-4.1",                     2_000_000,   8_000_000,   500_000,  2_000_000),
    price("gpt-4.1-2025-04-14",          2_000_000,   8_000_000,   500_000,  2_000_000),
    price("gpt-4.1-mini",                  400_000,   1_600_000,   100_000,    400_000),
    price("gpt-4.1-mini-2025-04-14",       400_000,   1_600_000,   100_000,    400_000),
    price("gpt-4.1-nano",                  100_000,     400_000,    25_000,    100_000),
    price("gpt-4.1-nano-2025-04-14",       100_000,     400_000,    25_000,    100_000),
    // o3 after OpenAI's 2025-06-10 price cut.
    price("o3",                          2_000_000,   8_000_000,   500_000,  2_000_000),
    price("o3-2025-04-16",               2_000_000,   8_000_000,   500_000,  2_000_000),
    price("o4-mini",                     1_100_000,   4_400_000,   275_000,  1_100_000),
    price("o4-mini-2025-04-16",          1_100_000,   4_400_000,   275_000,  1_100_000),
    price("gpt-5",                       1_250_000,  10_000_000,   125_000,  1_250_000),
    price("gpt-5-2025-08-07",            1_250_000,  10_000_000,   125_000,  1_250_000),
    price("gpt-5-mini",                    250_000,   2_000_000,    25_000,    250_000),
    price("gpt-5-mini-2025-08-07",         250_000,   2_000_000,    25_000,    250_000),
    price("gpt-5-nano",                     50_000,     400_000,     5_000,     50_000),
    price("gpt-5-nano-2025-08-07",          50_000,     400_000,     5_000,     50_000),

    // Anthropic: input, output, cache read (0.1×), 5-minute cache write (1.25×). Source:
    // https://www.anthropic.com/pricing#api, taken 2025-08 (Opus 4.5 and Haiku 4.5: 2025-11).
    // The prefixes take the dated ids and aliases: claude-opus-4-20250514, claude-opus-4-0,
    // claude-opus-4-1-20250805, claude-sonnet-4-5-20250929, claude-3-5-haiku-latest...
    price("claude-opus-4-*",            15_000_000,  75_000_000, 1_500_000, 18_750_000),
    price("claude-opus-4-5*",            5_000_000,  25_000_000,   500_000,  6_250_000),
    // Sonnet 4 and 4.5; prompts above 200k tokens with the 1M-context beta cost more.
    price("claude-sonnet-4-*",           3_000_000,  15_000_000,   300_000,  3_750_000),
    price("claude-3-5-haiku-*",            800_000,   4_000_000,    80_000,  1_000_000),
    price("claude-haiku-4-5*",           1_000_000,   5_000_000,   100_000,  1_250_000),

    // Google Gemini: input, output, context cache read, (no cache write; explicit caches are
    // billed for storage by the hour, which no request counts). Text, image and video input;
    // the short-prompt (≤ 200k tokens) rate. Source: https://ai.google.dev/gemini-api/docs/pricing,
    // taken 2025-07.
    price("gemini-2.5-pro",              1_250_000,  10_000_000,   310_000,  1_250_000),
    price("gemini-2.5-flash",              300_000,   2_500_000,    75_000,    300_000),
    price("gemini-2.5-flash-lite",         100_000,     400_000,    25_000,    100_000),
];

/// The price of upstream model `model`: routes.toml's own prices (`file`) first, then
/// [`BUILT_IN`]; in each, an entry named exactly `model` first, else the entry ending in `*`
/// with the longest prefix `model` starts with.
pub fn price_of<'a>(file: &'a [Price], model: &str) -> Option<&'a Price> {
    lookup(file, model).or_else(|| lookup(BUILT_IN, model))
}

/// The price covering every model starting with `prefix`, whatever follows (a pattern route's
/// `model = "claude-{*}"` has the prefix `claude-`): an entry ending in `*` whose own prefix
/// `prefix` starts with, the longest such, from `file` first, then [`BUILT_IN`].
pub fn price_of_every<'a>(file: &'a [Price], prefix: &str) -> Option<&'a Price> {
    longest_prefix(file, prefix).or_else(|| longest_prefix(BUILT_IN, prefix))
}

fn lookup<'a>(table: &'a [Price], model: &str) -> Option<&'a Price> {
    table
        .iter()
        .find(|price| price.model == model)
        .or_else(|| longest_prefix(table, model))
}

/// The entry ending in `*` with the longest prefix `model` starts with.
fn longest_prefix<'a>(table: &'a [Price], model: &str) -> Option<&'a Price> {
    table
        .iter()
        .filter_map(|price| Some((price, price.model.strip_suffix('*')?)))
        .filter(|(_, prefix)| model.starts_with(prefix))
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(price, _)| price)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(price: Option<&Price>) -> Option<&'static str> {
        price.map(|p| p.model)
    }

    #[test]
    fn built_in_names_are_unique_patterns_end_in_one_star_and_rates_are_sane() {
        for (i, p) in BUILT_IN.iter().enumerate() {
            assert!(
                BUILT_IN[..i].iter().all(|q| q.model != p.model),
                "{} twice",
                p.model
            );
            let name = p.model.strip_suffix('*').unwrap_or(p.model);
            assert!(
                !name.is_empty() && !name.contains('*'),
                "{}: a `*` may only end a name",
                p.model
            );
            assert!(p.input > 0 && p.output >= p.input, "{}", p.model);
            assert!(p.cache_read <= p.input, "{}", p.model);
            assert!(p.cache_write >= p.input, "{}", p.model);
            // Each entry finds itself (a prefix entry, through a dated id).
            let id = p.model.replace('*', "20250101");
            assert_eq!(model(price_of(&[], &id)), Some(p.model), "{id}");
        }
    }

    #[test]
    fn dated_and_aliased_ids_reach_their_family() {
        let cases = [
            ("claude-opus-4-20250514", "claude-opus-4-*"),
            ("claude-opus-4-1-20250805", "claude-opus-4-*"),
            ("claude-opus-4-5-20251101", "claude-opus-4-5*"),
            ("claude-opus-4-5", "claude-opus-4-5*"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4-*"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-*"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku-*"),
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5*"),
            ("gpt-4o-mini", "gpt-4o-mini"),
            ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ];
        for (id, entry) in cases {
            assert_eq!(model(price_of(&[], id)), Some(entry), "{id}");
        }
        // Exact ids only where a prefix would catch differently priced models.
        assert_eq!(price_of(&[], "gpt-4o-audio-preview"), None);
        assert_eq!(price_of(&[], "gemini-2.5-flash-image-preview"), None);
        assert_eq!(price_of(&[], "claude-3-opus-20240229"), None);
        let sonnet = price_of(&[], "claude-sonnet-4-20250514");
        assert_eq!(
            sonnet.map(|p| (p.input, p.output, p.cache_read, p.cache_write)),
            Some((3_000_000, 15_000_000, 300_000, 3_750_000))
        );
    }

    #[test]
    fn the_file_wins_then_exact_names_then_the_longest_prefix() {
        let file = [
            price("claude-*", 1, 1, 1, 1),
            price("llama-*", 2, 2, 2, 2),
            price("llama-3*", 3, 3, 3, 3),
            price("llama-3-70b", 4, 4, 4, 4),
            price("gpt-4o", 5, 5, 5, 5),
        ];
        // The file's short prefix beats the built-in table's longer one.
        assert_eq!(
            model(price_of(&file, "claude-sonnet-4-20250514")),
            Some("claude-*")
        );
        assert_eq!(model(price_of(&file, "llama-3-70b")), Some("llama-3-70b"));
        assert_eq!(model(price_of(&file, "llama-3-8b")), Some("llama-3*"));
        assert_eq!(model(price_of(&file, "llama-2")), Some("llama-*"));
        assert_eq!(price_of(&file, "gpt-4o").map(|p| p.input), Some(5));
        assert_eq!(price_of(&file, "gpt-4.1").map(|p| p.input), Some(2_000_000));
        assert_eq!(price_of(&file, "mistral-large"), None);
        // An exact entry is not a prefix.
        assert_eq!(price_of(&file[3..], "llama-3-70b-instruct"), None);
        let star = [price("*", 9, 9, 9, 9)];
        assert_eq!(model(price_of(&star, "anything")), Some("*"));
        assert_eq!(model(price_of(&star, "gpt-4o")), Some("*"));
    }

    #[test]
    fn only_a_star_entry_prices_every_model_with_a_prefix() {
        let file = [
            price("llama-3-70b", 1, 1, 1, 1),
            price("mistral-*", 2, 2, 2, 2),
        ];
        assert_eq!(price_of_every(&file, "llama-"), None);
        assert_eq!(
            model(price_of_every(&file, "mistral-large-")),
            Some("mistral-*")
        );
        assert_eq!(price_of_every(&file, "mistral"), None);
        assert_eq!(
            model(price_of_every(&file, "claude-sonnet-4-")),
            Some("claude-sonnet-4-*")
        );
        // `claude-{*}` could be any Claude model: no built-in family covers all of them.
        assert_eq!(price_of_every(&file, "claude-"), None);
        assert_eq!(price_of_every(&file, ""), None);
        assert_eq!(
            model(price_of_every(&[price("*", 1, 1, 1, 1)], "")),
            Some("*")
        );
    }
}
