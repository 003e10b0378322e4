//! Tool-call ids: minted for Gemini's id-less function calls, carrying the call's thought
//! signature to the client and back.
//!
//! Format: `call_<base>_<n>` (or Gemini's own id when it sends one), followed by
//! `__thought__<signature>` when the call had a `thoughtSignature`. `<base>` is the
//! `responseId` (unique per Gemini response) or, without one, the response time and a
//! process-wide counter; `<n>` counts the calls of the response, so ids are stable within a
//! response and distinct across the turns of a conversation.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::search;

/// Separates the id from the smuggled signature (LiteLLM's `THOUGHT_SIGNATURE_SEPARATOR`, so
/// histories written through either gateway read back the same).
pub const THOUGHT_SEPARATOR: &str = "__thought__";

/// Distinguishes responses that came without a `responseId`.
static RESPONSES: AtomicU64 = AtomicU64::new(0);

/// Mints the tool-call ids of one response.
#[derive(Debug)]
pub struct IdMinter {
    created: u64,
    base: Option<String>,
    next: u32,
}

impl IdMinter {
    /// A minter for a response stamped `created` (Unix seconds).
    pub fn new(created: u64) -> Self {
        Self {
            created,
            base: None,
            next: 0,
        }
    }

    /// The OpenAI id for the next function call: Gemini's `id` if it gave one, else a minted
    /// one; with `signature` appended after [`THOUGHT_SEPARATOR`].
    pub fn id(
        &mut self,
        response_id: Option<&str>,
        gemini_id: Option<&str>,
        signature: Option<&str>,
    ) -> String {
        let n = self.next;
        self.next = self.next.wrapping_add(1);
        let mut id = match gemini_id.filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                let created = self.created;
                let base = self.base.get_or_insert_with(|| {
                    match response_id.map(sanitise).filter(|s| !s.is_empty()) {
                        Some(rid) => rid,
                        None => {
                            format!("{created:x}{:x}", RESPONSES.fetch_add(1, Ordering::Relaxed))
                        }
                    }
                });
                format!("call_{base}_{n}")
            }
        };
        if let Some(sig) = signature.filter(|s| !s.is_empty()) {
            id.push_str(THOUGHT_SEPARATOR);
            id.push_str(sig);
        }
        id
    }
}

/// The OpenAI `id` of a response: `chatcmpl-` and Gemini's `responseId`, or a minted one.
pub fn completion_id(response_id: Option<&str>, created: u64) -> String {
    match response_id.map(sanitise).filter(|s| !s.is_empty()) {
        Some(rid) => format!("chatcmpl-{rid}"),
        None => format!(
            "chatcmpl-gemini-{created:x}{:x}",
            RESPONSES.fetch_add(1, Ordering::Relaxed)
        ),
    }
}

/// Keeps the characters every client accepts in an id.
fn sanitise(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Splits a client tool-call id into its id and the signature it carries, if any.
pub fn split(id: &str) -> (&str, Option<&str>) {
    match search::split_once(id, THOUGHT_SEPARATOR) {
        Some((base, sig)) if !sig.is_empty() => (base, Some(sig)),
        Some((base, _)) => (base, None),
        None => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_stable_within_a_response_and_carry_signatures() {
        let mut m = IdMinter::new(1_700_000_000);
        let a = m.id(Some("JPozaonvK7yzvdIPrJ7FyAk"), None, Some("CiQB0e2Kb..."));
        let b = m.id(Some("other"), None, None);
        assert_eq!(a, "call_JPozaonvK7yzvdIPrJ7FyAk_0__thought__CiQB0e2Kb...");
        assert_eq!(b, "call_JPozaonvK7yzvdIPrJ7FyAk_1");
        assert_eq!(
            split(&a),
            ("call_JPozaonvK7yzvdIPrJ7FyAk_0", Some("CiQB0e2Kb..."))
        );
        assert_eq!(split(&b), (b.as_str(), None));
    }

    #[test]
    fn gemini_ids_are_kept_and_responses_without_ids_differ() {
        let mut m = IdMinter::new(1);
        assert_eq!(
            m.id(None, Some("call_signed"), Some("tool-signature")),
            "call_signed__thought__tool-signature"
        );
        let one = IdMinter::new(5).id(None, None, None);
        let two = IdMinter::new(5).id(None, None, None);
        assert_ne!(one, two);
        assert!(one.starts_with("call_5") && one.ends_with("_0"), "{one}");
    }

    #[test]
    fn split_tolerates_foreign_ids() {
        assert_eq!(split("toolu_01abc"), ("toolu_01abc", None));
        assert_eq!(split("x__thought__"), ("x", None));
        assert_eq!(split(""), ("", None));
    }
}
