//! Helpers shared by the providers' unit tests.

use futures_util::{FutureExt, StreamExt};
use serde_json::{json, Value};

use crate::core::error::ProxyError;
use crate::core::stream::{commit, ClientBody, EarlyFailure, Framing, Translate};

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

/// What a client gets from `translator` over an upstream body of `chunks` (fed as split), run
/// through the core as a streamed response: all its bytes, or why the attempt failed before
/// any (the failover loop would try the next key).
pub fn client_sees(
    mut translator: Box<dyn Translate>,
    chunks: &[&'static str],
) -> Result<String, EarlyFailure> {
    let mut body = crate::core::stream::tests::body(chunks, None);
    let committed = commit(translator.as_mut(), &mut body)
        .now_or_never()
        .expect("test bodies are ready")?;
    let mut stream =
        ClientBody::new(committed, translator, body, Framing::Sse, Box::new(|_| {})).into_stream();
    let mut out = String::new();
    while let Some(item) = stream.next().now_or_never().expect("test bodies are ready") {
        out.push_str(std::str::from_utf8(&item.expect("an SSE body is never aborted")).unwrap());
    }
    Ok(out)
}
