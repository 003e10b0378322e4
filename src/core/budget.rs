//! What one request may cost before it is parsed: JSON nesting and element count, checked by
//! one pass over the bytes. A 16 MiB body of `[{},{},…]` would otherwise become millions of
//! parsed values (hundreds of MB), and every translator walks what the parser built.

use crate::core::error::ProxyError;

/// Deepest JSON nesting accepted (serde_json itself stops at 128).
pub const MAX_DEPTH: usize = 64;

/// Most JSON values in one request (an object member counts as one; containers count).
/// A 5,000-message agent conversation with tool calls has about 60,000.
pub const MAX_ELEMENTS: usize = 250_000;

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 10_000;

/// Checks `body`'s nesting and size in elements without parsing it. Invalid JSON passes: the
/// parser reports it better.
pub fn check_json(body: &[u8]) -> Result<(), ProxyError> {
    let mut depth = 0usize;
    // The root, then one per comma and one per container's first item: every value once
    // (an object member counts as one).
    let mut elements = 1usize;
    let mut opened = false;
    let mut in_string = false;
    let mut escaped = false;
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
                    return Err(too_complex(format!(
                        "The request nests JSON more than {MAX_DEPTH} levels deep."
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => elements += 1,
            _ => {}
        }
        if elements > MAX_ELEMENTS {
            return Err(too_complex(format!(
                "The request has more than {MAX_ELEMENTS} JSON values."
            )));
        }
    }
    Ok(())
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
            Ok(()) => None,
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
