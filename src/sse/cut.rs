//! Ending an SSE stream that failed after bytes reached the client, so that the client's SDK
//! reports the proxy's error, whatever the last bytes were.
//!
//! A pass-through forwards the upstream's bytes as they come, so a failure can leave the client
//! in the middle of an event: `data: {"id":"x","choi`. What the official SDKs do with the bytes
//! that follow (openai-python's `SSEDecoder`, openai-node's `_iterSSEMessages`, both read):
//! lines end at `\r`, `\n` or `\r\n`; a blank line dispatches the event if it has a `data:` line
//! (even an empty one) or an `event:` name; every dispatched event's data is JSON-parsed, and a
//! parse failure raises a decode error at once, so nothing after it is read; a payload with a
//! truthy `error` raises `APIError` with that error. A `data:` line runs until its line end, and
//! several `data:` lines of one event are joined with `\n`.
//!
//! So the half event cannot be dropped (it was sent) nor closed with a blank line (that is the
//! decode error); instead the error goes *into* it: the cut JSON is completed into a whole
//! object that carries the error (see [`super::json_prefix`]), `{"id":"x","choi":null,
//! "error":{...}}`, and the event is ended there. When the open event holds no data yet, the
//! error becomes its data; when its data is already whole (only the blank line was missing),
//! the event is ended and the error follows as an event of its own. Only when the event's
//! beginning is unknown (a relay that did not keep it, or an event too long to keep) does the
//! tail fall back to a blank line and the error event, and the SDKs then raise a decode error.

use super::json_prefix::{complete_object, Completion};

/// Longest open event kept; a chunk event is a few hundred bytes, and a longer one's beginning
/// is forgotten (its end then falls back to a blank line, see the module's notes).
const MAX_OPEN: usize = 256 * 1024;

/// The event a byte stream is in the middle of: fed the stream's bytes in order, it keeps those
/// since the last blank line.
#[derive(Debug, Clone)]
pub struct OpenEvent {
    bytes: Vec<u8>,
    /// The open event's beginning is not known (not seen, or longer than [`MAX_OPEN`]).
    unknown: bool,
    /// The last byte seen ended a line.
    line_start: bool,
    /// The last byte seen was `\r`: a `\n` next is part of the same line end.
    after_cr: bool,
}

impl OpenEvent {
    /// At the start of a stream.
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            unknown: false,
            line_start: true,
            after_cr: false,
        }
    }

    /// Somewhere in a stream, at a position not known until a blank line is seen.
    pub fn unknown() -> Self {
        Self {
            unknown: true,
            line_start: false,
            ..Self::new()
        }
    }

    /// Reads the next bytes of the stream. Usually a chunk ends at an event's end, and only
    /// its last bytes are looked at.
    pub fn feed(&mut self, chunk: &[u8]) {
        let Some(&last) = chunk.last() else {
            return;
        };
        let mut rest = chunk;
        if let Some(end) = last_event_end(chunk, self.line_start, self.after_cr) {
            self.bytes.clear();
            self.unknown = false;
            rest = &chunk[end..];
            if chunk[end - 1] == b'\r' {
                rest = rest.strip_prefix(b"\n").unwrap_or(rest);
            }
        } else if self.bytes.is_empty() && self.after_cr {
            // The `\n` of a `\r\n` that ended the last event.
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        if !self.unknown {
            if self.bytes.len() + rest.len() > MAX_OPEN {
                self.unknown = true;
                self.bytes = Vec::new();
            } else {
                self.bytes.extend_from_slice(rest);
            }
        }
        self.after_cr = last == b'\r';
        self.line_start = last == b'\r' || last == b'\n';
    }

    /// The open event's bytes so far (empty between events), if its beginning is known.
    pub fn bytes(&self) -> Option<&[u8]> {
        (!self.unknown).then_some(&self.bytes[..])
    }
}

impl Default for OpenEvent {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the last event of `chunk` ends (after the line end of its blank line), given whether
/// the bytes before `chunk` ended a line, and with `\r`.
fn last_event_end(chunk: &[u8], line_start: bool, after_cr: bool) -> Option<usize> {
    let mut before = chunk.len();
    while let Some(j) = memchr::memrchr2(b'\n', b'\r', &chunk[..before]) {
        if j == 0 && chunk[0] == b'\n' && after_cr {
            // The second half of a `\r\n` begun in the previous chunk ends nothing new.
            return None;
        }
        let start = if chunk[j] == b'\n' && j > 0 && chunk[j - 1] == b'\r' {
            j - 1
        } else {
            j
        };
        let blank = match start.checked_sub(1) {
            Some(k) => chunk[k] == b'\n' || chunk[k] == b'\r',
            None => line_start,
        };
        if blank {
            return Some(j + 1);
        }
        before = start;
    }
    None
}

/// The bytes that end a stream after `open` (the open event's bytes, `None` when unknown) with
/// `error` reported to the client: `error` is the OpenAI error object's JSON (`{"message":...}`),
/// sent as `{"error": error}`. `data: [DONE]` follows.
pub fn error_tail(open: Option<&[u8]>, error: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(error.len() + 64);
    match open {
        None => {
            // A blank line ends whatever was open (between events, it is an empty event that
            // nothing dispatches).
            out.extend_from_slice(b"\n\n");
            error_event(&mut out, error);
        }
        Some(open) => close_open_event(&mut out, open, error),
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// `data: {"error": error}` and the blank line.
fn error_event(out: &mut Vec<u8>, error: &[u8]) {
    out.extend_from_slice(b"data: {\"error\":");
    out.extend_from_slice(error);
    out.extend_from_slice(b"}\n\n");
}

/// Ends the event `open` so that it carries `error` (see the module's notes).
fn close_open_event(out: &mut Vec<u8>, open: &[u8], error: &[u8]) {
    if open.is_empty() {
        return error_event(out, error);
    }
    // A `\r` ended the last line; a `\n` now completes that line end without ending another.
    if open.ends_with(b"\r") {
        out.push(b'\n');
    }
    let (lines, last) = split_lines(open);
    let mut data: Vec<&[u8]> = lines.iter().filter_map(|l| data_value(l)).collect();
    // The cut line, when it is a `data:` line still open for more of its value.
    let open_data = (!last.is_empty() && last.contains(&b':'))
        .then(|| data_value(last))
        .flatten();
    match open_data {
        Some(value) => data.push(value),
        None if !last.is_empty() => {
            out.push(b'\n');
            // `data` alone is a data line with an empty value.
            if last == b"data" {
                data.push(b"");
            }
        }
        None => {}
    }
    if data.is_empty() {
        return error_event(out, error);
    }
    // What the SDK will parse: the data lines joined with `\n`, and, when the error must go on
    // a new data line, the `\n` that joins it.
    let mut text = data.join(&b'\n');
    if open_data.is_none() {
        text.push(b'\n');
    }
    match complete_object(&text, b"\"error\"", error) {
        Completion::Suffix(suffix) => {
            if open_data.is_none() {
                out.extend_from_slice(b"data: ");
            }
            out.extend_from_slice(&suffix);
            out.extend_from_slice(b"\n\n");
        }
        // A whole chunk that only lacked its blank line is delivered, then the error; data that
        // cannot be completed (not the beginning of a JSON object) is ended as it is.
        Completion::Whole | Completion::Impossible => {
            out.extend_from_slice(if open_data.is_some() { b"\n\n" } else { b"\n" });
            error_event(out, error);
        }
    }
}

/// The complete lines of `bytes` and the unterminated rest (`\r`, `\n` and `\r\n` end lines).
fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        lines.push(&rest[..end]);
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    (lines, rest)
}

/// The value of a `data` line (one leading space removed), or `None` for any other line.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let value = match line.iter().position(|&b| b == b':') {
        Some(colon) if &line[..colon] == b"data" => &line[colon + 1..],
        Some(_) => return None,
        None if line == b"data" => b"",
        None => return None,
    };
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ERROR: &[u8] =
        br#"{"message":"boom","type":"upstream_error","param":null,"code":"stream_interrupted"}"#;

    /// The events an SDK dispatches from `stream` (both SDKs' decoders: lines end at `\r`,
    /// `\n` or `\r\n`; a blank line dispatches when the event has a `data` line, even an empty
    /// one, or an `event` name; comments and other fields are skipped), as their joined data.
    fn sdk_events(stream: &[u8]) -> Vec<String> {
        let (lines, _) = split_lines(stream);
        let (mut events, mut data, mut named) = (Vec::new(), Vec::<String>::new(), false);
        for line in lines {
            if line.is_empty() {
                if named || !data.is_empty() {
                    events.push(data.join("\n"));
                }
                (data, named) = (Vec::new(), false);
            } else if line.starts_with(b"event:") {
                named = true;
            } else if let Some(value) = data_value(line) {
                data.push(String::from_utf8(value.to_vec()).unwrap());
            }
        }
        events
    }

    /// What an SDK reads from `sent` followed by the tail: each event's data parsed as JSON, in
    /// order, up to `[DONE]`; the SDKs stop at the first event that does not parse (`Err`).
    fn sdk_reads(sent: &[u8], open: Option<&[u8]>) -> Vec<Result<Value, String>> {
        let mut stream = sent.to_vec();
        stream.extend_from_slice(&error_tail(open, ERROR));
        let mut out = Vec::new();
        for data in sdk_events(&stream) {
            if data == "[DONE]" {
                break;
            }
            let parsed = serde_json::from_str::<Value>(&data).map_err(|_| data);
            let stop = parsed.is_err();
            out.push(parsed);
            if stop {
                break;
            }
        }
        out
    }

    fn open_after(stream: &[u8], split: usize) -> OpenEvent {
        let mut open = OpenEvent::new();
        open.feed(&stream[..split]);
        open.feed(&stream[split..]);
        open
    }

    fn is_error(v: &Result<Value, String>) -> bool {
        matches!(v, Ok(v) if v["error"]["message"] == "boom")
    }

    #[test]
    fn a_stream_cut_anywhere_ends_with_an_event_that_carries_the_error() {
        let stream = concat!(
            ": keep-alive\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\u{e9} \\\"1\\\"\"}}]}\r\n\r\n",
            "event: chunk\ndata: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\r",
        )
        .as_bytes();
        for cut in 0..=stream.len() {
            let sent = &stream[..cut];
            for split in [0, cut / 2, cut] {
                let open = open_after(sent, split);
                let reads = sdk_reads(sent, open.bytes());
                let last = reads.last().unwrap();
                assert!(is_error(last), "cut {cut} split {split}: {reads:?}");
                // Everything before the error is a whole chunk.
                assert!(
                    reads[..reads.len() - 1]
                        .iter()
                        .all(|r| matches!(r, Ok(v) if v.get("error").is_none())),
                    "cut {cut}: {reads:?}"
                );
            }
        }
    }

    #[test]
    fn without_the_open_event_an_sdk_reads_a_decode_error_instead() {
        let sent = b"data: {\"id\":\"x\"}\n\ndata: {\"id\":\"x\",\"choi";
        let reads = sdk_reads(sent, None);
        assert_eq!(reads.len(), 2);
        assert!(reads[1].is_err(), "{reads:?}");
        let mut open = OpenEvent::new();
        open.feed(sent);
        let reads = sdk_reads(sent, open.bytes());
        assert!(is_error(&reads[1]), "{reads:?}");
    }

    #[test]
    fn the_tail_in_each_case() {
        let tail = |open: &[u8]| String::from_utf8(error_tail(Some(open), b"{}")).unwrap();
        assert_eq!(tail(b""), "data: {\"error\":{}}\n\ndata: [DONE]\n\n");
        assert_eq!(
            tail(b"data: {\"id\":\"x\",\"choi"),
            "\":null,\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        // Whole data that only lacked its blank line, with `\n`, `\r` or no line end.
        assert_eq!(
            tail(b"data: {}\n"),
            "\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(
            tail(b"data: {}\r"),
            "\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(
            tail(b"data: {}"),
            "\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        // No data yet: the error is the event's data.
        assert_eq!(
            tail(b": comm"),
            "\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        assert_eq!(tail(b"da"), "\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n");
        assert_eq!(tail(b"data:"), "{\"error\":{}}\n\ndata: [DONE]\n\n");
        // Not JSON: ended as it is.
        assert_eq!(
            tail(b"data: <html"),
            "\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
        // Unknown: a blank line, then the error event.
        assert_eq!(
            String::from_utf8(error_tail(None, b"{}")).unwrap(),
            "\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn the_open_event_is_found_across_chunks_and_line_ends() {
        let mut open = OpenEvent::new();
        open.feed(b"data: a\r");
        assert_eq!(open.bytes(), Some(&b"data: a\r"[..]));
        open.feed(b"\n\r");
        assert_eq!(open.bytes(), Some(&b""[..]));
        open.feed(b"\ndata: b\n");
        assert_eq!(open.bytes(), Some(&b"data: b\n"[..]));
        open.feed(b"\ndata");
        assert_eq!(open.bytes(), Some(&b"data"[..]));
        let mut unknown = OpenEvent::unknown();
        unknown.feed(b"ta: x\n");
        assert_eq!(unknown.bytes(), None);
        unknown.feed(b"\ndata: y");
        assert_eq!(unknown.bytes(), Some(&b"data: y"[..]));
        let mut long = OpenEvent::new();
        long.feed(b"data: ");
        long.feed(&vec![b'x'; MAX_OPEN]);
        assert_eq!(long.bytes(), None);
        long.feed(b"\n\n");
        assert_eq!(long.bytes(), Some(&b""[..]));
    }
}
