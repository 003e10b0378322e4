//! Values for the ids the proxy makes up, unique within a process and, with the host's entropy,
//! across processes and wasm instances. The core has no randomness source of its own: a host
//! mixes some in ([`mix_in`]) before it serves, and a counter keeps values apart after that.
//! Without it, a Worker whose module restarted (a fresh instance after a trap) would count from
//! zero again and, within the same second, repeat the last instance's ids.

use std::sync::atomic::{AtomicU64, Ordering};

static INSTANCE: AtomicU64 = AtomicU64::new(0);
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Mixes the host's random `bits` into every later [`unique`] value.
pub fn mix_in(bits: u64) {
    INSTANCE.fetch_xor(bits, Ordering::Relaxed);
}

/// A value never given before by this instance, and unlike another instance's for different
/// entropy.
pub fn unique() -> u64 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    splitmix(INSTANCE.load(Ordering::Relaxed), n)
}

/// SplitMix64: the `n`th value of the sequence that starts from `seed`. A bijection of `n` for a
/// fixed seed (so values never repeat within an instance), with every bit of both spread over
/// the result.
pub fn splitmix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn counts_never_repeat_within_an_instance() {
        let values: HashSet<u64> = (0..10_000).map(|n| splitmix(42, n)).collect();
        assert_eq!(values.len(), 10_000);
    }

    #[test]
    fn instances_with_different_entropy_start_apart() {
        // Two fresh instances both at count 0: only the entropy tells them apart.
        let first: HashSet<u64> = (0..1_000).map(|n| splitmix(1, n)).collect();
        assert!((0..1_000).all(|n| !first.contains(&splitmix(0xdead_beef, n))));
        assert_ne!(splitmix(0, 0), splitmix(1, 0));
    }

    #[test]
    fn unique_values_differ() {
        mix_in(7);
        let (a, b) = (unique(), unique());
        assert_ne!(a, b);
    }
}
