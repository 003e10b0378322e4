//! A provider's translator, driven as the core drives it: upstream chunks into
//! [`commit`] until the first client bytes, then the rest through [`ClientBody`], so a target
//! sees exactly what a client would, late-failure tails included.
//!
//! Fuzz input of a translator target: a flag byte, a chunking byte, then the upstream body.
//! Flags: bit 0 `stream_options.include_usage`, bit 1 JSON mode (`response_format`), bit 2 the
//! upstream connection fails after the body instead of ending, bits 4..8 which target.
//!
//! The Messages front door ([`messages_request`], [`run_messages`]) is driven the same way, with
//! a request that came through `front::anthropic::chat_request`: a Messages request body is
//! translated for any provider (or passed through to an `anthropic` target), and a provider's
//! OpenAI answer comes back through the front door's translators as Anthropic events or a
//! `Message`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ai_worker_proxy::core::error::ProxyError;
use ai_worker_proxy::core::host::{BodyError, UpstreamBody};
use ai_worker_proxy::core::provider::Provider;
use ai_worker_proxy::core::request::{ChatRequest, Operation};
use ai_worker_proxy::core::route::Target;
use ai_worker_proxy::core::stream::{commit, ClientBody, Framing, Translate};
use ai_worker_proxy::front::anthropic::stream::{stream_translator, StreamContext};
use ai_worker_proxy::front::anthropic::{chat_request, response};
use ai_worker_proxy::providers::anthropic::Anthropic;
use ai_worker_proxy::providers::google::Google;
use ai_worker_proxy::providers::openai::OpenAi;
use ai_worker_proxy::providers::workers_ai::WorkersAi;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde_json::{Map, Value};

use crate::check;
use crate::input::{byte, chunks, rest};
use crate::targets::{pick, secret, ANTHROPIC, GOOGLE, OPENAI, WORKERS_AI};

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
    if let Some(body) = upstream_body::<P>(target, &request) {
        check::request_body(&body);
    }
}

/// The body `P` sends for `request` on `target` (its binding's arguments checked as JSON), or
/// `None` when the target refuses the request.
fn upstream_body<P: Provider>(target: &'static Target, request: &ChatRequest) -> Option<Bytes> {
    let prepared = P::prepare(target, request, &secret).ok()?;
    if let Some(call) = P::binding_call(target, &prepared) {
        for arg in &call.args {
            assert!(serde_json::from_slice::<serde_json::Value>(arg).is_ok());
        }
    }
    Some(P::request(target, &prepared, "fuzz-key").body)
}

/// The headers Claude Code sends with a Messages request (the betas the pass-through forwards).
fn messages_headers() -> Vec<(String, String)> {
    [
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// A Messages request body as the front door makes it the core's request.
pub fn messages_request(body: &[u8], operation: Operation) -> Result<ChatRequest, ProxyError> {
    chat_request(bytes::Bytes::copy_from_slice(body), &messages_headers(), operation)
}

/// Runs a Messages request target's input: a selector byte, then the client's Messages body.
/// Selector: bit 7 `count_tokens` (else a completion); bits 0..7 modulo 4 the provider
/// (anthropic, google, workers_ai, openai), divided by 4 which of its targets. What the front
/// door parses must translate to a JSON object, or be refused; to an `anthropic` target it goes
/// as the client's own body ([`check::passed_messages_request`]).
pub fn translate_messages_request(data: &[u8]) {
    let selector = byte(data, 0);
    let operation = if selector & 0x80 != 0 {
        Operation::CountTokens
    } else {
        Operation::Complete
    };
    let body = rest(data, 1);
    let Ok(request) = messages_request(body, operation) else {
        return;
    };
    assert!(
        request.anthropic().is_some(),
        "a Messages request without its inbound body"
    );
    let which = selector & 0x7f;
    let upstream = match which % 4 {
        0 => {
            let target = pick(&ANTHROPIC, which / 4);
            let prepared = Anthropic::prepare(target, &request, &secret)
                .unwrap_or_else(|e| panic!("the anthropic pass-through refused a request: {e:?}"));
            assert!(
                Anthropic::speaks_front(&prepared),
                "an anthropic target translated a Messages request"
            );
            let sent = Anthropic::request(target, &prepared, "fuzz-key").body;
            let client: Map<String, Value> = serde_json::from_slice(body)
                .expect("the front door took a body that is not an object");
            check::passed_messages_request(
                &client,
                &sent,
                &request.upstream_model(target),
                operation == Operation::CountTokens,
            );
            return;
        }
        1 => upstream_body::<Google>(pick(&GOOGLE, which / 4), &request),
        2 => upstream_body::<WorkersAi>(pick(&WORKERS_AI, which / 4), &request),
        _ => upstream_body::<OpenAi>(pick(&OPENAI, which / 4), &request),
    };
    if let Some(body) = upstream {
        check::request_body(&body);
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
    let framing = if stream { Framing::Sse } else { Framing::Json };
    drive_input(translator, data, framing)
}

/// The Messages request a front-door translator target answers, streamed or not.
pub fn messages_client_request(stream: bool) -> ChatRequest {
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stream": stream,
    });
    messages_request(&serde_json::to_vec(&body).unwrap(), Operation::Complete).unwrap()
}

/// Runs a front-door translator target's input (see the module's notes; flag bits 0 and 1 are
/// unused, the Messages request being fixed) through provider `P` on one of `targets`, its
/// OpenAI answer turned into Anthropic events (`stream`) or a `Message` as the core does for a
/// Messages request to a provider that does not speak it.
pub fn run_messages<P: Provider>(targets: &'static [Target], data: &[u8], stream: bool) -> Run {
    let target = pick(targets, byte(data, 0) >> 4);
    let request = messages_client_request(stream);
    let inbound = request
        .anthropic()
        .expect("a Messages request without its inbound body");
    let Ok(prepared) = P::prepare(target, &request, &secret) else {
        panic!(
            "a plain Messages request must translate for {}",
            target.model
        );
    };
    assert!(
        !P::speaks_front(&prepared),
        "{} speaks Messages",
        target.provider
    );
    let inner = P::translator(target, &prepared, 1_700_000_000);
    let (translator, framing) = if stream {
        let context = StreamContext {
            input_tokens: inbound.input_estimate,
        };
        (stream_translator(inner, context), Framing::AnthropicSse)
    } else {
        (response::json_translator(inner), Framing::Json)
    };
    drive_input(translator, data, framing)
}

/// Drives `translator` over the upstream body of a translator target's input: cut by its
/// chunking byte, failing after it if its flags say so.
fn drive_input(translator: Box<dyn Translate>, data: &[u8], framing: Framing) -> Run {
    let upstream = rest(data, 2);
    let upstream_failed = byte(data, 0) & 4 != 0;
    let mut items: Vec<Result<Bytes, BodyError>> = chunks(upstream, byte(data, 1))
        .into_iter()
        .map(Ok)
        .collect();
    if upstream_failed {
        items.push(Err(BodyError("connection reset by fuzzer".to_owned())));
    }
    drive(translator, items, framing, upstream, upstream_failed)
}

fn drive(
    mut translator: Box<dyn Translate>,
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
