//! A provider's translator, driven as the core drives it: upstream chunks into
//! [`commit`] until the first client bytes, then the rest through [`ClientBody`], so a target
//! sees exactly what a client would, late-failure tails included.
//!
//! Fuzz input of a translator target: a flag byte, a chunking byte, then the upstream body.
//! Flags: bit 0 `stream_options.include_usage`, bit 1 JSON mode (`response_format`), bit 2 the
//! upstream connection fails after the body instead of ending, bits 4..8 which target.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ai_worker_proxy::core::host::{BodyError, UpstreamBody};
use ai_worker_proxy::core::provider::Provider;
use ai_worker_proxy::core::request::ChatRequest;
use ai_worker_proxy::core::route::Target;
use ai_worker_proxy::core::stream::{commit, ClientBody, Framing};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use crate::check;
use crate::input::{byte, chunks, rest};
use crate::targets::{pick, secret};

/// What the client got from one upstream body.
#[derive(Debug, Default)]
pub struct Run {
    /// The upstream body as sent (all chunks).
    pub upstream: Vec<u8>,
    /// Whether the upstream connection was made to fail after the body.
    pub upstream_failed: bool,
    /// The attempt reached its commit point (else it failed over, and the client got nothing).
    pub committed: bool,
    /// Every byte the client got.
    pub out: Vec<u8>,
    /// The connection was aborted (a JSON body that failed after its first bytes).
    pub aborted: bool,
    /// The failure reported after the commit point, if any.
    pub late_failure: Option<String>,
}

/// Polls a future that never waits: every upstream chunk here is already in memory.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the pipeline waited on an in-memory body"),
    }
}

/// The client request a translator target answers: streamed or not, with the flag byte's
/// options.
pub fn client_request(stream: bool, flags: u8) -> ChatRequest {
    let mut body = serde_json::json!({
        "model": "fuzz",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": stream,
    });
    if flags & 1 != 0 {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    if flags & 2 != 0 {
        body["response_format"] = serde_json::json!({"type": "json_object"});
    }
    ChatRequest::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
}

/// Runs a request-translation target's input: a byte that picks one of `targets`, then the
/// client's request body. What parses must translate to JSON objects, or be refused.
pub fn translate_request<P: Provider>(targets: &'static [Target], data: &[u8]) {
    let target = pick(targets, byte(data, 0));
    let Ok(request) = ChatRequest::parse(rest(data, 1)) else {
        return;
    };
    let Ok(prepared) = P::prepare(target, &request, &secret) else {
        return;
    };
    check::request_body(&P::request(target, &prepared, "fuzz-key").body);
    if let Some(call) = P::binding_call(target, &prepared) {
        for arg in &call.args {
            assert!(serde_json::from_slice::<serde_json::Value>(arg).is_ok());
        }
    }
}

/// Runs a translator target's input (see the module's notes) through provider `P` on one of
/// `targets`, as a stream (`stream`) or a whole JSON answer.
pub fn run<P: Provider>(targets: &'static [Target], data: &[u8], stream: bool) -> Run {
    let flags = byte(data, 0);
    let target = pick(targets, flags >> 4);
    let request = client_request(stream, flags);
    let Ok(prepared) = P::prepare(target, &request, &secret) else {
        panic!("a plain request must translate for {}", target.model);
    };
    let translator = P::translator(target, &prepared, 1_700_000_000);
    let upstream = rest(data, 2);
    let upstream_failed = flags & 4 != 0;
    let mut items: Vec<Result<Bytes, BodyError>> = chunks(upstream, byte(data, 1))
        .into_iter()
        .map(Ok)
        .collect();
    if upstream_failed {
        items.push(Err(BodyError("connection reset by fuzzer".to_owned())));
    }
    let framing = if stream { Framing::Sse } else { Framing::Json };
    drive(translator, items, framing, upstream, upstream_failed)
}

fn drive(
    mut translator: Box<dyn ai_worker_proxy::core::stream::Translate>,
    items: Vec<Result<Bytes, BodyError>>,
    framing: Framing,
    upstream: &[u8],
    upstream_failed: bool,
) -> Run {
    let mut run = Run {
        upstream: upstream.to_vec(),
        upstream_failed,
        ..Run::default()
    };
    let mut body: UpstreamBody = Box::new(stream::iter(items));
    let Ok(committed) = now(commit(&mut *translator, &mut body)) else {
        return run;
    };
    run.committed = true;
    let late: Rc<RefCell<Option<String>>> = Rc::default();
    let hook = {
        let late = Rc::clone(&late);
        Box::new(move |reason: &str| *late.borrow_mut() = Some(reason.to_owned()))
    };
    let mut client = ClientBody::new(committed, translator, body, framing, hook).into_stream();
    while let Some(item) = now(client.next()) {
        match item {
            Ok(bytes) => run.out.extend_from_slice(&bytes),
            Err(_) => {
                run.aborted = true;
                break;
            }
        }
    }
    run.late_failure = late.borrow_mut().take();
    run
}
