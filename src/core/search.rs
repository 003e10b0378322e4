//! Finding a short string in another without building a searcher. `str::find` with a `&str`
//! pattern sets up a Two-Way searcher on every call, which costs more than the search itself
//! for a tool-call id or a marker of a few bytes; here the needle's first byte is found with
//! `memchr`, then the rest compared.
//!
//! Not `memchr::memmem`: its searchers add 4 KB gzipped to the Worker, whose size budget is
//! 300 KB.

/// The first occurrence of `needle` in `haystack` at or after `from`.
pub fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    while at + needle.len() <= haystack.len() {
        at += memchr::memchr(first, &haystack[at..=haystack.len() - needle.len()])?;
        if haystack[at..at + needle.len()] == *needle {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// `text` split around the first occurrence of `marker`: what `str::split_once` gives.
pub fn split_once<'a>(text: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let at = find(text.as_bytes(), marker.as_bytes(), 0)?;
    // A match of valid UTF-8 in valid UTF-8 starts and ends on character boundaries.
    Some((text.get(..at)?, text.get(at + marker.len()..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_splits_as_the_standard_library_does() {
        let cases = [
            ("call_1__thought__c2ln", "__thought__"),
            ("call_1__thought__", "__thought__"),
            ("__thought__", "__thought__"),
            ("call_1", "__thought__"),
            ("call_1_thought__x", "__thought__"),
            ("a::cf-wai-tool-call::0123", "::cf-wai-tool-call::"),
            ("é::x::", "::"),
            ("", "::"),
            ("aaab", "ab"),
        ];
        for (text, marker) in cases {
            assert_eq!(
                split_once(text, marker),
                text.split_once(marker),
                "{text} / {marker}"
            );
            assert_eq!(
                find(text.as_bytes(), marker.as_bytes(), 0),
                text.find(marker)
            );
        }
        assert_eq!(find(b"abcabc", b"bc", 2), Some(4));
        assert_eq!(find(b"abc", b"", 0), None);
    }
}
