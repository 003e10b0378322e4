//! Reading a fuzz input: leading flag bytes, then a body cut into chunks.
//!
//! The flags come first so that a seed is `flags ++ fixture` and every mutation of the fixture
//! keeps its meaning.

use bytes::Bytes;

/// The byte at `index`, or 0 past the end.
pub fn byte(data: &[u8], index: usize) -> u8 {
    data.get(index).copied().unwrap_or(0)
}

/// `data` without its first `n` bytes.
pub fn rest(data: &[u8], n: usize) -> &[u8] {
    data.get(n..).unwrap_or(&[])
}

/// Cuts `body` into network chunks, deterministically from `seed`: 0 keeps it whole, 1 cuts it
/// into single bytes, any other value into pieces of 1 to `seed` bytes (a cut can fall inside
/// a line end, a UTF-8 character or a JSON token, which is what the parsers must survive).
pub fn chunks(body: &[u8], seed: u8) -> Vec<Bytes> {
    if seed == 0 || body.is_empty() {
        return vec![Bytes::copy_from_slice(body)];
    }
    // xorshift: any fixed sequence would do, but a varied one reaches more cut positions.
    let mut state = u32::from(seed) | ((body.len() as u32) << 8) | 1;
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = 1 + (state % u32::from(seed)) as usize;
        let end = (at + len).min(body.len());
        out.push(Bytes::copy_from_slice(&body[at..end]));
        at = end;
    }
    out
}
