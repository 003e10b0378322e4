//! An incremental Server-Sent Events parser (the WHATWG `text/event-stream` rules).
//!
//! Network chunks can split an event, a line, or a `\r\n` pair at any byte, so the parser keeps
//! only the incomplete line tail between calls; complete lines are read straight from the
//! caller's chunk. `\r\n`, `\r` and `\n` all end a line, `data:` lines are joined with `\n`,
//! comments (`:`) and unknown fields are ignored, and a leading UTF-8 BOM is skipped.
//!
//! [`cut`] ends a stream that failed mid-event so that the client's SDK still reads an error.

pub mod cut;
pub mod json_prefix;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` name, empty when the event had none (`message` by the spec's default).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses an SSE byte stream fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The current line, while its end has not arrived yet.
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    /// The previous piece ended with `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// The BOM check is done (it is only valid as the very first bytes).
    bom_checked: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for an incomplete line (for callers that bound memory).
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len()
    }

    /// Feeds the next piece of the stream; returns the events it completed, in order.
    pub fn feed(&mut self, input: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let held;
        let mut bytes = input;
        if !self.bom_checked {
            // The BOM itself may arrive split, so its first bytes are held until decidable.
            self.line.extend_from_slice(input);
            if self.line.len() < BOM.len() && BOM.starts_with(&self.line) {
                return out;
            }
            self.bom_checked = true;
            held = std::mem::take(&mut self.line);
            bytes = held.strip_prefix(BOM).unwrap_or(&held);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', bytes) {
            let terminator = bytes[end];
            if self.line.is_empty() {
                self.line_done(&bytes[..end], &mut out);
            } else {
                self.line.extend_from_slice(&bytes[..end]);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut out);
                // Keep the allocation for the next split line.
                self.line = line;
                self.line.clear();
            }
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
        out
    }

    /// The end of the stream: a last line or event without its terminator is still delivered.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            // No BOM is stripped here: `feed` already did at the start of the stream, and one
            // later on is part of the line (a stream shorter than a BOM holds no whole one).
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out);
        }
        self.line_done(b"", &mut out);
        out.pop()
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                out.push(SseEvent {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            } else {
                self.event.clear();
            }
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                self.event.clear();
                push_lossy(&mut self.event, value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                push_lossy(&mut self.data, value);
            }
            _ => {}
        }
    }
}

/// Appends `bytes` as UTF-8, invalid sequences replaced. `from_utf8` checks ASCII a word at a
/// time; the lossy decoder, only needed when that fails, goes byte by byte.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = include_str!("../tests/fixtures/anthropic/text.sse");

    fn parse_all(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(p.feed(piece));
        }
        out.extend(p.finish());
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn a_literal_stream_split_at_every_byte_gives_the_same_events() {
        let whole = parse_all(&[STREAM.as_bytes()]);
        assert_eq!(whole.len(), 9);
        assert_eq!(whole[0].event, "message_start");
        assert_eq!(whole[2], ev("ping", r#"{"type": "ping"}"#));
        assert_eq!(whole[8], ev("message_stop", r#"{"type":"message_stop"}"#));
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_all(&[a, b]), whole, "split at {split}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), whole);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_valid_text_kept() {
        let bytes = b"event: \xffx\ndata: caf\xc3\xa9 \xe2\x82\ndata: ok\n\n";
        assert_eq!(
            parse_all(&[bytes]),
            vec![ev("\u{FFFD}x", "caf\u{e9} \u{FFFD}\nok")]
        );
    }

    #[test]
    fn crlf_and_cr_line_ends_split_anywhere() {
        let lf = "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n";
        let expected = vec![ev("a", "1"), ev("b", "2")];
        for text in [
            lf.replace('\n', "\r\n"),
            lf.replace('\n', "\r"),
            lf.to_owned(),
        ] {
            let bytes = text.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                assert_eq!(parse_all(&[a, b]), expected, "{text:?} split at {split}");
            }
            let singles: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(parse_all(&singles), expected);
        }
    }

    #[test]
    fn multi_line_data_comments_and_field_rules() {
        let text =
            ": keep-alive\nevent: x\ndata: line one\ndata:line two\ndata\nid: 7\nretry: 10\n\n";
        assert_eq!(
            parse_all(&[text.as_bytes()]),
            vec![ev("x", "line one\nline two\n")]
        );
        // An event with no data is not dispatched, and its name does not leak into the next.
        assert_eq!(
            parse_all(&[b"event: lone\n\ndata: d\n\n"]),
            vec![ev("", "d")]
        );
        // Only one space after the colon is stripped.
        assert_eq!(parse_all(&[b"data:  two\n\n"]), vec![ev("", " two")]);
    }

    #[test]
    fn bom_is_skipped_even_when_split_and_a_final_event_is_flushed() {
        let text = b"\xEF\xBB\xBFevent: e\ndata: {}";
        for split in 0..=text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(parse_all(&[a, b]), vec![ev("e", "{}")], "split at {split}");
        }
        assert_eq!(parse_all(&[b"data: x\n"]), vec![ev("", "x")]);
        assert_eq!(parse_all(&[b"data: x\r"]), vec![ev("", "x")]);
        assert!(parse_all(&[b""]).is_empty());
        // Found by fuzzing (sse_parse): a BOM after the first line is not skipped, even in a
        // last line without its line end.
        assert!(parse_all(&[b"\n\xEF\xBB\xBFdata"]).is_empty());
        assert!(parse_all(&[b"\n", b"\xEF\xBB\xBFdata: x"]).is_empty());
        let mut p = SseParser::new();
        assert!(p.feed(b"\xEF\xBB").is_empty());
        assert!(p.feed(b"\xBFdata: partial").is_empty());
        assert_eq!(p.buffered(), "data: partial".len());
    }
}
