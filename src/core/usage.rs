//! What one answer cost in tokens, as the upstream counted them.
//!
//! Every translator reports the upstream's own usage ([`crate::core::stream::Translate::usage`])
//! in the provider's native counts, split the way prices are: the providers disagree on what
//! their input figure includes, so each has its own constructor here.
//! * OpenAI (and Workers AI, which reports the same shape): `prompt_tokens` includes
//!   `prompt_tokens_details.cached_tokens`; `completion_tokens` includes
//!   `completion_tokens_details.reasoning_tokens`.
//! * Anthropic: `input_tokens` excludes both `cache_read_input_tokens` and
//!   `cache_creation_input_tokens`; `output_tokens` includes thinking.
//! * Gemini: `promptTokenCount` includes `cachedContentTokenCount`; `thoughtsTokenCount` is
//!   separate from `candidatesTokenCount`.

use bytes::Bytes;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;

use crate::core::stream::{collect_whole, Translate};
use crate::core::verdict::UpstreamError;

/// Tokens one answer used, as the provider counted them, split the way prices are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metered {
    /// Input tokens neither read from nor written to a prompt cache.
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache (Anthropic's cache_creation_input_tokens).
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// The reasoning share of `output`, where reported.
    pub reasoning: u64,
}

impl Metered {
    /// OpenAI's counts: `prompt_tokens`, `prompt_tokens_details.cached_tokens` (a share of the
    /// prompt), `completion_tokens`, `completion_tokens_details.reasoning_tokens` (a share of
    /// the completion).
    pub const fn from_openai(prompt: u64, cached: u64, completion: u64, reasoning: u64) -> Self {
        Self {
            input: prompt.saturating_sub(cached),
            cache_read: cached,
            cache_write: 0,
            output: completion,
            reasoning,
        }
    }

    /// Anthropic's counts: `input_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens` (each apart from the others) and `output_tokens`
    /// (thinking included, not reported apart).
    pub const fn from_anthropic(
        input: u64,
        cache_read: u64,
        cache_write: u64,
        output: u64,
    ) -> Self {
        Self {
            input,
            cache_read,
            cache_write,
            output,
            reasoning: 0,
        }
    }

    /// Gemini's counts: `promptTokenCount` (the cached share, `cachedContentTokenCount`,
    /// included), `candidatesTokenCount` and `thoughtsTokenCount` (apart from the candidates).
    pub const fn from_gemini(prompt: u64, cached: u64, candidates: u64, thoughts: u64) -> Self {
        Self {
            input: prompt.saturating_sub(cached),
            cache_read: cached,
            cache_write: 0,
            output: candidates.saturating_add(thoughts),
            reasoning: thoughts,
        }
    }

    /// Every input token: uncached, read from and written to the cache.
    pub const fn total_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Every token, input and output.
    pub const fn total(&self) -> u64 {
        self.total_input().saturating_add(self.output)
    }
}

/// For a `#[serde(default, deserialize_with = "lenient")]` usage field: the usage if it reads
/// as `T`, else `None`, so that an odd usage object never makes a good answer unreadable.
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|value| serde_json::from_value(value).ok()))
}

/// A field read with [`lenient`]: `T` if the value reads as one, else `None`.
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        lenient(deserializer).map(Self)
    }
}

/// What a [`MeteredWhole`]'s conversion returns: the client's body and the answer's usage.
pub type Converted = Result<(Bytes, Option<Metered>), UpstreamError>;

/// Like [`crate::core::stream::WholeBody`], for a conversion that also reads the answer's
/// usage: collects the body (up to [`MAX_WHOLE_BODY`](crate::core::stream::MAX_WHOLE_BODY)) and
/// hands it to `convert` at the end.
pub struct MeteredWhole<F> {
    body: Vec<u8>,
    convert: F,
    usage: Option<Metered>,
}

impl<F: FnMut(&[u8]) -> Converted> MeteredWhole<F> {
    /// A translator that will pass the whole body to `convert`.
    pub fn new(convert: F) -> Self {
        Self {
            body: Vec::new(),
            convert,
            usage: None,
        }
    }
}

impl<F: FnMut(&[u8]) -> Converted> Translate for MeteredWhole<F> {
    fn chunk(&mut self, upstream: Bytes) -> Result<Bytes, UpstreamError> {
        collect_whole(&mut self.body, &upstream)?;
        Ok(Bytes::new())
    }

    fn end(&mut self) -> Result<Bytes, UpstreamError> {
        let (out, usage) = (self.convert)(&self.body)?;
        self.usage = usage;
        Ok(out)
    }

    fn usage(&self) -> Option<Metered> {
        self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_cached_tokens_are_a_share_of_the_prompt() {
        // openai-chat.md §3.1's usage chunk, and a cached prompt.
        assert_eq!(
            Metered::from_openai(9, 0, 2, 0),
            Metered {
                input: 9,
                output: 2,
                ..Metered::default()
            }
        );
        let cached = Metered::from_openai(2006, 1920, 300, 192);
        assert_eq!(
            cached,
            Metered {
                input: 86,
                cache_read: 1920,
                cache_write: 0,
                output: 300,
                reasoning: 192,
            }
        );
        assert_eq!((cached.total_input(), cached.total()), (2006, 2306));
        // A cached count above the prompt leaves no uncached input rather than wrapping.
        assert_eq!(Metered::from_openai(5, 7, 1, 0).input, 0);
    }

    #[test]
    fn anthropic_input_excludes_the_cache_counts() {
        // anthropic-messages.md §3: input 377, no cache, 65 out.
        let plain = Metered::from_anthropic(377, 0, 0, 65);
        assert_eq!((plain.total_input(), plain.total()), (377, 442));
        let cached = Metered::from_anthropic(11, 4000, 1500, 6);
        assert_eq!(
            cached,
            Metered {
                input: 11,
                cache_read: 4000,
                cache_write: 1500,
                output: 6,
                reasoning: 0,
            }
        );
        assert_eq!((cached.total_input(), cached.total()), (5511, 5517));
    }

    #[test]
    fn gemini_thoughts_are_output_and_cached_content_is_part_of_the_prompt() {
        // gemini.md §3: 107 prompt, 31 candidates, 148 thoughts, total 286.
        let m = Metered::from_gemini(107, 0, 31, 148);
        assert_eq!(
            m,
            Metered {
                input: 107,
                cache_read: 0,
                cache_write: 0,
                output: 179,
                reasoning: 148,
            }
        );
        assert_eq!(m.total(), 286);
        let cached = Metered::from_gemini(2304, 2048, 9, 0);
        assert_eq!((cached.input, cached.cache_read), (256, 2048));
        assert_eq!(cached.total_input(), 2304);
    }

    #[test]
    fn totals_saturate() {
        let m = Metered::from_anthropic(u64::MAX, 1, 1, 1);
        assert_eq!((m.total_input(), m.total()), (u64::MAX, u64::MAX));
        assert_eq!(Metered::from_gemini(0, 0, u64::MAX, 1).output, u64::MAX);
    }

    #[test]
    fn a_metered_whole_body_reports_what_its_conversion_read() {
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(default, deserialize_with = "lenient")]
            usage: Option<[u64; 2]>,
        }
        let mut t = MeteredWhole::new(|body: &[u8]| {
            let probe: Probe = serde_json::from_slice(body)
                .map_err(|e| UpstreamError::truncated(e.to_string()))?;
            let usage = probe
                .usage
                .map(|[i, o]| Metered::from_anthropic(i, 0, 0, o));
            Ok((Bytes::copy_from_slice(body), usage))
        });
        assert!(t
            .chunk(Bytes::from_static(b"{\"usage\":"))
            .unwrap()
            .is_empty());
        assert_eq!(t.usage(), None);
        t.chunk(Bytes::from_static(b"[3,4]}")).unwrap();
        assert_eq!(&t.end().unwrap()[..], b"{\"usage\":[3,4]}");
        assert_eq!(t.usage(), Some(Metered::from_anthropic(3, 0, 0, 4)));
        // A usage of another shape is no usage, not a failure.
        let mut t = MeteredWhole::new(|body: &[u8]| {
            let probe: Probe = serde_json::from_slice(body)
                .map_err(|e| UpstreamError::truncated(e.to_string()))?;
            Ok((Bytes::new(), probe.usage.map(|_| Metered::default())))
        });
        t.chunk(Bytes::from_static(b"{\"usage\":{\"a\":1}}"))
            .unwrap();
        assert!(t.end().is_ok());
        assert_eq!(t.usage(), None);
    }
}
