//! OpenAI and OpenAI-compatible APIs: the request goes upstream with only `model` replaced
//! (and tool-call ids another provider minted made to fit, [`tool_ids`]), and the response
//! comes back byte for byte as it arrives.
//!
//! One exception, for metering: a stream only reports usage when `stream_options.include_usage`
//! is set, so a streamed request whose client did not set it goes with it set, and the usage
//! chunk it adds (`"choices":[]` and a `usage` object, just before `data: [DONE]`) is taken out
//! of the client's stream again ([`PassThrough::stripping_usage`]).

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::core::error::ErrorObject;
use crate::core::fields::Field;
use crate::core::host::UpstreamRequest;
use crate::core::provider::{PrepareError, Provider, SecretLookup};
use crate::core::request::ChatRequest;
use crate::core::route::Target;
use crate::core::search::find;
use crate::core::stream::{collect_whole, Translate};
use crate::core::usage::{lenient, Lenient, Metered};
use crate::core::verdict::UpstreamError;
use crate::providers::tool_ids::{self, Wire};
use crate::providers::{openai_token, output_limit};
use crate::sse::SseParser;

/// OpenAI Chat Completions, passed through: `provider = "openai"` and `"openai-compatible"`.
pub struct OpenAi;

/// A pass-through request, ready for any key.
pub struct Prepared {
    /// The client's request with the target's model.
    body: Bytes,
    /// Whether the client asked for a stream.
    stream: bool,
    /// The proxy asked for the stream's usage chunk, which the client did not: it is taken out
    /// of the client's stream.
    strip_usage: bool,
    /// The proxy meters the request: its stream stays with the translator, which reads the
    /// usage, rather than being handed to the host unread.
    metered: bool,
}

impl Provider for OpenAi {
    type Prepared = Prepared;

    fn prepare(
        target: &'static Target,
        request: &ChatRequest,
        _secret: SecretLookup<'_>,
    ) -> Result<Prepared, PrepareError> {
        let body = request.body();
        let messages = tool_ids::portable_messages(body.field("messages"), Wire::OpenAi);
        let model = request.upstream_model(target);
        let requested = request.max_tokens_asked();
        let max_tokens = requested
            .map(|requested| output_limit::clamp(target, &model, requested))
            .filter(|clamped| Some(*clamped) != requested);
        // A Messages request's translation is the proxy's own, so it is fitted to the model:
        // OpenAI's reasoning models take only `max_completion_tokens`, and the others refuse
        // `reasoning_effort` (a client's own OpenAI request goes as the client wrote it).
        let front_door = request.anthropic().is_some();
        let fitted = Fitted {
            completion_tokens: front_door && target.provider == "openai",
            no_effort: front_door && !reasoning_model(&model),
        };
        // A stream reports usage only when asked to; the proxy asks when it meters the request.
        let strip_usage = request.stream && !request.include_usage && request.usage_wanted;
        let stream_options = strip_usage.then(|| with_usage(body.field("stream_options")));
        let body = if messages.is_none()
            && max_tokens.is_none()
            && fitted == Fitted::default()
            && stream_options.is_none()
        {
            request.to_json_with_model(&model)
        } else {
            let replaced = Replaced {
                body,
                model: &model,
                messages: messages.as_ref(),
                max_tokens: max_tokens.or(requested),
                fitted,
                stream_options: stream_options.as_ref(),
            };
            // Serialising in-memory JSON values into a Vec cannot fail.
            serde_json::to_vec(&replaced).unwrap_or_default()
        };
        Ok(Prepared {
            body: Bytes::from(body),
            stream: request.stream,
            strip_usage,
            metered: request.usage_wanted,
        })
    }

    /// `POST {base_url}/chat/completions` with the key as a bearer token.
    fn request(target: &'static Target, prepared: &Prepared, key: &str) -> UpstreamRequest {
        UpstreamRequest {
            // `concat`: one allocation, none of `format!`'s machinery, once per attempt.
            url: [target.base_url, "/chat/completions"].concat(),
            headers: vec![
                ("authorization", ["Bearer ", key].concat()),
                ("content-type", "application/json".to_owned()),
                UpstreamRequest::accept(prepared.stream),
            ],
            body: prepared.body.clone(),
            stream: prepared.stream,
        }
    }

    fn failure(_prepared: &Prepared, status: u16, body: &[u8]) -> UpstreamError {
        UpstreamError::answered(status, ErrorObject::from_upstream(status, body))
    }

    fn translator(
        _target: &'static Target,
        prepared: &Prepared,
        _created: u64,
    ) -> Box<dyn Translate> {
        let mut pass = PassThrough::new(prepared.stream);
        if prepared.strip_usage {
            pass = pass.stripping_usage();
        }
        pass.read_by_proxy = prepared.metered;
        Box::new(pass)
    }
}

/// The client's `stream_options` (an object or null) with `include_usage` set.
fn with_usage(options: Option<&Value>) -> Value {
    let mut options = match options {
        Some(Value::Object(options)) => options.clone(),
        _ => Map::new(),
    };
    options.insert("include_usage".into(), Value::Bool(true));
    Value::Object(options)
}

/// Models that take `reasoning_effort`, by id prefix (after any `vendor/`).
const REASONING_MODELS: [&str; 6] = ["o1", "o3", "o4", "gpt-5", "gpt-oss", "grok-3-mini"];

fn reasoning_model(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    REASONING_MODELS
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// How a front door's translated request is fitted to the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fitted {
    /// The budget goes as `max_completion_tokens`.
    completion_tokens: bool,
    /// `reasoning_effort` is left out.
    no_effort: bool,
}

/// The client's request with `model` replaced, and `messages` and the token budget where they
/// must change; every other field as sent, in its order.
struct Replaced<'a> {
    body: &'a Map<String, Value>,
    model: &'a str,
    messages: Option<&'a Value>,
    /// The budget clamped to the target's output limit, for both of its field names.
    max_tokens: Option<u64>,
    fitted: Fitted,
    /// `stream_options` asking for usage: in place of the client's, else right after `stream`.
    stream_options: Option<&'a Value>,
}

impl Serialize for Replaced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let options_after_stream =
            self.stream_options.is_some() && !self.body.contains_key("stream_options");
        for (key, value) in self.body {
            match key.as_str() {
                "model" => map.serialize_entry(key, self.model)?,
                "stream_options" if self.stream_options.is_some() => {
                    map.serialize_entry(key, &self.stream_options)?;
                }
                "stream" if options_after_stream => {
                    map.serialize_entry(key, value)?;
                    map.serialize_entry("stream_options", &self.stream_options)?;
                }
                "messages" if self.messages.is_some() => {
                    map.serialize_entry(key, &self.messages)?;
                }
                "max_tokens" if self.fitted.completion_tokens => {
                    map.serialize_entry("max_completion_tokens", &self.max_tokens)?;
                }
                "max_tokens" | "max_completion_tokens" if self.max_tokens.is_some() => {
                    map.serialize_entry(key, &self.max_tokens)?;
                }
                "reasoning_effort" if self.fitted.no_effort => {}
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// Forwards every chunk unchanged. A whole (non-streamed) answer is held until it has all
/// arrived and parsed as JSON: the client gets no byte of it before that, so a body that is cut
/// off, malformed, or an in-band error still fails over. A stream is held back until its first
/// token, so that an
/// upstream answering 200 with an in-band error first (some OpenAI-compatible servers report
/// rate limits that way), or with only a role chunk and keep-alives before it stalls, still
/// fails over; the held bytes then go out as they came, with the token. After it, bytes go out
/// as they come, and only the last few are watched, to tell a stream that ended with
/// `data: [DONE]` from one that was cut off, and to read the usage chunk that comes just before
/// it. Only when the proxy asked for that chunk itself ([`PassThrough::stripping_usage`]) are
/// the events read as they pass, to take it out.
pub struct PassThrough {
    stream: bool,
    /// A whole answer's bytes so far.
    whole: Vec<u8>,
    /// Until the first token: the bytes so far and their events; `None` once released.
    head: Option<Head>,
    /// Every later piece goes to the client as it is: a stream after its first token, without
    /// a usage chunk to take out.
    relaying: bool,
    /// The last bytes the client got (a stream's).
    recent: Recent,
    /// Takes the usage chunk out of the client's stream (the proxy asked for it, not the
    /// client).
    strip: Option<Strip>,
    /// The usage of a whole answer, or of the usage chunk taken out.
    usage: Option<Metered>,
    /// The rest must pass through here (its usage is read), never be carried by the host.
    read_by_proxy: bool,
}

/// A stream's bytes before its first token, read event by event as they complete.
struct Head {
    bytes: Vec<u8>,
    events: SseParser,
}

const DONE: &[u8] = b"[DONE]";
/// The bytes judged for the stream's end (`data: [DONE]` and line ends).
const TAIL: usize = 32;
/// How much of the end of the client's stream is kept, to read its last usage from: a usage
/// chunk is a few hundred bytes. A power of two, so that the ring's index is a mask.
const RECENT: usize = 2 * 1024;
/// Held bytes beyond this are released without waiting for a token (a stream that sends this
/// much before one is not an OpenAI stream; this only bounds memory).
const MAX_HEAD: usize = 64 * 1024;

impl PassThrough {
    /// A pass-through for a streamed (`true`) or whole JSON response.
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            head: stream.then(|| Head {
                bytes: Vec::new(),
                events: SseParser::new(),
            }),
            relaying: false,
            recent: Recent::new(),
            strip: None,
            usage: None,
            read_by_proxy: false,
            whole: Vec::new(),
        }
    }

    /// The same pass-through for a stream whose usage chunk the proxy asked for and the client
    /// did not: that chunk is taken out of the client's stream (whose bytes are otherwise the
    /// upstream's), and it is no relay: every chunk must pass through here.
    pub fn stripping_usage(mut self) -> Self {
        if self.stream {
            self.strip = Some(Strip::new());
        }
        self
    }

    /// A piece that is not simply relayed: a whole answer's, or a stream's before its first
    /// token or with its usage chunk to take out.
    #[inline(never)]
    fn read(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        if !self.stream {
            collect_whole(&mut self.whole, &upstream)?;
            return Ok(Bytes::new());
        }
        let usage_is_token = self.strip.is_none();
        let out = match self.head.as_mut() {
            None => upstream,
            Some(head) => {
                head.bytes.extend_from_slice(&upstream);
                let mut token = false;
                // Comments and blank lines make no event, so only data events are judged.
                for event in head.events.feed(&upstream) {
                    if is_token(&event.data, usage_is_token)? {
                        token = true;
                        break;
                    }
                }
                if !token && head.bytes.len() < MAX_HEAD {
                    return Ok(Bytes::new());
                }
                self.relaying = self.strip.is_none();
                Bytes::from(self.head.take().map(|h| h.bytes).unwrap_or_default())
            }
        };
        let out = self.filtered(out);
        self.recent.push(&out);
        Ok(out)
    }

    fn ended_with_done(&self) -> bool {
        let tail = self.recent.last(TAIL);
        let trimmed = tail.trim_ascii_end();
        trimmed.ends_with(DONE) && {
            let before = trimmed[..trimmed.len() - DONE.len()].trim_ascii_end();
            before.ends_with(b"data:")
        }
    }

    /// The client's bytes for what the upstream sent: as they are, or without the usage chunk.
    fn filtered(&mut self, out: Bytes) -> Bytes {
        match self.strip.as_mut() {
            None => out,
            Some(strip) => {
                let (out, usage) = strip.feed(out);
                if usage.is_some() {
                    self.usage = usage;
                }
                out
            }
        }
    }
}

impl Translate for PassThrough {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        if self.relaying {
            // After the first token, as it comes (the hot path: only its end is kept).
            self.recent.push(&upstream);
            return Ok(upstream);
        }
        self.read(upstream)
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        if !self.stream {
            let (out, usage) = whole_answer(std::mem::take(&mut self.whole))?;
            self.usage = usage;
            return Ok(out);
        }
        // A stream that ended before any token is released here, then judged by its end (a
        // last event without its blank line is judged too).
        let held = match self.head.take() {
            Some(mut head) => {
                if let Some(event) = head.events.finish() {
                    is_token(&event.data, self.strip.is_none())?;
                }
                Bytes::from(head.bytes)
            }
            None => Bytes::new(),
        };
        let mut out = self.filtered(held);
        if let Some(strip) = self.strip.as_mut() {
            let (last, usage) = strip.finish();
            if usage.is_some() {
                self.usage = usage;
            }
            if !last.is_empty() {
                let mut both = Vec::with_capacity(out.len() + last.len());
                both.extend_from_slice(&out);
                both.extend_from_slice(&last);
                out = Bytes::from(both);
            }
        }
        self.recent.push(&out);
        if !self.ended_with_done() {
            return Err(UpstreamError::truncated(
                "the upstream closed the stream before `data: [DONE]`",
            ));
        }
        Ok(out)
    }

    /// Once the first token is out, every byte passes unchanged (only the end is judged),
    /// unless the usage chunk is to be taken out.
    fn relays(&self) -> bool {
        self.relaying && !self.read_by_proxy
    }

    /// A whole answer's usage; a stream's usage chunk (taken out, or the last event with a
    /// `usage` object among the last bytes the client got).
    fn usage(&self) -> Option<Metered> {
        if self.usage.is_some() || !self.stream {
            return self.usage;
        }
        last_usage(&self.recent.last(RECENT))
    }
}

/// The last [`RECENT`] bytes of a stream, in a ring: a piece costs a copy of (at most) its
/// last `RECENT` bytes, whatever came before.
struct Recent {
    ring: Box<[u8; RECENT]>,
    /// Bytes written so far (the next write goes at `written % RECENT`).
    written: usize,
}

impl Recent {
    fn new() -> Self {
        Self {
            ring: Box::new([0; RECENT]),
            written: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(RECENT)..];
        let at = self.written % RECENT;
        let (first, second) = bytes.split_at(bytes.len().min(RECENT - at));
        self.ring[at..at + first.len()].copy_from_slice(first);
        if !second.is_empty() {
            self.ring[..second.len()].copy_from_slice(second);
        }
        self.written += bytes.len();
    }

    /// The last (up to) `n` bytes pushed.
    fn last(&self, n: usize) -> Vec<u8> {
        let n = n.min(RECENT).min(self.written);
        let end = self.written % RECENT;
        let mut out = Vec::with_capacity(n);
        if end >= n {
            out.extend_from_slice(&self.ring[end - n..end]);
        } else {
            out.extend_from_slice(&self.ring[RECENT - (n - end)..]);
            out.extend_from_slice(&self.ring[..end]);
        }
        out
    }
}

/// Takes the usage chunk out of a stream as it passes, a whole event at a time: bytes of an
/// event not yet complete wait for the rest of it (a client only acts on whole events anyway),
/// unless it is already too long to be a usage chunk.
struct Strip {
    /// The start of the event the last piece ended in.
    partial: Vec<u8>,
    /// Where the reading of the stream is, between pieces.
    lines: Lines,
    /// The current event is too long to be a usage chunk: its bytes go out as they come.
    passing: bool,
}

/// An event still incomplete past this many bytes is not a usage chunk (which is a few hundred
/// bytes): it is no longer held.
const MAX_USAGE_EVENT: usize = 64 * 1024;

impl Strip {
    fn new() -> Self {
        Self {
            partial: Vec::new(),
            lines: Lines::START,
            passing: false,
        }
    }

    /// The client's bytes for `piece`, and the usage if its usage chunk was taken out.
    fn feed(&mut self, piece: Bytes) -> (Bytes, Option<Metered>) {
        if piece.is_empty() {
            return (piece, None);
        }
        // Whole events, none with an empty list: the piece as it is, unread (the common case).
        if self.partial.is_empty()
            && !self.passing
            && self.lines == Lines::START
            && (piece.ends_with(b"\n\n") || piece.ends_with(b"\r\n\r\n"))
            && !may_have_empty_list(&piece)
        {
            return (without_null_usage(piece), None);
        }
        // The bytes to read, from the start of an event (or within one that is passing);
        // `pos` is where reading resumes.
        let mut pos = self.partial.len();
        let bytes = if self.partial.is_empty() {
            piece
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(&piece);
            Bytes::from(joined)
        };
        let mut start = 0;
        let mut usage = None;
        // What the client gets, once it differs from a prefix of `bytes`.
        let mut kept: Option<Vec<u8>> = None;
        while let Some(end) = self.lines.next_end(&bytes, &mut pos) {
            let event = &bytes[start..end];
            // The end of an event that was passing is not a whole event.
            let passing = std::mem::take(&mut self.passing);
            let found = if passing { None } else { usage_chunk(event) };
            match found {
                Some(found) => {
                    usage = Some(found);
                    kept.get_or_insert_with(|| bytes[..start].to_vec());
                }
                None => {
                    if let Some(kept) = kept.as_mut() {
                        kept.extend_from_slice(event);
                    }
                }
            }
            start = end;
        }
        let mut sent = start;
        if self.passing || bytes.len() - start > MAX_USAGE_EVENT {
            self.passing = true;
            sent = bytes.len();
            if let Some(kept) = kept.as_mut() {
                kept.extend_from_slice(&bytes[start..]);
            }
        } else {
            self.partial.extend_from_slice(&bytes[start..]);
        }
        let out = match kept {
            Some(kept) => Bytes::from(kept),
            None => bytes.slice(..sent),
        };
        (without_null_usage(out), usage)
    }

    /// What is left when the stream ends: an event without its blank line (a last `data:
    /// [DONE]`), unless it is the usage chunk.
    fn finish(&mut self) -> (Bytes, Option<Metered>) {
        self.lines = Lines::START;
        self.passing = false;
        let last = std::mem::take(&mut self.partial);
        match usage_chunk(&last) {
            Some(usage) => (Bytes::new(), Some(usage)),
            None => (without_null_usage(Bytes::from(last)), None),
        }
    }
}

/// `bytes` without the `"usage":null` member that every chunk carries once usage is asked
/// for: the client did not ask, and gets its chunks as they would have been. Inside a JSON
/// string the quotes would be escaped, so only members match. One scan for the member's name;
/// a copy only of a chunk that has the member.
fn without_null_usage(bytes: Bytes) -> Bytes {
    const NAME: &[u8] = b"\"usage\"";
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = find(&bytes, NAME, from) {
        from = at + NAME.len();
        // `"usage":null` or `"usage": null`, then the member's separator on one side.
        let rest = &bytes[from..];
        let value = [&b":null"[..], b": null"]
            .into_iter()
            .find(|v| rest.starts_with(v))
            .map(|v| from + v.len());
        let Some(end) = value else { continue };
        let (cut_from, cut_to) = if bytes[..at].ends_with(b", ") {
            (at - 2, end)
        } else if bytes[..at].ends_with(b",") {
            (at - 1, end)
        } else if bytes[end..].starts_with(b", ") {
            (at, end + 2)
        } else if bytes[end..].starts_with(b",") {
            (at, end + 1)
        } else {
            continue;
        };
        let kept = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
        kept.extend_from_slice(&bytes[copied..cut_from]);
        copied = cut_to;
        from = cut_to;
    }
    match out {
        None => bytes,
        Some(mut kept) => {
            kept.extend_from_slice(&bytes[copied..]);
            Bytes::from(kept)
        }
    }
}

/// Where an SSE reader is in its lines: `\r\n`, `\n` and `\r` end a line, and an empty line
/// ends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lines {
    /// The last byte ended a line (or the event just began).
    line_start: bool,
    /// The last byte was `\r`: a `\n` next belongs to it.
    after_cr: bool,
    /// An empty line ended with `\r`: the event ends after it, and after its `\n` if that
    /// comes next.
    blank_cr: bool,
}

impl Lines {
    const START: Lines = Lines {
        line_start: true,
        after_cr: false,
        blank_cr: false,
    };

    /// The end of the next event in `bytes` from `pos` on (past its empty line), moving `pos`;
    /// `None` (with `pos` at the end) when no event ends there.
    fn next_end(&mut self, bytes: &[u8], pos: &mut usize) -> Option<usize> {
        while let Some(&b) = bytes.get(*pos) {
            if self.blank_cr {
                *self = Self::START;
                if b == b'\n' {
                    *pos += 1;
                }
                return Some(*pos);
            }
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                *pos += 1;
                continue;
            }
            match b {
                b'\n' if self.line_start => {
                    *pos += 1;
                    *self = Self::START;
                    return Some(*pos);
                }
                b'\n' => self.line_start = true,
                b'\r' => {
                    self.blank_cr = self.line_start;
                    self.line_start = true;
                    self.after_cr = true;
                }
                _ => {
                    self.line_start = false;
                    // The rest of the line, at once.
                    let rest = &bytes[*pos..];
                    match rest.iter().position(|&c| c == b'\n' || c == b'\r') {
                        Some(at) => {
                            *pos += at;
                            continue;
                        }
                        None => {
                            *pos = bytes.len();
                            return None;
                        }
                    }
                }
            }
            *pos += 1;
        }
        None
    }
}

/// The usage of `event` if it is a usage chunk: `"choices":[]` and a `usage` object. Only an
/// event with an empty `choices` list is parsed.
fn usage_chunk(event: &[u8]) -> Option<Metered> {
    if !has_empty_choices(event) {
        return None;
    }
    let mut parser = SseParser::new();
    let mut events = parser.feed(event);
    events.extend(parser.finish());
    let [event] = events.as_slice() else {
        return None;
    };
    #[derive(Deserialize)]
    struct Chunk {
        choices: Vec<IgnoredAny>,
        #[serde(default, deserialize_with = "lenient")]
        usage: Option<WireUsage>,
    }
    let chunk: Chunk = serde_json::from_str(&event.data).ok()?;
    if !chunk.choices.is_empty() {
        return None;
    }
    chunk.usage.map(WireUsage::metered)
}

/// Whether `bytes` may hold an empty list: a `[` followed by `]` or white space. Reads every
/// byte without branching, so that it is vectorised.
fn may_have_empty_list(bytes: &[u8]) -> bool {
    let next = bytes.get(1..).unwrap_or_default();
    bytes.iter().zip(next).fold(false, |found, (&a, &b)| {
        found
            | ((a == b'[')
                & ((b == b']') | (b == b' ') | (b == b'\n') | (b == b'\r') | (b == b'\t')))
    })
}

/// Whether `bytes` hold `"choices"` with an empty list (`"choices":[]`, spaces allowed).
fn has_empty_choices(bytes: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b']') {
        let close = from + at;
        from = close + 1;
        let before = bytes[..close].trim_ascii_end();
        let Some(before) = before.strip_suffix(b"[") else {
            continue;
        };
        let Some(before) = before.trim_ascii_end().strip_suffix(b":") else {
            continue;
        };
        if before.trim_ascii_end().ends_with(b"\"choices\"") {
            return true;
        }
    }
    false
}

/// The usage of the last event in `bytes` whose data has a `usage` object (events before the
/// first whole line of `bytes` are not read). The usage chunk is nearly always the last event
/// but `[DONE]`: the events from the line of the last `"usage"` on are read first, and the whole
/// of `bytes` only if they have none.
fn last_usage(bytes: &[u8]) -> Option<Metered> {
    let key = last_usage_key(bytes)?;
    let line = memchr::memrchr2(b'\n', b'\r', &bytes[..key]).map_or(0, |end| end + 1);
    usage_of_last_event(&bytes[line..]).or_else(|| {
        if line > 0 {
            usage_of_last_event(bytes)
        } else {
            None
        }
    })
}

/// Where the last `"usage"` in `bytes` starts (not `memchr::memmem::rfind`: see
/// [`crate::core::search`]).
fn last_usage_key(bytes: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"usage\"";
    (0..bytes.len())
        .rev()
        .find(|&at| bytes[at..].starts_with(KEY))
}

/// The usage of the last event in `bytes` whose data has a `usage` object.
fn usage_of_last_event(bytes: &[u8]) -> Option<Metered> {
    let mut parser = SseParser::new();
    let mut events = parser.feed(bytes);
    events.extend(parser.finish());
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default, deserialize_with = "lenient")]
        usage: Option<WireUsage>,
    }
    events
        .iter()
        .rev()
        .filter(|event| has_usage_object(&event.data))
        .find_map(|event| serde_json::from_str::<Chunk>(&event.data).ok()?.usage)
        .map(WireUsage::metered)
}

/// Whether `data` has a `"usage"` key whose value is an object.
fn has_usage_object(data: &str) -> bool {
    data.match_indices("\"usage\"").any(|(at, key)| {
        let rest = data[at + key.len()..].trim_start();
        rest.strip_prefix(':')
            .is_some_and(|value| value.trim_start().starts_with('{'))
    })
}

/// OpenAI's `usage` object, as far as metering reads it.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn metered(self) -> Metered {
        Metered::from_openai(
            self.prompt_tokens.unwrap_or(0),
            self.prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            self.completion_tokens.unwrap_or(0),
            self.completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        )
    }
}

/// A whole answer, once it has all arrived: passed on if it is a JSON object that is not an
/// error, else the attempt's failure; with its usage, if it reports one.
fn whole_answer(body: Vec<u8>) -> Result<(Bytes, Option<Metered>), UpstreamError> {
    /// Parses the whole body (so malformed JSON is caught) but keeps only `error` and `usage`:
    /// `Option<WireUsage>` read strictly, `Lenient<WireUsage>` through a `Value`.
    #[derive(serde::Deserialize)]
    struct Probe<U> {
        error: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        usage: U,
    }
    // serde reads a struct from a JSON array as well (`[null]` is a `Probe`): only an object
    // is an answer.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(UpstreamError::truncated(
            "the upstream's 200 answer is not a JSON object",
        ));
    }
    // Nearly every answer's usage reads strictly, which skips building a `Value` of it (4 % of
    // a JSON request's instructions natively); only an odd one is read a second time. Not in
    // the Worker, where the second reader's code costs 1.2 KB of its 300 KB gzipped budget.
    let strict = if cfg!(target_arch = "wasm32") {
        Err(())
    } else {
        serde_json::from_slice::<Probe<Option<WireUsage>>>(&body).map_err(|_| ())
    };
    let probe = strict.or_else(|()| {
        serde_json::from_slice::<Probe<Lenient<WireUsage>>>(&body).map(|probe| Probe {
            error: probe.error,
            usage: probe.usage.0,
        })
    });
    match probe {
        Ok(Probe { error: None, usage }) => Ok((Bytes::from(body), usage.map(WireUsage::metered))),
        Ok(Probe { error: Some(_), .. }) => {
            let text = String::from_utf8_lossy(&body);
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            Err(in_band_error(&value, &text).unwrap_or_else(|| {
                UpstreamError::truncated("the upstream answered 200 with an error")
            }))
        }
        Err(e) => Err(UpstreamError::truncated(format!(
            "the upstream's 200 answer is not a JSON object: {e}"
        ))),
    }
}

/// Judges one data event before the first token: `Ok(true)` for a token, `Ok(false)` for an
/// event to hold, `Err` for an in-band error. A token is `[DONE]`, a finish reason, usage
/// (unless `usage_is_token` is false: the proxy's own usage chunk, which the client will not
/// see), or a delta with text, reasoning, a refusal or a tool call; a role-only chunk
/// (`{"role": "assistant","content":""}`) or a chunk with no choices (Azure's
/// `prompt_filter_results`) is not. Data that is not JSON is a malformed stream: the attempt
/// fails (after the first token events are relayed unread, so only the head is judged).
fn is_token(data: &str, usage_is_token: bool) -> Result<bool, UpstreamError> {
    if data.trim() == "[DONE]" {
        return Ok(true);
    }
    match openai_token::token(data, usage_is_token) {
        Some(token) => Ok(token),
        None => is_token_by_value(data, usage_is_token),
    }
}

/// [`is_token`] read through a `serde_json::Value`: for what the probes of
/// [`openai_token::token`] leave (errors, odd shapes).
fn is_token_by_value(data: &str, usage_is_token: bool) -> Result<bool, UpstreamError> {
    let Ok(value) = serde_json::from_str::<Value>(data) else {
        return Err(UpstreamError::in_band(
            502,
            ErrorObject::new(
                "the upstream sent a stream event that is not JSON",
                "upstream_error",
                None,
                Some("invalid_upstream_event"),
            ),
        ));
    };
    if let Some(error) = in_band_error(&value, data) {
        return Err(error);
    }
    let filled = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if usage_is_token && filled(value.get("usage")) {
        return Ok(true);
    }
    let choices = value.get("choices").and_then(Value::as_array);
    Ok(choices.into_iter().flatten().any(|choice| {
        let delta = choice.get("delta");
        filled(choice.get("finish_reason"))
            || [
                "content",
                "reasoning_content",
                "reasoning",
                "refusal",
                "tool_calls",
                "function_call",
                "audio",
            ]
            .iter()
            .any(|field| filled(delta.and_then(|d| d.get(*field))))
    }))
}

/// An OpenAI-style `{"error": {...}}` payload (`data` as sent), as the failure it reports.
fn in_band_error(value: &Value, data: &str) -> Option<UpstreamError> {
    value.get("error").filter(|e| e.is_object())?;
    let error = ErrorObject::from_upstream(502, data.as_bytes());
    let rate_limited = [error.code.as_deref(), Some(error.kind.as_str())]
        .into_iter()
        .flatten()
        .any(|s| s.contains("rate_limit") || s == "429");
    Some(UpstreamError::in_band(
        if rate_limited { 429 } else { 502 },
        error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_answer_is_held_until_complete_and_valid() {
        let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#;
        let mut p = PassThrough::new(false);
        assert!(p
            .chunk(Bytes::from_static(&answer.as_bytes()[..20]))
            .unwrap()
            .is_empty());
        assert!(p
            .chunk(Bytes::from_static(&answer.as_bytes()[20..]))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap(), answer.as_bytes());
        for (body, status) in [
            (r#"{"id":"chatcmpl-1","choices":["#, 502),
            ("<html><body>502 Bad Gateway</body></html>", 502),
            // Found by fuzzing (openai_response): an array is JSON, but not an answer.
            ("[null]", 502),
            (" [] ", 502),
            (
                r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
                429,
            ),
        ] {
            let failure = feed(false, &[body]).unwrap_err();
            assert_eq!((failure.status, failure.in_band), (status, true), "{body}");
        }
    }

    #[test]
    fn a_whole_answers_usage_is_read_and_an_odd_one_is_none() {
        let usage = |usage: &str| {
            let body = format!(r#"{{"id":"chatcmpl-1","choices":[],"usage":{usage}}}"#);
            let (out, usage) = whole_answer(body.clone().into_bytes()).unwrap();
            assert_eq!(out, body.as_bytes());
            usage
        };
        assert_eq!(
            usage(
                r#"{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}"#
            ),
            Some(Metered::from_openai(12, 4, 3, 0))
        );
        // A repeated field fails the strict reading; the second, through a `Value`, takes the
        // last, as it always did.
        assert_eq!(
            usage(r#"{"prompt_tokens":1,"prompt_tokens":2,"completion_tokens":3}"#),
            Some(Metered::from_openai(2, 0, 3, 0))
        );
        for odd in [
            r#"{"prompt_tokens":"12"}"#,
            "5",
            r#"{"prompt_tokens_details":7}"#,
            "null",
        ] {
            assert_eq!(usage(odd), None, "{odd}");
        }
    }

    #[test]
    fn a_whole_answer_past_the_limit_fails_the_attempt() {
        use crate::core::stream::{too_large, MAX_WHOLE_BODY};
        let mut p = PassThrough::new(false);
        let half = Bytes::from(vec![b' '; MAX_WHOLE_BODY / 2]);
        assert!(p.chunk(half.clone()).unwrap().is_empty());
        assert!(p.chunk(half).unwrap().is_empty());
        let failure = p.chunk(Bytes::from_static(b"{")).unwrap_err();
        assert_eq!(failure.error.message, too_large().error.message);
    }

    #[test]
    fn a_malformed_event_before_the_first_token_fails_the_attempt() {
        let cut =
            "data: {\"id\":\"chatcmpl-x\",\"choices\":[{\"delta\":{\"content\n\ndata: [DONE]\n\n";
        let failure = feed(true, &[cut]).unwrap_err();
        assert_eq!(
            failure.error.code.as_deref(),
            Some("invalid_upstream_event")
        );
        let html = "<html><body>502 Bad Gateway</body></html>";
        assert!(
            feed(true, &[html]).is_err(),
            "no event at all, then no [DONE]"
        );
    }

    fn feed(stream: bool, chunks: &[&'static str]) -> Result<String, UpstreamError> {
        let mut p = PassThrough::new(stream);
        let mut out = String::new();
        for c in chunks {
            out.push_str(std::str::from_utf8(&p.chunk(Bytes::from_static(c.as_bytes()))?).unwrap());
        }
        out.push_str(std::str::from_utf8(&p.end()?).unwrap());
        Ok(out)
    }

    #[test]
    fn forwards_bytes_unchanged_and_accepts_done_split_anywhere() {
        let sse = "data: {\"id\":\"chatcmpl-1\",\"choices\":[]}\n\ndata: [DONE]\n\n";
        for split in 0..sse.len() {
            let (a, b) = sse.split_at(split);
            let a: &'static str = Box::leak(a.to_owned().into_boxed_str());
            let b: &'static str = Box::leak(b.to_owned().into_boxed_str());
            assert_eq!(feed(true, &[a, b]).unwrap(), sse, "split at {split}");
        }
        assert!(feed(true, &["data: {}\r\n\r\ndata:[DONE]\r\n\r\n"]).is_ok());
    }

    #[test]
    fn a_stream_without_done_is_truncated() {
        let e = feed(true, &["data: {\"choices\":[]}\n\n"]).unwrap_err();
        assert_eq!(e.error.code.as_deref(), Some("stream_interrupted"));
        assert!(feed(true, &["data: {\"content\":\"[DONE]\"}\n\n"]).is_err());
    }

    const ROLE: &str = "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
    const TOKEN: &str =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";

    /// What each call returns for `chunks`, fed one at a time.
    fn calls(chunks: &[&str]) -> Vec<Result<String, UpstreamError>> {
        let mut p = PassThrough::new(true);
        chunks
            .iter()
            .map(|c| {
                p.chunk(Bytes::from(c.to_string()))
                    .map(|b| String::from_utf8(b.to_vec()).unwrap())
            })
            .collect()
    }

    #[test]
    fn an_error_before_the_first_token_fails_the_attempt_and_later_ones_pass() {
        let first = feed(
            true,
            &[
                "data: {\"error\":{\"message\":\"slow down\",",
                "\"type\":\"rate_limit_error\",\"code\":null}}\n\n",
            ],
        );
        let e = first.unwrap_err();
        assert_eq!((e.status, e.error.message.as_str()), (429, "slow down"));
        // After a role-only chunk, still before any token.
        let after_role = calls(&[ROLE, "data: {\"error\":{\"message\":\"boom\"}}\n\n"]);
        assert_eq!(after_role[0].as_deref().ok(), Some(""));
        assert_eq!(after_role[1].as_ref().unwrap_err().error.message, "boom");
        let later = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"boom\"}}\n\ndata: [DONE]\n\n";
        assert_eq!(feed(true, &[later]).unwrap(), later);
    }

    #[test]
    fn a_role_chunk_and_keep_alives_are_held_then_sent_verbatim_with_the_first_token() {
        let out = calls(&[
            ROLE,
            ": keep-alive\n\n",
            &TOKEN[..20],
            &TOKEN[20..],
            "data: [DONE]\n\n",
        ]);
        let out: Vec<&str> = out.iter().map(|r| r.as_deref().unwrap()).collect();
        assert_eq!(
            out,
            [
                "",
                "",
                "",
                &format!("{ROLE}: keep-alive\n\n{TOKEN}")[..],
                "data: [DONE]\n\n"
            ]
        );
        // Reasoning, refusals and tool calls are tokens too.
        for delta in [
            r#"{"reasoning_content":"hm"}"#,
            r#"{"reasoning":"hm"}"#,
            r#"{"refusal":"no"}"#,
            r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":""}}]}"#,
        ] {
            let event = format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n");
            assert_eq!(
                calls(&[ROLE, &event])[1].as_deref().unwrap(),
                format!("{ROLE}{event}")
            );
        }
    }

    #[test]
    fn a_stream_without_content_commits_at_its_finish_usage_or_done() {
        let finish =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0,\"total_tokens\":1}}\n\n";
        for last in [finish, usage, "data: [DONE]\n\n"] {
            assert_eq!(
                calls(&[ROLE, last])[1].as_deref().unwrap(),
                format!("{ROLE}{last}")
            );
        }
        // Azure's prompt filter results and empty choices are not a token.
        let filter = "data: {\"choices\":[],\"prompt_filter_results\":[{\"prompt_index\":0}]}\n\n";
        assert_eq!(calls(&[filter])[0].as_deref().unwrap(), "");
        // A stream that ends held: released at its end, and judged by it.
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p
            .chunk(Bytes::from_static(b"data: [DONE]"))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap(), format!("{ROLE}data: [DONE]"));
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p.end().is_err());
        let mut p = PassThrough::new(true);
        assert!(p.chunk(Bytes::from(ROLE)).unwrap().is_empty());
        assert!(p
            .chunk(Bytes::from_static(
                b"data: {\"error\":{\"message\":\"late\"}}"
            ))
            .unwrap()
            .is_empty());
        assert_eq!(p.end().unwrap_err().error.message, "late");
    }

    #[test]
    fn comments_before_the_first_data_event_decide_nothing() {
        let error = "data: {\"error\":{\"message\":\"Provider returned error\",\"code\":502}}\n\n";
        for comment in [
            ": OPENROUTER PROCESSING\n\n",
            ":\n\n",
            "\n\n",
            ": ping\r\n\r\n",
        ] {
            let out = calls(&[comment, error]);
            assert_eq!(out[0].as_deref().unwrap(), "", "{comment:?}");
            assert_eq!(
                out[1].as_ref().unwrap_err().error.message,
                "Provider returned error",
                "{comment:?}"
            );
            assert_eq!(
                feed(true, &[comment, TOKEN, "data: [DONE]\n\n"]).unwrap(),
                format!("{comment}{TOKEN}data: [DONE]\n\n")
            );
        }
    }

    #[test]
    fn the_core_does_not_commit_on_a_role_chunk_from_a_stalled_upstream() {
        use crate::core::host::{BodyError, UpstreamBody};
        use crate::core::stream::commit;
        use futures_util::{stream, FutureExt, StreamExt};
        let stalled = |chunks: Vec<&'static str>| -> UpstreamBody {
            let items: Vec<Result<Bytes, BodyError>> =
                chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
            Box::new(stream::iter(items).chain(stream::pending()))
        };
        let mut p = PassThrough::new(true);
        let mut body = stalled(vec![ROLE, ": keep-alive\n\n"]);
        // Still waiting for a token: the failover loop's first-token deadline decides.
        assert!(commit(&mut p, &mut body).now_or_never().is_none());
        let mut p = PassThrough::new(true);
        let mut body = stalled(vec![ROLE, TOKEN]);
        let committed = commit(&mut p, &mut body)
            .now_or_never()
            .unwrap()
            .ok()
            .unwrap();
        assert_eq!(committed.first, format!("{ROLE}{TOKEN}"));
        assert!(p.relays());
    }

    #[test]
    fn the_first_token_is_held_until_its_event_is_complete() {
        let mut p = PassThrough::new(true);
        assert!(p
            .chunk(Bytes::from_static(
                b"data: {\"choices\":[{\"delta\":{\"content\""
            ))
            .unwrap()
            .is_empty());
        assert!(!p.relays());
        assert_eq!(
            &p.chunk(Bytes::from_static(b":\"a\"}}]}\n\ndata: x"))
                .unwrap()[..],
            b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: x"
        );
        assert!(p.relays());
        assert_eq!(&p.chunk(Bytes::from_static(b"y")).unwrap()[..], b"y");
    }

    #[test]
    fn json_bodies_need_no_terminator() {
        assert_eq!(feed(false, &["{\"id\":", "1}"]).unwrap(), "{\"id\":1}");
    }

    #[test]
    fn tool_call_ids_minted_elsewhere_fit_openai_and_still_pair_up() {
        static TARGET: Target = Target {
            provider: "openai",
            model: "gpt-4o-mini",
            base_url: "https://api.openai.com/v1",
            vias: &[crate::core::route::Via::Key("OPENAI_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let signed = format!(
            "call_JPozaonvK7yzvdIPrJ7FyAk_0__thought__{}",
            "CiQB0e2Kb+/x=".repeat(40)
        );
        let wai =
            "chatcmpl-tool-0123456789abcdef0123456789abcdef::cf-wai-tool-call::00ff00ff00ff00ff";
        let request = serde_json::json!({"model": "fast", "temperature": 0, "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": signed, "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": wai, "type": "function", "function": {"name": "t", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": signed, "content": "12"},
            {"role": "tool", "tool_call_id": wai, "content": "noon"}
        ], "stream": false});
        let req = ChatRequest::parse(request.to_string().as_bytes()).unwrap();
        let prepared = OpenAi::prepare(&TARGET, &req, &|_| None).unwrap();
        let sent: Value = serde_json::from_slice(&prepared.body).unwrap();
        let calls = sent["messages"][1]["tool_calls"].as_array().unwrap();
        for (call, result) in calls
            .iter()
            .zip([&sent["messages"][2], &sent["messages"][3]])
        {
            let id = call["id"].as_str().unwrap();
            assert!(id.len() <= 40, "{id}");
            assert_eq!(result["tool_call_id"], id);
        }
        assert_eq!(calls[0]["id"], "call_JPozaonvK7yzvdIPrJ7FyAk_0");
        // Everything else as sent, in order, with the target's model.
        let mut expected = request.clone();
        expected["model"] = "gpt-4o-mini".into();
        expected["messages"] = sent["messages"].clone();
        assert_eq!(prepared.body, serde_json::to_vec(&expected).unwrap());
    }

    #[test]
    fn a_messages_request_is_fitted_to_the_model_and_budgets_are_clamped() {
        const fn target(provider: &'static str, model: &'static str) -> Target {
            Target {
                provider,
                model,
                base_url: "https://api.openai.com/v1",
                vias: &[crate::core::route::Via::Key("K")],
                max_tokens: None,
                max_output_tokens: None,
                account_id: None,
                anthropic_betas: None,
                policy: crate::core::route::TargetPolicy::DEFAULT,
            }
        }
        static GPT4O: Target = target("openai", "gpt-4o");
        static O3: Target = target("openai", "o3");
        static COMPAT: Target = target("openai-compatible", "meta/llama-3.3-70b");
        let messages = br#"{"model":"claude-x","max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":2048},"messages":[{"role":"user","content":"hi"}]}"#;
        let headers: Vec<(String, String)> = Vec::new();
        let req = crate::front::anthropic::chat_request(
            Bytes::from_static(messages),
            &headers,
            crate::core::request::Operation::Complete,
        )
        .unwrap();
        let body = |target: &'static Target| {
            let prepared = OpenAi::prepare(target, &req, &|_| None).unwrap();
            String::from_utf8(prepared.body.to_vec()).unwrap()
        };
        // Above gpt-4o's 16,384 output tokens; no reasoning_effort for a model without it.
        assert_eq!(
            body(&GPT4O),
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":16384}"#
        );
        assert_eq!(
            body(&O3),
            r#"{"model":"o3","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":32000,"reasoning_effort":"low"}"#
        );
        assert_eq!(
            body(&COMPAT),
            r#"{"model":"meta/llama-3.3-70b","messages":[{"role":"user","content":"hi"}],"max_tokens":32000}"#
        );
        // A client's own OpenAI request keeps its fields; only an impossible budget changes.
        let own = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":32000,"reasoning_effort":"low"}"#,
        )
        .unwrap();
        let prepared = OpenAi::prepare(&GPT4O, &own, &|_| None).unwrap();
        assert_eq!(
            &prepared.body[..],
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":16384,"reasoning_effort":"low"}"#
        );
    }

    #[test]
    fn request_replaces_model_and_sends_the_key_as_bearer() {
        static TARGET: Target = Target {
            provider: "openai-compatible",
            model: "nvidia/llama-3.1-nemotron-70b-instruct",
            base_url: "https://integrate.api.nvidia.com/v1",
            vias: &[crate::core::route::Via::Key("NVIDIA_KEY_1")],
            max_tokens: None,
            max_output_tokens: None,
            account_id: None,
            anthropic_betas: None,
            policy: crate::core::route::TargetPolicy::DEFAULT,
        };
        let mut req = ChatRequest::parse(
            br#"{"model":"fast","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        let unmetered = OpenAi::prepare(&TARGET, &req, &|_| None).unwrap();
        assert!(!String::from_utf8_lossy(&unmetered.body).contains("stream_options"));
        req.usage_wanted = true;
        let prepared = OpenAi::prepare(&TARGET, &req, &|_| None).unwrap();
        let up = OpenAi::request(&TARGET, &prepared, "nv-secret");
        assert_eq!(
            up.url,
            "https://integrate.api.nvidia.com/v1/chat/completions"
        );
        assert_eq!(
            up.headers[0],
            ("authorization", "Bearer nv-secret".to_owned())
        );
        // The client did not ask for the usage chunk: the proxy does, for its meter.
        assert_eq!(
            &up.body[..],
            br#"{"model":"nvidia/llama-3.1-nemotron-70b-instruct","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    static COMPAT: Target = Target {
        provider: "openai-compatible",
        model: "m",
        base_url: "https://up/v1",
        vias: &[crate::core::route::Via::Key("K")],
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: crate::core::route::TargetPolicy::DEFAULT,
    };

    /// The upstream body and the translator for a client's request body.
    /// `body` prepared for a request whose usage the proxy meters.
    fn prepared(body: &str) -> (String, Box<dyn Translate>) {
        let mut req = ChatRequest::parse(body.as_bytes()).unwrap();
        req.usage_wanted = true;
        let prepared = OpenAi::prepare(&COMPAT, &req, &|_| None).unwrap();
        let sent = String::from_utf8(prepared.body.to_vec()).unwrap();
        (sent, OpenAi::translator(&COMPAT, &prepared, 0))
    }

    #[test]
    fn a_stream_asks_for_usage_merging_into_the_clients_stream_options() {
        let cases = [
            (
                r#"{"model":"r","stream":true,"messages":[{"role":"user","content":"hi"}],"n":1}"#,
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"n":1}"#,
                true,
            ),
            (
                r#"{"model":"r","stream_options":{"include_obfuscation":false},"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
                r#"{"model":"m","stream_options":{"include_obfuscation":false,"include_usage":true},"messages":[{"role":"user","content":"hi"}],"stream":true}"#,
                true,
            ),
            (
                r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false}}"#,
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
                true,
            ),
            (
                r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":null}"#,
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
                true,
            ),
            // The client asked itself, or does not stream: the request goes as it came.
            (
                r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#,
                false,
            ),
            (
                r#"{"model":"r","messages":[{"role":"user","content":"hi"}],"stream":false}"#,
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#,
                false,
            ),
        ];
        for (client, upstream, strips) in cases {
            let (sent, mut t) = prepared(client);
            assert_eq!(sent, upstream);
            if client.contains("\"stream\":true") {
                // A metered pass-through is never a relay: every chunk must pass through it,
                // for its usage and, where the proxy asked for it, to take the usage out.
                assert!(!t.chunk(Bytes::from(TOKEN)).unwrap().is_empty());
                assert!(!t.relays(), "{client}");
                let _ = strips;
            }
        }
    }

    /// OpenAI's literal stream with `include_usage` (openai-chat.md §3.1).
    const ROLE_3_1: &str = "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
    const HELLO_3_1: &str = "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n";
    const FINISH_3_1: &str = "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n";
    const USAGE_3_1: &str = "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n";
    const DONE_EVENT: &str = "data: [DONE]\n\n";

    /// Feeds `pieces` to `t`; the client's bytes, or the failure.
    fn run_pieces(t: &mut dyn Translate, pieces: &[&[u8]]) -> Result<String, UpstreamError> {
        let mut out = Vec::new();
        for piece in pieces {
            out.extend_from_slice(&t.chunk(Bytes::copy_from_slice(piece))?);
        }
        out.extend_from_slice(&t.end()?);
        Ok(String::from_utf8(out).unwrap())
    }

    fn stripping() -> PassThrough {
        PassThrough::new(true).stripping_usage()
    }

    #[test]
    fn the_usage_chunk_the_proxy_asked_for_is_taken_out_byte_exactly() {
        let upstream = format!("{ROLE_3_1}{HELLO_3_1}{FINISH_3_1}{USAGE_3_1}{DONE_EVENT}");
        // What the client gets without `include_usage`: no usage chunk, no `"usage":null`.
        let client =
            format!("{ROLE_3_1}{HELLO_3_1}{FINISH_3_1}{DONE_EVENT}").replace(",\"usage\":null", "");
        let usage = Some(Metered::from_openai(9, 0, 2, 0));
        // An event a piece; the usage chunk and [DONE] in one piece; all in one piece.
        let mut t = stripping();
        let pieces = [ROLE_3_1, HELLO_3_1, FINISH_3_1, USAGE_3_1, DONE_EVENT].map(str::as_bytes);
        assert_eq!(run_pieces(&mut t, &pieces).unwrap(), client);
        assert_eq!(t.usage(), usage);
        let together = format!("{USAGE_3_1}{DONE_EVENT}");
        let mut t = stripping();
        let pieces = [ROLE_3_1, HELLO_3_1, FINISH_3_1, &together].map(str::as_bytes);
        assert_eq!(run_pieces(&mut t, &pieces).unwrap(), client);
        assert_eq!(t.usage(), usage);
        let mut t = stripping();
        assert_eq!(run_pieces(&mut t, &[upstream.as_bytes()]).unwrap(), client);
        assert_eq!(t.usage(), usage);
        // Split anywhere in two, and a byte at a time.
        for split in 0..upstream.len() {
            let (a, b) = upstream.as_bytes().split_at(split);
            let mut t = stripping();
            assert_eq!(
                run_pieces(&mut t, &[a, b]).unwrap(),
                client,
                "split at {split}"
            );
            assert_eq!(t.usage(), usage, "split at {split}");
        }
        let bytes: Vec<&[u8]> = upstream.as_bytes().chunks(1).collect();
        let mut t = stripping();
        assert_eq!(run_pieces(&mut t, &bytes).unwrap(), client);
        assert_eq!(t.usage(), usage);
        // The same with `\r\n` line ends, and with a last `[DONE]` without its blank line.
        let crlf = |s: &str| s.replace("\n\n", "\r\n\r\n");
        let upstream = crlf(&upstream);
        let client = crlf(&client);
        for split in 0..upstream.len() {
            let (a, b) = upstream.as_bytes().split_at(split);
            let mut t = stripping();
            assert_eq!(
                run_pieces(&mut t, &[a, b]).unwrap(),
                client,
                "split at {split}"
            );
            assert_eq!(t.usage(), usage, "split at {split}");
        }
        let unended = upstream.trim_end();
        let mut t = stripping();
        assert_eq!(
            run_pieces(&mut t, &[unended.as_bytes()]).unwrap(),
            client.trim_end()
        );
        assert_eq!(t.usage(), usage);
    }

    #[test]
    fn the_token_probes_agree_with_the_value_reading() {
        let events = [
            ROLE_3_1,
            HELLO_3_1,
            FINISH_3_1,
            USAGE_3_1,
            r#"data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}"#,
            r#"data: {"choices":[{"delta":{"reasoning":""},"finish_reason":""}]}"#,
            r#"data: {"choices":[{"delta":{"tool_calls":[]}},{"delta":{"refusal":"no"}}]}"#,
            r#"data: {"choices":[{"delta":{"function_call":{"name":"f"}}}]}"#,
            r#"data: {"choices":[{"delta":{"audio":null,"content":0}}]}"#,
            r#"data: {"choices":[],"prompt_filter_results":[{"prompt_index":0}]}"#,
            r#"data: {"choices":[],"usage":{}}"#,
            r#"data: {"choices":[],"usage":[]}"#,
            r#"data: {"error":"text","choices":[{"delta":{"content":"x"}}]}"#,
            r#"data: {"choices":null}"#,
            r#"data: {}"#,
        ];
        for event in events {
            let data = event.trim().trim_start_matches("data: ");
            for usage_is_token in [true, false] {
                let probed = openai_token::token(data, usage_is_token);
                assert!(probed.is_some(), "{data}");
                let by_value = is_token_by_value(data, usage_is_token).ok();
                assert_eq!(probed, by_value, "{data} ({usage_is_token})");
            }
        }
    }

    #[test]
    fn a_streams_usage_is_its_last_event_with_a_usage_object() {
        let usage = Some(Metered::from_openai(9, 0, 2, 0));
        // The usage chunk before [DONE]; split in two `data:` lines; in a partial first line.
        let stream = format!("{HELLO_3_1}{FINISH_3_1}{USAGE_3_1}{DONE_EVENT}");
        assert_eq!(last_usage(stream.as_bytes()), usage);
        let split = USAGE_3_1.replace(",\"usage\":{", ",\ndata: \"usage\":{");
        assert_eq!(last_usage(format!("{HELLO_3_1}{split}").as_bytes()), usage);
        assert_eq!(last_usage(&USAGE_3_1.as_bytes()[6..]), None);
        // A later `"usage"` that is not a usage object (text, null) does not hide the real one.
        let talk = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\": none\"}}],\"usage\":null}\n\n";
        let stream = format!("{USAGE_3_1}{talk}{DONE_EVENT}");
        assert_eq!(last_usage(stream.as_bytes()), usage);
        assert_eq!(last_usage(format!("{talk}{DONE_EVENT}").as_bytes()), None);
        assert_eq!(
            last_usage(format!("{HELLO_3_1}{DONE_EVENT}").as_bytes()),
            None
        );
    }

    #[test]
    fn only_a_usage_chunk_is_taken_out_and_nothing_waits_on_an_event_that_is_complete() {
        // Azure's prompt filter results also have no choices, but no usage: they stay.
        let filter = "data: {\"choices\":[],\"prompt_filter_results\":[{\"prompt_index\":0}]}\n\n";
        // A usage the client did not ask for, on a chunk with a choice: it stays (and counts).
        let finish_usage = "data: {\"choices\" : [ {\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"} ], \"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 1}}\n\n";
        let spaced_usage = "data: {\"choices\" : [ ], \"usage\" : {\"prompt_tokens\": 7, \"completion_tokens\": 3, \"prompt_tokens_details\": null}}\n\n";
        let mut t = stripping();
        let out = calls_with(&mut t, &[filter, ROLE_3_1, TOKEN, finish_usage]);
        assert_eq!(
            out,
            [
                "",
                "",
                // The role chunk without the `"usage":null` only `include_usage` adds.
                &format!("{filter}{ROLE_3_1}{TOKEN}").replace(",\"usage\":null", "")[..],
                finish_usage
            ]
        );
        assert!(!t.relays());
        assert_eq!(t.usage(), Some(Metered::from_openai(5, 0, 1, 0)));
        // A usage chunk alone is held, then taken out; the spaced form too.
        let out = calls_with(&mut t, &[spaced_usage, DONE_EVENT]);
        assert_eq!(out, ["", DONE_EVENT]);
        assert!(t.end().unwrap().is_empty());
        assert_eq!(t.usage(), Some(Metered::from_openai(7, 0, 3, 0)));
        // Half an event waits for the rest of it, whatever it is.
        let mut t = stripping();
        let out = calls_with(&mut t, &[TOKEN, &HELLO_3_1[..40], &HELLO_3_1[40..]]);
        assert_eq!(
            out,
            [TOKEN, "", &HELLO_3_1.replace(",\"usage\":null", "")[..]]
        );
    }

    #[test]
    fn only_the_null_usage_member_goes_never_text_that_reads_like_it() {
        let strip = |s: &str| {
            String::from_utf8(without_null_usage(Bytes::from(s.to_owned())).to_vec()).unwrap()
        };
        assert_eq!(strip(r#"{"a":1,"usage":null}"#), r#"{"a":1}"#);
        assert_eq!(strip(r#"{"usage":null,"a":1}"#), r#"{"a":1}"#);
        assert_eq!(strip(r#"{"a": 1, "usage": null}"#), r#"{"a": 1}"#);
        // In a string the quotes are escaped: the text stays; a real usage object stays.
        let text = r#"{"content":"say ,\"usage\":null, please","usage":{"prompt_tokens":1}}"#;
        assert_eq!(strip(text), text);
    }

    #[test]
    fn an_event_too_long_for_a_usage_chunk_is_not_held_and_cr_line_ends_are_read() {
        let long = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(MAX_USAGE_EVENT + 10)
        );
        let (a, b) = long.split_at(MAX_USAGE_EVENT + 5);
        let mut t = stripping();
        let out = calls_with(&mut t, &[TOKEN, a, b, USAGE_3_1, DONE_EVENT]);
        assert_eq!(out, [TOKEN, a, b, "", DONE_EVENT]);
        assert_eq!(t.usage(), Some(Metered::from_openai(9, 0, 2, 0)));
        // `\r` alone ends lines too, and `\r\n` split between pieces is one line end.
        let cr = format!("{TOKEN}{USAGE_3_1}{DONE_EVENT}").replace('\n', "\r");
        let client = format!("{TOKEN}{DONE_EVENT}").replace('\n', "\r");
        for split in 0..cr.len() {
            let (a, b) = cr.as_bytes().split_at(split);
            let mut t = stripping();
            assert_eq!(
                run_pieces(&mut t, &[a, b]).unwrap(),
                client,
                "split at {split}"
            );
        }
        let mut lines = Lines::START;
        let mut pos = 0;
        assert_eq!(lines.next_end(b"a\r\n\r", &mut pos), None);
        let mut pos = 0;
        assert_eq!(lines.next_end(b"\nb\n\n", &mut pos), Some(1));
        assert_eq!(lines.next_end(b"\nb\n\n", &mut pos), Some(4));
    }

    #[test]
    fn with_its_own_include_usage_the_client_gets_the_usage_chunk_and_it_is_read() {
        let upstream = format!("{ROLE_3_1}{HELLO_3_1}{FINISH_3_1}{USAGE_3_1}{DONE_EVENT}");
        let usage = Some(Metered::from_openai(9, 0, 2, 0));
        for split in (0..upstream.len()).step_by(7) {
            let (a, b) = upstream.as_bytes().split_at(split);
            let mut t = PassThrough::new(true);
            assert_eq!(run_pieces(&mut t, &[a, b]).unwrap(), upstream);
            assert_eq!(t.usage(), usage, "split at {split}");
        }
        // A stream without a usage chunk reports none.
        let mut t = PassThrough::new(true);
        let plain = [ROLE, TOKEN, DONE_EVENT].map(str::as_bytes);
        run_pieces(&mut t, &plain).unwrap();
        assert_eq!(t.usage(), None);
        // The last usage counts, after a long answer, and the cached share is apart.
        let cached = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920},\"completion_tokens_details\":{\"reasoning_tokens\":192}}}\n\n";
        let mut pieces: Vec<&[u8]> = vec![ROLE.as_bytes(), finish_with_usage().as_bytes()];
        pieces.extend(std::iter::repeat_n(HELLO_3_1.as_bytes(), 100));
        pieces.extend([cached.as_bytes(), DONE_EVENT.as_bytes()]);
        let mut t = PassThrough::new(true);
        run_pieces(&mut t, &pieces).unwrap();
        assert!(t.relays());
        assert_eq!(
            t.usage(),
            Some(Metered {
                input: 86,
                cache_read: 1920,
                cache_write: 0,
                output: 300,
                reasoning: 192,
            })
        );
    }

    fn finish_with_usage() -> &'static str {
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n"
    }

    #[test]
    fn a_whole_answer_reports_its_usage_and_an_odd_usage_is_no_failure() {
        let answer = r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;
        let mut t = PassThrough::new(false);
        assert_eq!(run_pieces(&mut t, &[answer.as_bytes()]).unwrap(), answer);
        assert_eq!(t.usage(), Some(Metered::from_openai(19, 0, 10, 0)));
        for odd in [
            r#"{"id":"x","choices":[]}"#,
            r#"{"id":"x","choices":[],"usage":null}"#,
            r#"{"id":"x","choices":[],"usage":"lots"}"#,
        ] {
            let mut t = PassThrough::new(false);
            assert_eq!(run_pieces(&mut t, &[odd.as_bytes()]).unwrap(), odd);
            assert_eq!(t.usage(), None, "{odd}");
        }
    }

    #[test]
    fn the_recent_bytes_wrap_around() {
        let mut recent = Recent::new();
        let long: Vec<u8> = (0..RECENT + 300).map(|i| (i % 251) as u8).collect();
        recent.push(&long[..100]);
        assert_eq!(recent.last(1000), &long[..100]);
        recent.push(&long[100..]);
        assert_eq!(recent.last(RECENT), &long[300..]);
        assert_eq!(recent.last(5), &long[long.len() - 5..]);
        recent.push(b"abc");
        assert_eq!(recent.last(4), [long[long.len() - 1], b'a', b'b', b'c']);
    }

    /// What each call returns for `chunks` fed to `t`.
    fn calls_with(t: &mut dyn Translate, chunks: &[&str]) -> Vec<String> {
        chunks
            .iter()
            .map(|c| {
                String::from_utf8(t.chunk(Bytes::from(c.to_string())).unwrap().to_vec()).unwrap()
            })
            .collect()
    }
}
