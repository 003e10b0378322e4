//! Tool-use ids on the Messages surface.
//!
//! Anthropic takes only `^[a-zA-Z0-9_-]+$` as a `tool_use` id, and the client sends ids back
//! unchanged: a conversation that began on a translated route and goes on at a real Anthropic
//! target (the body passes through) would be refused over ids other providers minted
//! (Workers AI's `…::cf-wai-tool-call::…`, Gemini's `…__thought__<base64 signature>`). So an id
//! that does not fit leaves the proxy [`encode`]d, and comes back [`decode`]d to the id the
//! target's translator minted and reads its own parts from. The escape is per byte
//! (`-` and two lower-case hex digits), after a [`MARKER`] that only encoded ids start with,
//! so every id survives the round trip and ids that already fit stay as they were.

use std::borrow::Cow;

/// What every encoded id starts with.
pub const MARKER: &str = "aiwpx_";

fn fits(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// `id` as an Anthropic client may hold it: unchanged when it fits Anthropic's pattern.
pub fn encode(id: &str) -> Cow<'_, str> {
    if !id.is_empty() && id.bytes().all(fits) && !id.starts_with(MARKER) {
        return Cow::Borrowed(id);
    }
    let mut out = String::with_capacity(MARKER.len() + id.len() * 2);
    out.push_str(MARKER);
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("-{byte:02x}"));
        }
    }
    Cow::Owned(out)
}

/// The id of the `n`th (from 1) call of the response `openai_id`, for a call that came
/// without one: a call and its result must still pair up.
pub fn made(openai_id: &str, n: usize) -> String {
    format!("toolu_{}_{n}", super::response::message_id(openai_id))
}

/// The id [`encode`] was given, for an id a client sent back; any other id unchanged.
pub fn decode(id: &str) -> Cow<'_, str> {
    let Some(escaped) = id.strip_prefix(MARKER) else {
        return Cow::Borrowed(id);
    };
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut rest = escaped.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'-' {
            let Some(value) = tail
                .get(..2)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            else {
                // Not ours after all: the client's own id, as it sent it.
                return Cow::Borrowed(id);
            };
            bytes.push(value);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    match String::from_utf8(bytes) {
        Ok(decoded) => Cow::Owned(decoded),
        Err(_) => Cow::Borrowed(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anthropic_pattern(id: &str) -> bool {
        !id.is_empty() && id.bytes().all(fits)
    }

    #[test]
    fn ids_that_fit_pass_unchanged() {
        for id in [
            "toolu_01A09q90qw90lq917835lq9",
            "call_abc123",
            "chatcmpl-tool-0",
        ] {
            assert!(matches!(encode(id), Cow::Borrowed(same) if same == id));
            assert!(matches!(decode(id), Cow::Borrowed(same) if same == id));
        }
    }

    #[test]
    fn foreign_ids_are_escaped_and_come_back_exactly() {
        let cases = [
            (
                "chatcmpl-tool-0::cf-wai-tool-call::41d65b7e894ad159",
                "aiwpx_chatcmpl-2dtool-2d0-3a-3acf-2dwai-2dtool-2dcall-3a-3a41d65b7e894ad159",
            ),
            (
                "call_1__thought__Ck+/=",
                "aiwpx_call_1__thought__Ck-2b-2f-3d",
            ),
            ("", "aiwpx_"),
            ("aiwpx_1", "aiwpx_aiwpx_1"),
            ("é", "aiwpx_-c3-a9"),
        ];
        for (id, encoded) in cases {
            assert_eq!(encode(id), encoded);
            assert!(anthropic_pattern(&encode(id)), "{id}");
            assert_eq!(decode(encoded), id);
        }
    }

    #[test]
    fn a_client_id_that_only_looks_encoded_is_left_alone() {
        for id in ["aiwpx_-zz", "aiwpx_-3", "aiwpx_-ff"] {
            assert_eq!(decode(id), id);
        }
    }
}
