//! The proxy's own bearer-token check.

/// Extracts the token from `Authorization: Bearer TOKEN` or a bare `Authorization: TOKEN`.
pub fn presented_token(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

/// Compares two tokens in time that depends only on their lengths, not on where they differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    let mut difference = u8::from(a.len() != b.len());
    for i in 0..b.len() {
        // Read `a` cyclically so the loop always runs over `expected`'s length.
        let x = if a.is_empty() { 0 } else { a[i % a.len()] };
        difference |= x ^ b[i];
    }
    std::hint::black_box(difference) == 0 && !b.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bearer_and_bare_tokens() {
        assert_eq!(presented_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(presented_token(Some("bearer   abc ")), Some("abc"));
        assert_eq!(presented_token(Some("abc")), Some("abc"));
        assert_eq!(presented_token(Some("Bearer ")), Some("Bearer"));
        assert_eq!(presented_token(Some("  ")), None);
        assert_eq!(presented_token(None), None);
    }

    #[test]
    fn compares_exactly() {
        assert!(tokens_match("secret-token", "secret-token"));
        assert!(!tokens_match("secret-tokem", "secret-token"));
        assert!(!tokens_match("secret-token-longer", "secret-token"));
        assert!(!tokens_match("secret", "secret-token"));
        assert!(!tokens_match("", "secret-token"));
        assert!(!tokens_match("", ""));
        // A prefix repeated to the right length must not match.
        assert!(!tokens_match("abab", "abcd"));
    }
}
