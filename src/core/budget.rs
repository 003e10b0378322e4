//! What one request may cost before it is parsed: JSON nesting and element count, checked by
//! one pass over the bytes. A 16 MiB body of `[{},{},…]` would otherwise become millions of
//! parsed values (hundreds of MB), and every translator walks what the parser built.

use std::ops::Range;

use crate::core::error::ProxyError;

/// Deepest JSON nesting accepted (serde_json itself stops at 128).
pub const MAX_DEPTH: usize = 64;

/// Most JSON values in one request (an object member counts as one; containers count).
/// A 5,000-message agent conversation with tool calls has about 60,000.
pub const MAX_ELEMENTS: usize = 250_000;

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 10_000;

/// What the budget pass saw of a body's root object, besides its cost: enough to replace the
/// root's `"model"` value in the bytes themselves ([`crate::core::request::Sent`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    /// The root object's keys as written: duplicates, and spellings with escapes, each count.
    pub members: usize,
    /// How many of them are written exactly `"model"`.
    pub model_keys: usize,
    /// Where the last such member's value sits, quotes included, when it is a string.
    pub model_value: Option<Range<usize>>,
}

/// Checks `body`'s nesting and size in elements without parsing it, and outlines its root
/// object. Invalid JSON passes: the parser reports it better (and the outline is then unused).
pub fn check_json(body: &[u8]) -> Result<Outline, ProxyError> {
    let mut depth = 0usize;
    // The root, then one per comma and one per container's first item: every value once
    // (an object member counts as one).
    let mut elements = 1usize;
    let mut opened = false;
    let mut outline = Outline::default();
    // Inside a root object: whether its next string is a key, and whether the next value is
    // a `"model"` member's.
    let (mut root_object, mut key_next, mut model_next) = (false, false, false);
    let mut before_root = true;
    let mut at = 0;
    while let Some(&byte) = body.get(at) {
        at += 1;
        if byte.is_ascii_whitespace() {
            continue;
        }
        if std::mem::take(&mut opened) && !matches!(byte, b'}' | b']') {
            elements += 1;
        }
        let root = std::mem::take(&mut before_root);
        let top = depth == 1 && root_object;
        match byte {
            b'"' => {
                let start = at - 1;
                at = string_end(body, at);
                if top && std::mem::take(&mut key_next) {
                    outline.members += 1;
                    if body.get(start + 1..at.saturating_sub(1)) == Some(b"model") {
                        outline.model_keys += 1;
                        model_next = true;
                    }
                } else if top && std::mem::take(&mut model_next) {
                    outline.model_value = Some(start..at);
                }
            }
            b'{' | b'[' => {
                if root {
                    root_object = byte == b'{';
                    key_next = root_object;
                }
                if top {
                    model_next = false;
                }
                depth += 1;
                opened = true;
                if depth > MAX_DEPTH {
                    return Err(too_complex(format!(
                        "The request nests JSON more than {MAX_DEPTH} levels deep."
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => {
                elements += 1;
                key_next = top;
            }
            b':' => {}
            // A number, `true`, `false` or `null`: a `"model"` that is not a string.
            _ if top => model_next = false,
            _ => {}
        }
        if elements > MAX_ELEMENTS {
            return Err(too_complex(format!(
                "The request has more than {MAX_ELEMENTS} JSON values."
            )));
        }
    }
    Ok(outline)
}

/// Where the string whose text begins at `from` ends: just past its closing quote, or the
/// body's end if it has none. Text is most of a chat request's bytes, so it is skipped with
/// `memchr2` (SIMD natively, a word at a time in wasm), stopping only at quotes and escapes.
fn string_end(body: &[u8], mut from: usize) -> usize {
    while let Some(found) = body
        .get(from..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        let at = from + found;
        if body[at] == b'"' {
            return at + 1;
        }
        // An escape: the byte after it is text, whatever it is.
        from = at + 2;
    }
    body.len()
}

fn too_complex(message: String) -> ProxyError {
    ProxyError::InvalidRequest {
        message,
        param: None,
        code: "request_too_complex",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<&'static str> {
        match check_json(body.as_bytes()) {
            Ok(_) => None,
            Err(ProxyError::InvalidRequest { code, .. }) => Some(code),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(code(&deep(MAX_DEPTH)), None);
        assert_eq!(code(&deep(MAX_DEPTH + 1)), Some("request_too_complex"));
        // Brackets and escaped quotes inside strings are text.
        let text = format!(r#"{{"a":"{} \" {}"}}"#, "[".repeat(500), "{".repeat(500));
        assert_eq!(code(&text), None);
        // Depth comes back down: siblings do not add up.
        let wide = format!("[{}]", vec![deep(MAX_DEPTH - 1); 3].join(","));
        assert_eq!(code(&wide), None);
    }

    /// The byte-at-a-time scan `check_json` replaced, as the reference.
    fn reference(body: &[u8]) -> Option<&'static str> {
        let (mut depth, mut elements, mut opened) = (0usize, 1usize, false);
        let (mut in_string, mut escaped) = (false, false);
        for &byte in body {
            if in_string {
                if escaped {
                    escaped = false;
                } else if byte == b'\\' {
                    escaped = true;
                } else if byte == b'"' {
                    in_string = false;
                }
                continue;
            }
            if byte.is_ascii_whitespace() {
                continue;
            }
            if std::mem::take(&mut opened) && !matches!(byte, b'}' | b']') {
                elements += 1;
            }
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => {
                    depth += 1;
                    opened = true;
                    if depth > MAX_DEPTH {
                        return Some("request_too_complex");
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                b',' => elements += 1,
                _ => {}
            }
            if elements > MAX_ELEMENTS {
                return Some("request_too_complex");
            }
        }
        None
    }

    #[test]
    fn strings_are_skipped_as_the_byte_scan_did() {
        // Every body of up to 5 bytes over the characters that matter, then longer random ones.
        const ALPHABET: &[u8] = b"\"\\[]{},a ";
        let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = bodies
                .iter()
                .filter(|b| b.len() == bodies.last().map_or(0, Vec::len))
                .flat_map(|b| {
                    ALPHABET.iter().map(move |&c| {
                        let mut b = b.clone();
                        b.push(c);
                        b
                    })
                })
                .collect();
            bodies.extend(longer);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let len = (seed % 300) as usize;
            let body = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ALPHABET[(seed % ALPHABET.len() as u64) as usize]
                })
                .collect();
            bodies.push(body);
        }
        for body in &bodies {
            let body_text = String::from_utf8_lossy(body);
            assert_eq!(code(&body_text), reference(body), "{body_text:?}");
        }
    }

    #[test]
    fn the_root_objects_model_is_outlined() {
        let outline = |body: &str| check_json(body.as_bytes()).unwrap();
        let body = r#" { "a" : [ "model" , {"model":"deep"} ], "model" : "fast" , "b":{} } "#;
        let at = body.find(r#""fast""#).unwrap();
        assert_eq!(
            outline(body),
            Outline {
                members: 3,
                model_keys: 1,
                model_value: Some(at..at + 6),
            }
        );
        // Keys as written: a repeat counts twice, an escaped spelling is not `"model"`.
        let twice = outline(r#"{"model":"a","model":"b"}"#);
        assert_eq!((twice.members, twice.model_keys), (2, 2));
        let escaped = outline(r#"{"mod\u0065l":"a"}"#);
        assert_eq!((escaped.members, escaped.model_keys), (1, 0));
        // A model that is not a string has no string to replace.
        for other in [
            r#"{"model":7}"#,
            r#"{"model":null}"#,
            r#"{"model":{"x":"y"}}"#,
        ] {
            assert_eq!(outline(other).model_value, None, "{other}");
        }
        // Only a root object has members; a string value is not a key.
        assert_eq!(outline(r#"["model","x"]"#), Outline::default());
        assert_eq!(outline(r#"{"k":"model","v":"x"}"#).model_keys, 0);
    }

    #[test]
    fn elements_are_bounded() {
        let items = |n: usize| format!("[{}]", vec!["{}"; n].join(","));
        assert_eq!(code(&items(MAX_ELEMENTS - 1)), None);
        assert_eq!(code(&items(MAX_ELEMENTS)), Some("request_too_complex"));
        let members = |n: usize| format!("{{{}}}", vec![r#""k": [ ]"#; n].join(" , "));
        assert_eq!(code(&members(MAX_ELEMENTS - 1)), None);
        assert_eq!(code(&members(MAX_ELEMENTS)), Some("request_too_complex"));
        // Commas in strings are text.
        let text = format!(r#"{{"a":"{}"}}"#, ",".repeat(MAX_ELEMENTS * 2));
        assert_eq!(code(&text), None);
    }
}
