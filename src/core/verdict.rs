//! What an upstream failure means for failover, decided in one place: [`UpstreamError::verdict`].
//! Providers only read their wire format into an [`UpstreamError`]; they never decide whether
//! to retry.

use crate::core::error::ErrorObject;

/// An upstream failure as its provider read it: a non-2xx answer, an error a binding threw, or
/// an error reported inside a 200 (an SSE `error` event, a cut-off body).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamError {
    /// The upstream's status, or the one its in-band error stands for (529, 503, 429...).
    pub status: u16,
    /// The error the client sees if it is answered with this failure.
    pub error: ErrorObject,
    /// It came after a 200: the upstream had accepted the request.
    pub in_band: bool,
    /// The upstream said the key itself is invalid, whatever the status (Gemini's
    /// `400 API_KEY_INVALID`).
    pub key_rejected: bool,
    /// How long the upstream asked to wait, read from its body (Gemini's `RetryInfo`), in ms.
    pub retry_after_ms: Option<u64>,
}

/// What failover does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try the next key, then the next target.
    Retry,
    /// The key is bad, revoked or out of credit: try the next key, then the next target.
    KeyRejected,
    /// The request itself is at fault and no key fixes it: answer the client now.
    ClientError,
}

impl UpstreamError {
    /// A non-2xx answer (or a binding's throw, which stands for one).
    pub fn answered(status: u16, error: ErrorObject) -> Self {
        Self {
            status,
            error,
            in_band: false,
            key_rejected: false,
            retry_after_ms: None,
        }
    }

    /// An error reported inside a 200, standing for `status`.
    pub fn in_band(status: u16, error: ErrorObject) -> Self {
        Self {
            in_band: true,
            ..Self::answered(status, error)
        }
    }

    /// The upstream body stopped (or went wrong) before the response was complete.
    pub fn truncated(detail: impl Into<String>) -> Self {
        Self::in_band(
            502,
            ErrorObject::new(detail, "upstream_error", None, Some("stream_interrupted")),
        )
    }

    /// The same failure, with the wait the upstream asked for.
    pub fn retry_after(self, ms: Option<u64>) -> Self {
        Self {
            retry_after_ms: ms,
            ..self
        }
    }

    /// The same failure, known to reject the key.
    pub fn rejecting_key(self) -> Self {
        Self {
            key_rejected: true,
            ..self
        }
    }

    /// The rules: 401/403 (a bad or revoked key) and 402 (a key out of credit) reject the key;
    /// 429, 5xx (529 included) and 408/409 (transient) are retried, and so are 404 (a retired or
    /// misspelt model id in routes.toml, which the client cannot fix) and 3xx (a redirect, never
    /// followed); any other 4xx says the request is wrong — unless it came inside a 200, when
    /// the upstream had already accepted the request, so the failure is its own and is retried
    /// too.
    pub fn verdict(&self) -> Verdict {
        match of_status(self.status) {
            _ if self.key_rejected => Verdict::KeyRejected,
            Verdict::ClientError if self.in_band => Verdict::Retry,
            verdict => verdict,
        }
    }
}

/// The verdict a status stands for on its own, before the provider has read the body.
pub fn of_status(status: u16) -> Verdict {
    match status {
        401..=403 => Verdict::KeyRejected,
        404 | 408 | 409 | 429 => Verdict::Retry,
        400..=499 => Verdict::ClientError,
        _ => Verdict::Retry,
    }
}

/// A `retry-after` header's wait in ms: delay-seconds (fractions accepted, as some APIs send
/// them). An HTTP date is not read: LLM APIs send seconds, and a wrong clock would mislead.
pub fn retry_after_ms(value: &str) -> Option<u64> {
    seconds_as_ms(value.trim())
}

/// Decimal seconds (`30`, `1.5`, `.25`) as whole milliseconds, rounded up; `None` for anything
/// else (a sign, an exponent, a unit). Read in integers: parsing an f64 would link float
/// parsing into the Worker.
pub fn seconds_as_ms(text: &str) -> Option<u64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let fraction = fraction.as_bytes();
    let ms = (0..3).fold(0, |ms, i| {
        ms * 10 + fraction.get(i).map_or(0, |digit| u64::from(digit - b'0'))
    });
    let beyond_ms = fraction.iter().skip(3).any(|&digit| digit != b'0');
    whole
        .checked_mul(1000)?
        .checked_add(ms + u64::from(beyond_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> UpstreamError {
        UpstreamError::answered(status, ErrorObject::for_status("x", status, None))
    }

    #[test]
    fn verdicts_follow_the_rules() {
        for status in [429, 500, 502, 503, 504, 529, 408, 409] {
            assert_eq!(answered(status).verdict(), Verdict::Retry, "{status}");
        }
        for status in [401, 402, 403] {
            assert_eq!(answered(status).verdict(), Verdict::KeyRejected, "{status}");
        }
        for status in [404, 301, 307] {
            assert_eq!(answered(status).verdict(), Verdict::Retry, "{status}");
        }
        for status in [400, 405, 413, 422] {
            assert_eq!(answered(status).verdict(), Verdict::ClientError, "{status}");
        }
    }

    #[test]
    fn a_rejected_key_and_in_band_errors_are_never_the_clients() {
        assert_eq!(
            answered(400).rejecting_key().verdict(),
            Verdict::KeyRejected
        );
        let in_band = UpstreamError::in_band(400, ErrorObject::for_status("x", 400, None));
        assert_eq!(in_band.verdict(), Verdict::Retry);
        assert_eq!(UpstreamError::truncated("cut").verdict(), Verdict::Retry);
    }

    #[test]
    fn retry_after_is_read_as_seconds() {
        assert_eq!(retry_after_ms("30"), Some(30_000));
        assert_eq!(retry_after_ms(" 1.5 "), Some(1_500));
        assert_eq!(retry_after_ms("0"), Some(0));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms("-3"), None);
        assert_eq!(retry_after_ms("0.0001"), Some(1));
        assert_eq!(retry_after_ms("2.250"), Some(2_250));
        assert_eq!(retry_after_ms(".5"), Some(500));
        for bad in ["", ".", "1e3", "+1", "1.2.3", "inf", "1 s"] {
            assert_eq!(retry_after_ms(bad), None, "{bad}");
        }
    }
}
