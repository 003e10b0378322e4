//! An upstream that writes the key it was called with into its answer (an error that quotes
//! "Incorrect API key provided: …", a gateway that echoes its request) must not hand that key
//! to the proxy's client or log. Every text that comes from an attempt's upstream — its error
//! object, the bytes of its body — passes through the attempt's [`Redaction`] first, which puts
//! the key's secret name where its value was.

use std::rc::Rc;

use bytes::Bytes;

use crate::core::error::ErrorObject;
use crate::core::search::find;
use crate::core::stream::Translate;
use crate::core::usage::Metered;
use crate::core::verdict::UpstreamError;

/// Values shorter than this are not searched for: no real API key is, and replacing every
/// occurrence of a short string would garble honest output.
pub const MIN_SECRET_LEN: usize = 8;

/// One attempt's key: its value, to find, and its name, to show instead. Both are shared, not
/// copied: every attempt makes one, and nearly none ever replaces anything.
#[derive(Debug, Clone)]
pub struct Redaction {
    value: Rc<str>,
    name: &'static str,
}

impl Redaction {
    /// The redaction of the secret `name` whose value is `value`; `None` if `value` is too
    /// short to be searched for.
    pub fn new(name: &'static str, value: &Rc<str>) -> Option<Self> {
        (value.len() >= MIN_SECRET_LEN).then(|| Self {
            value: Rc::clone(value),
            name,
        })
    }

    /// What stands where the value was: the secret's name in brackets.
    fn shown(&self) -> String {
        ["[", self.name, "]"].concat()
    }

    /// `text` with the value replaced.
    pub fn text(&self, text: &mut String) {
        if text.contains(&*self.value) {
            *text = text.replace(&*self.value, &self.shown());
        }
    }

    /// Every text field of `error`, redacted.
    pub fn error(&self, error: &mut ErrorObject) {
        self.text(&mut error.message);
        self.text(&mut error.kind);
        if let Some(param) = error.param.as_mut() {
            self.text(param);
        }
        if let Some(code) = error.code.as_mut() {
            self.text(code);
        }
    }

    /// `bytes` with every whole occurrence of the value replaced (`None`: none found).
    fn bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        // Nearly every chunk is UTF-8 and holds no key: the standard library's vectorised
        // substring test says so several times faster than the byte loop below.
        if let Ok(text) = std::str::from_utf8(bytes) {
            if !text.contains(&*self.value) {
                return None;
            }
        }
        let needle = self.value.as_bytes();
        let mut at = find(bytes, needle, 0)?;
        let shown = self.shown();
        let mut out = Vec::with_capacity(bytes.len());
        let mut from = 0;
        loop {
            out.extend_from_slice(&bytes[from..at]);
            out.extend_from_slice(shown.as_bytes());
            from = at + needle.len();
            match find(bytes, needle, from) {
                Some(next) => at = next,
                None => break,
            }
        }
        out.extend_from_slice(&bytes[from..]);
        Some(out)
    }

    /// How many bytes at the end of `bytes` could be the start of the value: they wait for the
    /// next chunk. Never a complete SSE event's end, as a key holds no line break.
    fn partial_at_end(&self, bytes: &[u8]) -> usize {
        let needle = self.value.as_bytes();
        // A chunk that ends an event ends with a line break, which no key holds.
        if bytes.last().is_none_or(|last| !needle.contains(last)) {
            return 0;
        }
        let longest = (needle.len() - 1).min(bytes.len());
        (1..=longest)
            .rev()
            .find(|&k| bytes[bytes.len() - k..] == needle[..k])
            .unwrap_or(0)
    }
}

/// A translator whose output and failures are redacted. A chunk's last bytes that could begin
/// the key wait for the next chunk, so a key split across two chunks is caught too.
pub struct Redacting {
    inner: Box<dyn Translate>,
    redaction: Redaction,
    held: Vec<u8>,
}

impl Redacting {
    /// `inner`, redacted with `redaction`.
    pub fn wrap(inner: Box<dyn Translate>, redaction: Redaction) -> Box<dyn Translate> {
        Box::new(Self {
            inner,
            redaction,
            held: Vec::new(),
        })
    }

    fn clean(&mut self, out: Bytes, last: bool) -> Bytes {
        if self.held.is_empty() && out.is_empty() {
            return out;
        }
        let joined: Bytes = if self.held.is_empty() {
            out
        } else {
            let mut joined = std::mem::take(&mut self.held);
            joined.extend_from_slice(&out);
            Bytes::from(joined)
        };
        let cleaned = match self.redaction.bytes(&joined) {
            Some(cleaned) => Bytes::from(cleaned),
            None => joined,
        };
        let keep = if last {
            0
        } else {
            self.redaction.partial_at_end(&cleaned)
        };
        if keep > 0 {
            self.held
                .extend_from_slice(&cleaned[cleaned.len() - keep..]);
        }
        cleaned.slice(..cleaned.len() - keep)
    }

    fn redacted(&self, mut error: UpstreamError) -> UpstreamError {
        self.redaction.error(&mut error.error);
        error
    }
}

impl Translate for Redacting {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        match self.inner.chunk(upstream) {
            Ok(out) => Ok(self.clean(out, false)),
            Err(error) => Err(self.redacted(error)),
        }
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        match self.inner.end() {
            Ok(out) => Ok(self.clean(out, true)),
            Err(error) => Err(self.redacted(error)),
        }
    }

    fn failure(&mut self) -> Option<UpstreamError> {
        let error = self.inner.failure()?;
        Some(self.redacted(error))
    }

    /// Bytes held back would be lost to a host that carries the rest itself.
    fn relays(&self) -> bool {
        self.inner.relays() && self.held.is_empty()
    }

    fn usage(&self) -> Option<Metered> {
        self.inner.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdef";

    fn redaction() -> Redaction {
        Redaction::new("OPENAI_KEY_1", &Rc::from(KEY)).unwrap()
    }

    #[test]
    fn text_and_errors_show_the_name() {
        let mut error = ErrorObject::new(
            format!("Incorrect API key provided: {KEY}. Check {KEY}."),
            "invalid_request_error",
            Some(KEY.to_owned()),
            Some("invalid_api_key"),
        );
        redaction().error(&mut error);
        assert_eq!(
            error.message,
            "Incorrect API key provided: [OPENAI_KEY_1]. Check [OPENAI_KEY_1]."
        );
        assert_eq!(error.param.as_deref(), Some("[OPENAI_KEY_1]"));
        assert!(Redaction::new("SHORT", &Rc::from("abc")).is_none());
    }

    /// Echoes its input.
    struct Echo;
    impl Translate for Echo {
        fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
            Ok(upstream)
        }
        fn end(&mut self) -> Result<Bytes, UpstreamError> {
            Ok(Bytes::new())
        }
    }

    fn through(pieces: &[&str]) -> (String, Vec<usize>) {
        let mut translator = Redacting::wrap(Box::new(Echo), redaction());
        let mut out = String::new();
        let mut sizes = Vec::new();
        for piece in pieces {
            let bytes = translator
                .chunk(Bytes::copy_from_slice(piece.as_bytes()))
                .unwrap();
            sizes.push(bytes.len());
            out.push_str(std::str::from_utf8(&bytes).unwrap());
        }
        out.push_str(std::str::from_utf8(&translator.end().unwrap()).unwrap());
        (out, sizes)
    }

    #[test]
    fn a_key_split_across_chunks_is_caught_and_whole_events_are_not_held() {
        let event = format!("data: {{\"error\":{{\"message\":\"bad key {KEY}\"}}}}\n\n");
        for cut in 1..event.len() {
            let (out, _) = through(&[&event[..cut], &event[cut..]]);
            assert_eq!(
                out, "data: {\"error\":{\"message\":\"bad key [OPENAI_KEY_1]\"}}\n\n",
                "cut at {cut}"
            );
        }
        // A complete event goes out whole, at once.
        let plain = "data: {\"choices\":[{\"delta\":{\"content\":\"sk-live\"}}]}\n\n";
        let (out, sizes) = through(&[plain]);
        assert_eq!((out.as_str(), sizes), (plain, vec![plain.len()]));
        // A prefix that turns out not to be the key is released with the next chunk.
        let (out, sizes) = through(&["text sk-live-01", "xyz\n\n"]);
        assert_eq!(out, "text sk-live-01xyz\n\n");
        assert_eq!(sizes, vec!["text ".len(), "sk-live-01xyz\n\n".len()]);
    }

    #[test]
    fn usage_is_the_inner_translators() {
        struct Counted;
        impl Translate for Counted {
            fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
                Ok(upstream)
            }
            fn end(&mut self) -> Result<Bytes, UpstreamError> {
                Ok(Bytes::new())
            }
            fn usage(&self) -> Option<Metered> {
                Some(Metered::from_anthropic(1, 2, 3, 4))
            }
        }
        let redacted = Redacting::wrap(Box::new(Counted), redaction());
        assert_eq!(redacted.usage(), Some(Metered::from_anthropic(1, 2, 3, 4)));
        assert_eq!(Redacting::wrap(Box::new(Echo), redaction()).usage(), None);
    }
}
