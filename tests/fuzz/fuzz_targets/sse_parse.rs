//! The incremental SSE parser (`ai_worker_proxy::sse::SseParser`): a stream (after a chunking
//! byte) fed in arbitrary pieces gives the same events as fed whole, and the same as a plain
//! line-by-line reading of the rules the module documents.
#![no_main]

use ai_worker_proxy::sse::{SseEvent, SseParser};
use ai_worker_proxy_fuzz::input::{byte, chunks, rest};
use libfuzzer_sys::fuzz_target;

/// The module's rules, read the slow way: the whole stream at once, line by line.
fn reference(stream: &[u8]) -> Vec<SseEvent> {
    let stream = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut rest = stream;
    while let Some(end) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        lines.push(&rest[..end]);
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    // The end of the stream ends the last line and the last event.
    lines.push(rest);
    lines.push(b"");
    let mut events = Vec::new();
    let (mut event, mut data): (String, Option<String>) = (String::new(), None);
    for line in lines {
        if line.is_empty() {
            match data.take() {
                Some(data) => events.push(SseEvent {
                    event: std::mem::take(&mut event),
                    data,
                }),
                None => event.clear(),
            }
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => event = value.into_owned(),
            b"data" => match &mut data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => data = Some(value.into_owned()),
            },
            _ => {}
        }
    }
    events
}

fn parse(pieces: &[bytes::Bytes]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        events.extend(parser.feed(piece));
        fed += piece.len();
        // An invalid UTF-8 byte in data is held as U+FFFD, three bytes.
        assert!(parser.buffered() <= 3 * fed, "holds more than it was fed");
    }
    events.extend(parser.finish());
    events
}

fuzz_target!(|data: &[u8]| {
    let stream = rest(data, 1);
    let whole = parse(&[bytes::Bytes::copy_from_slice(stream)]);
    assert_eq!(whole, reference(stream), "differs from the rules");
    let cut = parse(&chunks(stream, byte(data, 0)));
    assert_eq!(cut, whole, "differs when cut into pieces");
});
