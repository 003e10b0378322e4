//! Completing a JSON object that was cut off, with one more member at its end.
//!
//! An OpenAI stream cut mid-event has sent half a chunk, `{"id":"x","choi`; the SDKs parse
//! every event as JSON and raise a decode error on a half one, so the proxy's error event after
//! it would never be read. Completing the half chunk into a whole object that carries the
//! error, `{"id":"x","choi":null,"error":{...}}`, makes the SDKs raise the proxy's error
//! instead (both raise `APIError` on a payload with a truthy `error`). This module finds the
//! bytes that do it: a single left-to-right pass that tracks only what the completion needs
//! (open containers, what each expects next, the token in progress).

/// What a cut JSON text needs to become an object ending with a given member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The text is already one whole JSON object: nothing can be added to it.
    Whole,
    /// These bytes, appended, make the text one JSON object whose last member is the one asked.
    Suffix(Vec<u8>),
    /// The text is not the beginning of a JSON object.
    Impossible,
}

/// What an open container expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After `:`, or after `,` in an array: a value.
    Value,
    /// After `[`: a value or `]`.
    FirstValue,
    /// After a member or element: `,` or the closing bracket.
    CommaOrEnd,
}

/// The token being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Token {
    /// Between tokens.
    #[default]
    None,
    /// A string; `key` when it is an object key. `escape`: after `\` (0), or how many hex
    /// digits of a `\u` escape have been read (1 to 4 means 0 to 3 read).
    Str { key: bool, escape: Option<u8> },
    /// A number: `needs_digit` after `-`, `.`, `e` or an exponent sign; `zero` when the
    /// integer part is a leading `0` (no digit may follow it); in the fraction or exponent;
    /// `sign_ok` right after the `e`.
    Num {
        needs_digit: bool,
        zero: bool,
        frac: bool,
        exp: bool,
        sign_ok: bool,
    },
    /// `true`, `false` or `null`, `at` letters in.
    Literal { word: &'static [u8], at: usize },
}

/// One container on the stack: an object (`true`) or an array, and what it expects.
type Open = (bool, Expect);

/// The bytes that complete `text` (a JSON text cut anywhere, possibly empty) into an object
/// whose last member is `"key": value`; `key` is the member's name as JSON (with quotes),
/// `value` its JSON. Containers nested in the top object are closed with placeholders (`null`
/// for a missing value, `"_":null` for a missing member).
pub fn complete_object(text: &[u8], key: &[u8], value: &[u8]) -> Completion {
    let mut scan = Scan::default();
    for &b in text {
        if !scan.byte(b) {
            return Completion::Impossible;
        }
    }
    scan.complete(key, value)
}

#[derive(Debug, Default)]
struct Scan {
    stack: Vec<Open>,
    token: Token,
    /// The top-level value has started (it must be an object) / has ended.
    started: bool,
    ended: bool,
    /// Bytes of a UTF-8 character still to come inside a string, and its first byte's
    /// constraint on the next one (see [`utf8_next`]).
    utf8_left: u8,
    utf8_lead: u8,
}

impl Scan {
    /// Reads one byte; `false` when the text cannot be the start of a JSON object.
    fn byte(&mut self, b: u8) -> bool {
        match self.token {
            Token::Str { key, escape } => return self.string_byte(b, key, escape),
            Token::Literal { word, at } => {
                if word.get(at) != Some(&b) {
                    return false;
                }
                self.token = if at + 1 == word.len() {
                    self.value_done();
                    Token::None
                } else {
                    Token::Literal { word, at: at + 1 }
                };
                return true;
            }
            Token::Num { .. } => {
                if self.number_byte(b) {
                    return true;
                }
                // Anything else ends the number, and is read as what follows it.
                if let Token::Num {
                    needs_digit: true, ..
                } = self.token
                {
                    return false;
                }
                self.token = Token::None;
                self.value_done();
            }
            Token::None => {}
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            return true;
        }
        if self.ended {
            return false;
        }
        let Some(&(object, expect)) = self.stack.last() else {
            // The top-level value: only an object can take one more member.
            if b != b'{' {
                return false;
            }
            self.started = true;
            self.stack.push((true, Expect::FirstKey));
            return true;
        };
        match (object, expect, b) {
            (true, Expect::FirstKey | Expect::Key, b'"') => {
                self.token = Token::Str {
                    key: true,
                    escape: None,
                };
            }
            (true, Expect::FirstKey, b'}') | (false, Expect::FirstValue, b']') => {
                self.stack.pop();
                self.value_done();
            }
            (true, Expect::Colon, b':') => self.set(Expect::Value),
            (_, Expect::CommaOrEnd, b',') => {
                self.set(if object { Expect::Key } else { Expect::Value })
            }
            (true, Expect::CommaOrEnd, b'}') | (false, Expect::CommaOrEnd, b']') => {
                self.stack.pop();
                self.value_done();
            }
            (_, Expect::Value | Expect::FirstValue, _) => return self.value_start(b),
            _ => return false,
        }
        true
    }

    fn set(&mut self, expect: Expect) {
        if let Some(top) = self.stack.last_mut() {
            top.1 = expect;
        }
    }

    /// A value has ended: its container expects a comma or its end.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(top) => top.1 = Expect::CommaOrEnd,
            None => self.ended = true,
        }
    }

    fn value_start(&mut self, b: u8) -> bool {
        match b {
            b'{' => self.stack.push((true, Expect::FirstKey)),
            b'[' => self.stack.push((false, Expect::FirstValue)),
            b'"' => {
                self.token = Token::Str {
                    key: false,
                    escape: None,
                }
            }
            b'-' | b'0'..=b'9' => {
                self.token = Token::Num {
                    needs_digit: b == b'-',
                    zero: b == b'0',
                    frac: false,
                    exp: false,
                    sign_ok: false,
                }
            }
            b't' => {
                self.token = Token::Literal {
                    word: b"true",
                    at: 1,
                }
            }
            b'f' => {
                self.token = Token::Literal {
                    word: b"false",
                    at: 1,
                }
            }
            b'n' => {
                self.token = Token::Literal {
                    word: b"null",
                    at: 1,
                }
            }
            _ => return false,
        }
        true
    }

    fn string_byte(&mut self, b: u8, key: bool, escape: Option<u8>) -> bool {
        if self.utf8_left > 0 {
            if !utf8_next(self.utf8_lead).contains(&b) {
                return false;
            }
            self.utf8_lead = 0;
            self.utf8_left -= 1;
            return true;
        }
        let escape = match escape {
            None => None,
            Some(0) => {
                return match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        self.token = Token::Str { key, escape: None };
                        true
                    }
                    b'u' => {
                        self.token = Token::Str {
                            key,
                            escape: Some(1),
                        };
                        true
                    }
                    _ => false,
                }
            }
            Some(n) => Some(n),
        };
        if let Some(n) = escape {
            if !b.is_ascii_hexdigit() {
                return false;
            }
            self.token = Token::Str {
                key,
                escape: (n < 4).then_some(n + 1),
            };
            return true;
        }
        match b {
            b'"' => {
                self.token = Token::None;
                if key {
                    self.set(Expect::Colon);
                } else {
                    self.value_done();
                }
            }
            b'\\' => {
                self.token = Token::Str {
                    key,
                    escape: Some(0),
                }
            }
            0..=0x1f => return false,
            0x80.. => match utf8_len(b) {
                Some(len) => {
                    self.utf8_left = len - 1;
                    self.utf8_lead = b;
                }
                None => return false,
            },
            _ => {}
        }
        true
    }

    /// Reads `b` as part of the number in progress, if it can be.
    fn number_byte(&mut self, b: u8) -> bool {
        let Token::Num {
            needs_digit,
            zero,
            frac,
            exp,
            sign_ok,
        } = self.token
        else {
            return false;
        };
        let next = match b {
            b'0'..=b'9' if zero && !frac && !exp => return false,
            b'0'..=b'9' => Token::Num {
                needs_digit: false,
                // A leading zero is the whole integer part: `0` then `-0`.
                zero: needs_digit && !frac && !exp && b == b'0',
                frac,
                exp,
                sign_ok: false,
            },
            b'.' if !needs_digit && !frac && !exp => Token::Num {
                needs_digit: true,
                zero: false,
                frac: true,
                exp,
                sign_ok: false,
            },
            b'e' | b'E' if !needs_digit && !exp => Token::Num {
                needs_digit: true,
                zero: false,
                frac,
                exp: true,
                sign_ok: true,
            },
            b'+' | b'-' if sign_ok => Token::Num {
                needs_digit: true,
                zero: false,
                frac,
                exp,
                sign_ok: false,
            },
            _ => return false,
        };
        self.token = next;
        true
    }

    /// The suffix, from where the text stopped.
    fn complete(mut self, key: &[u8], value: &[u8]) -> Completion {
        if self.ended {
            return Completion::Whole;
        }
        let mut out = Vec::new();
        if !self.started {
            out.push(b'{');
            out.extend_from_slice(key);
            out.push(b':');
            out.extend_from_slice(value);
            out.push(b'}');
            return Completion::Suffix(out);
        }
        // Finish the token in progress.
        match self.token {
            Token::Str {
                key: is_key,
                escape,
            } => {
                // Half a UTF-8 character gets its smallest valid ending (the SDKs decode the
                // line as UTF-8 before parsing it).
                while self.utf8_left > 0 {
                    out.push(*utf8_next(self.utf8_lead).start());
                    self.utf8_lead = 0;
                    self.utf8_left -= 1;
                }
                match escape {
                    Some(0) => out.push(b'\\'),
                    Some(n) => out.extend(std::iter::repeat_n(b'0', usize::from(5 - n))),
                    None => {}
                }
                out.push(b'"');
                if is_key {
                    self.set(Expect::Colon);
                } else {
                    self.value_done();
                }
            }
            Token::Num { needs_digit, .. } => {
                if needs_digit {
                    out.push(b'0');
                }
                self.value_done();
            }
            Token::Literal { word, at } => {
                out.extend_from_slice(&word[at..]);
                self.value_done();
            }
            Token::None => {}
        }
        // Close every container inside the top object.
        while self.stack.len() > 1 {
            let Some((object, expect)) = self.stack.pop() else {
                break;
            };
            let filler: &[u8] = match (object, expect) {
                (true, Expect::Key) => b"\"_\":null",
                (_, Expect::Colon) => b":null",
                (_, Expect::Value) => b"null",
                _ => b"",
            };
            out.extend_from_slice(filler);
            out.push(if object { b'}' } else { b']' });
            self.value_done();
        }
        // The top object: one more member, then its end.
        let Some(&(_, expect)) = self.stack.last() else {
            return Completion::Impossible;
        };
        let before: &[u8] = match expect {
            Expect::FirstKey | Expect::Key => b"",
            Expect::Colon => b":null,",
            Expect::Value => b"null,",
            Expect::CommaOrEnd => b",",
            Expect::FirstValue => return Completion::Impossible,
        };
        out.extend_from_slice(before);
        out.extend_from_slice(key);
        out.push(b':');
        out.extend_from_slice(value);
        out.push(b'}');
        Completion::Suffix(out)
    }
}

/// How many bytes the UTF-8 character starting with `lead` has, if `lead` can start one.
fn utf8_len(lead: u8) -> Option<u8> {
    match lead {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// The bytes that may follow `lead` (a first byte; 0 for any later one) in valid UTF-8.
fn utf8_next(lead: u8) -> std::ops::RangeInclusive<u8> {
    match lead {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const KEY: &[u8] = b"\"error\"";
    const VALUE: &[u8] = b"{\"message\":\"m\"}";

    fn completed(text: &str) -> Value {
        completed_bytes(text.as_bytes())
    }

    fn completed_bytes(text: &[u8]) -> Value {
        match complete_object(text, KEY, VALUE) {
            Completion::Suffix(s) => {
                let mut whole = text.to_vec();
                whole.extend_from_slice(&s);
                serde_json::from_slice(&whole)
                    .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&whole)))
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn every_cut_of_a_real_chunk_completes_to_an_object_with_the_error() {
        let chunk = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"é \"q\" \u00e9\n","tool_calls":[{"index":0,"function":{"arguments":"{\"a\": -1.5e+3}"}}]},"logprobs":null,"finish_reason":null}],"usage":null,"x":[true,false,[],{}],"y":-0.25E-2}"#;
        let bytes = chunk.as_bytes();
        for cut in 0..bytes.len() {
            let v = completed_bytes(&bytes[..cut]);
            assert_eq!(v["error"]["message"], "m", "cut at {cut}");
            assert!(v.is_object());
        }
        assert_eq!(complete_object(bytes, KEY, VALUE), Completion::Whole);
        assert_eq!(
            complete_object(format!("{chunk} \n").as_bytes(), KEY, VALUE),
            Completion::Whole
        );
    }

    #[test]
    fn the_member_goes_last_and_nested_containers_get_placeholders() {
        assert_eq!(
            completed(r#"{"id":"x","choi"#),
            serde_json::json!({"id": "x", "choi": null, "error": {"message": "m"}})
        );
        assert_eq!(
            completed(r#"{"a":{"b":[1,"#)["a"],
            serde_json::json!({"b": [1, null]})
        );
        assert_eq!(completed(r#"{"a":{"#)["a"], serde_json::json!({}));
        assert_eq!(completed(r#"{"a":{"b":1,"#)["a"]["_"], Value::Null);
        assert_eq!(completed(r#"{"a":tr"#)["a"], true);
        assert_eq!(completed(r#"{"a":"\u00"#)["a"], "\u{0}");
        assert_eq!(completed(r#"{"a":"x\"#)["a"], "x\\");
        assert_eq!(completed(" \n")["error"]["message"], "m");
        assert_eq!(completed("")["error"]["message"], "m");
        // Half of `é` (0xC3 0xA9) and of a three-byte character.
        assert_eq!(completed_bytes(b"{\"a\":\"\xC3")["a"], "\u{C0}");
        assert_eq!(completed_bytes(b"{\"a\":\"\xE0")["a"], "\u{800}");
    }

    #[test]
    fn what_is_not_an_object_prefix_is_impossible() {
        for text in [
            "[1,",
            "\"s",
            "12",
            "{\"a\" 1",
            "{\"a\":1}x",
            "{\"a\":01",
            "{\"a\":\"line\nbreak",
            "{\"a\":-}",
            "{\"a\":nul1",
            "<html>",
        ] {
            assert_eq!(
                complete_object(text.as_bytes(), KEY, VALUE),
                Completion::Impossible,
                "{text:?}"
            );
        }
    }
}
