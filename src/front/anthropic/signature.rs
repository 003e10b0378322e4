//! Signatures of the thinking blocks the proxy makes from a non-Anthropic model's reasoning.
//!
//! Anthropic clients send thinking blocks back unchanged, signature included. A real
//! Anthropic target rejects a signature it did not issue ("Invalid signature"), so a block
//! the proxy made must be recognisable on the way back, to be dropped before such a target
//! sees it: its signature is [`PREFIX`] and a hash of the text. The hash only tells the
//! proxy's blocks apart from Anthropic's (which are long base64 strings and never contain
//! `.`); it proves nothing, and need not: a forged one only gets a block dropped.
//!
//! FNV-1a is written out here rather than taken from a crate: it is a few lines, and it hashes
//! incrementally ([`Minter`]), so a stream's thinking never has to be held whole.

/// What every signature the proxy mints starts with.
pub const PREFIX: &str = "aiwp1.";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The signature of a thinking block whose whole text is `thinking`.
pub fn mint(thinking: &str) -> String {
    let mut minter = Minter::new();
    minter.update(thinking);
    minter.signature()
}

/// Whether `signature` is one the proxy minted (not Anthropic's).
pub fn is_minted(signature: &str) -> bool {
    signature
        .strip_prefix(PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Mints a signature from text that arrives in pieces; the same as [`mint`] of their
/// concatenation.
#[derive(Debug, Clone, Copy)]
pub struct Minter(u64);

impl Default for Minter {
    fn default() -> Self {
        Self::new()
    }
}

impl Minter {
    /// A minter that has seen no text yet.
    pub fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// Adds the next piece of the text.
    pub fn update(&mut self, piece: &str) {
        for &byte in piece.as_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// The signature of the text so far.
    pub fn signature(&self) -> String {
        format!("{PREFIX}{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_is_fnv1a_64_in_hex() {
        // Reference values of FNV-1a 64 (the empty string is the offset basis).
        assert_eq!(mint(""), "aiwp1.cbf29ce484222325");
        assert_eq!(mint("a"), "aiwp1.af63dc4c8601ec8c");
        assert_eq!(mint("foobar"), "aiwp1.85944171f73967e8");
    }

    #[test]
    fn pieces_give_the_signature_of_the_whole() {
        let mut minter = Minter::new();
        for piece in ["I need", " to find ", "the GCD…", ""] {
            minter.update(piece);
        }
        assert_eq!(minter.signature(), mint("I need to find the GCD…"));
    }

    #[test]
    fn minted_signatures_are_told_from_anthropic_ones() {
        assert!(is_minted(&mint("thinking")));
        assert!(is_minted("aiwp1.0123456789ABCdef"));
        for other in [
            "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
            "aiwp1.",
            "aiwp1.0123",
            "aiwp1.0123456789abcdefg",
            "aiwp1.0123456789abcdez",
            "",
        ] {
            assert!(!is_minted(other), "{other}");
        }
    }
}
