//! Helpers shared by the providers' unit tests.

use serde_json::{json, Value};

use crate::core::error::ProxyError;

/// The `data:` payloads of translated SSE output, in order: each chunk as JSON, and the final
/// `[DONE]` as the string `"[DONE]"`. Every event must be a single `data:` line.
pub fn sse_payloads(out: &str) -> Vec<Value> {
    out.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

/// `(param, message)` of the 400 a translation must have failed with.
pub fn invalid_request<T: std::fmt::Debug>(result: Result<T, ProxyError>) -> (String, String) {
    match result {
        Err(ProxyError::InvalidRequest { message, param, .. }) => {
            (param.unwrap_or_default(), message)
        }
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}
