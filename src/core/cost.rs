//! What an answer cost: the provider's own token counts at the model's price.

use crate::core::route::Price;
use crate::core::usage::Metered;

/// The cost of `used` at `price`, in pico-USD (each kind of input at its own rate; reasoning
/// is part of the output).
pub fn of(price: &Price, used: &Metered) -> u64 {
    [
        (used.input, price.input),
        (used.cache_read, price.cache_read),
        (used.cache_write, price.cache_write),
        (used.output, price.output),
    ]
    .iter()
    .fold(0u64, |sum, (tokens, rate)| {
        sum.saturating_add(tokens.saturating_mul(*rate))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_input_is_priced_apart() {
        // Claude Sonnet 4: $3 input, $15 output, $0.30 cache read, $3.75 cache write per M.
        let price = Price {
            model: "claude-sonnet-4-*",
            input: 3_000_000,
            output: 15_000_000,
            cache_read: 300_000,
            cache_write: 3_750_000,
        };
        let used = Metered {
            input: 100,
            cache_read: 10_000,
            cache_write: 1_000,
            output: 500,
            reasoning: 200,
        };
        // 300 µ$ + 3,000 µ$ + 3,750 µ$ + 7,500 µ$ = 0.01455 USD.
        assert_eq!(of(&price, &used), 14_550_000_000);
        assert_eq!(used.total(), 11_600);
    }
}
