//! Replays of real Claude Code requests (tests/fixtures/claude_code/*.json) through the Messages
//! front door: the upstream request each provider gets (URL, Anthropic headers, body) and the
//! Anthropic event stream that comes back from a literal upstream stream, both compared with
//! the files in tests/fixtures/claude_code/expected/. `UPDATE_EXPECTED=1 cargo test --test
//! claude_code` rewrites them after a deliberate change; review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};

use ai_worker_proxy::core::provider::Provider;
use ai_worker_proxy::core::request::{ChatRequest, Operation};
use ai_worker_proxy::core::route::{Target, TargetPolicy, Via};
use ai_worker_proxy::core::stream::Translate;
use ai_worker_proxy::front::anthropic::stream::{stream_translator, StreamContext};
use ai_worker_proxy::front::anthropic::{chat_request, response as front_response};
use ai_worker_proxy::providers::anthropic::Anthropic;
use ai_worker_proxy::providers::google::Google;
use ai_worker_proxy::providers::openai::OpenAi;
use ai_worker_proxy::providers::workers_ai::WorkersAi;
use bytes::Bytes;
use serde_json::{json, Value};

const FIXTURES: [&str; 5] = [
    "text_turn",
    "tool_turn",
    "thinking_turn",
    "warmup",
    "haiku_background",
];

const fn target(provider: &'static str, model: &'static str, base_url: &'static str) -> Target {
    Target {
        provider,
        model,
        base_url,
        vias: &[Via::Key("KEY")],
        max_tokens: None,
        max_output_tokens: None,
        anthropic_betas: None,
        account_id: None,
        policy: TargetPolicy::DEFAULT,
    }
}

static ANTHROPIC: Target = target(
    "anthropic",
    "claude-sonnet-4-5-20250929",
    "https://api.anthropic.com",
);
static OPENAI: Target = target("openai", "gpt-4.1", "https://api.openai.com/v1");
static GOOGLE: Target = target(
    "google",
    "gemini-2.5-flash",
    "https://generativelanguage.googleapis.com",
);
static WORKERS_AI: Target = Target {
    account_id: Some("CF_ACCOUNT_ID"),
    ..target(
        "cloudflare-ai",
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "https://api.cloudflare.com/client/v4",
    )
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude_code")
}

/// Compares `actual` with the expected file, or writes it under `UPDATE_EXPECTED`.
fn check(name: &str, actual: &str) {
    let path = dir().join("expected").join(name);
    if std::env::var_os("UPDATE_EXPECTED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_EXPECTED=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from the expected file");
}

/// A fixture's request as the front door parses it.
fn request(name: &str, operation: Operation) -> ChatRequest {
    let fixture: Value =
        serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    let headers: Vec<(String, String)> = fixture["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let body = serde_json::to_vec(&fixture["body"]).unwrap();
    chat_request(Bytes::from(body), &headers, operation).unwrap()
}

/// The upstream call `P` makes for `request`: URL, the headers that are not the key, and the
/// body as JSON.
fn upstream<P: Provider>(target: &'static Target, request: &ChatRequest) -> String {
    let prepared = P::prepare(target, request, &|_| Some("acct-1".into()))
        .unwrap_or_else(|e| panic!("{} cannot take it: {e:?}", target.provider));
    let call = P::request(target, &prepared, "sk-test");
    let headers: serde_json::Map<String, Value> = call
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("anthropic-"))
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let out = json!({"url": call.url, "headers": headers, "body": body});
    serde_json::to_string_pretty(&out).unwrap() + "\n"
}

#[test]
fn every_provider_gets_the_expected_upstream_request() {
    for name in FIXTURES {
        let chat = request(name, Operation::Complete);
        check(
            &format!("{name}.anthropic.json"),
            &upstream::<Anthropic>(&ANTHROPIC, &chat),
        );
        check(
            &format!("{name}.openai.json"),
            &upstream::<OpenAi>(&OPENAI, &chat),
        );
        check(
            &format!("{name}.google.json"),
            &upstream::<Google>(&GOOGLE, &chat),
        );
        check(
            &format!("{name}.workers_ai.json"),
            &upstream::<WorkersAi>(&WORKERS_AI, &chat),
        );
    }
}

#[test]
fn the_anthropic_target_gets_the_clients_body_with_only_the_model_changed() {
    for name in FIXTURES {
        let fixture: Value =
            serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.json"))).unwrap())
                .unwrap();
        let chat = request(name, Operation::Complete);
        let prepared = Anthropic::prepare(&ANTHROPIC, &chat, &|_| None).unwrap();
        let call = Anthropic::request(&ANTHROPIC, &prepared, "sk-test");
        let sent: Value = serde_json::from_slice(&call.body).unwrap();
        let mut expected = fixture["body"].clone();
        expected["model"] = json!(ANTHROPIC.model);
        assert_eq!(sent, expected, "{name}");
        // The client's betas all pass the default allow-list; its version goes as sent.
        let header = |n: &str| {
            call.headers
                .iter()
                .find(|(h, _)| *h == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            header("anthropic-beta").as_deref(),
            fixture["headers"]["anthropic-beta"].as_str()
        );
        assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    }
}

/// What the client gets from `translator` over the upstream stream in `fixture`.
fn translated(mut translator: Box<dyn Translate>, fixture: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let upstream = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    // Small pieces, so events arrive split.
    for piece in upstream.chunks(37) {
        out.extend_from_slice(&translator.chunk(Bytes::copy_from_slice(piece)).unwrap());
        assert!(translator.failure().is_none());
    }
    out.extend_from_slice(&translator.end().unwrap());
    String::from_utf8(out).unwrap()
}

/// The Anthropic events for `P`'s literal stream, as the failover loop builds the translator.
fn events<P: Provider>(target: &'static Target, request: &ChatRequest, fixture: &str) -> String {
    let prepared = P::prepare(target, request, &|_| Some("acct-1".into())).unwrap();
    let inner = P::translator(target, &prepared, 1_760_000_000);
    let context = StreamContext {
        input_tokens: request.anthropic().unwrap().input_estimate,
    };
    translated(stream_translator(inner, context), fixture)
}

/// The event types in order, with each block's index and kind, for a readable failure.
fn sequence(sse: &str) -> Vec<String> {
    sse.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let data: Value = serde_json::from_str(event.split("data: ").nth(1).unwrap()).unwrap();
            let kind = data["type"].as_str().unwrap().to_owned();
            match kind.as_str() {
                "content_block_start" => {
                    format!("{kind} {} {}", data["index"], data["content_block"]["type"])
                }
                "content_block_delta" => {
                    format!("{kind} {} {}", data["index"], data["delta"]["type"])
                }
                "content_block_stop" => format!("{kind} {}", data["index"]),
                "message_delta" => format!("{kind} {}", data["delta"]["stop_reason"]),
                _ => kind,
            }
        })
        .collect()
}

#[test]
fn streams_come_back_in_anthropics_event_order() {
    let chat = request("tool_turn", Operation::Complete);
    let cases = [
        (
            "openai_text",
            events::<OpenAi>(&OPENAI, &chat, "openai/text.sse"),
        ),
        (
            "openai_tool_call",
            events::<OpenAi>(&OPENAI, &chat, "openai/tool_call.sse"),
        ),
        (
            "google_thinking",
            events::<Google>(&GOOGLE, &chat, "google/thinking.sse"),
        ),
        (
            "google_parallel_calls",
            events::<Google>(&GOOGLE, &chat, "google/parallel_calls.sse"),
        ),
        (
            "workers_ai_tools",
            events::<WorkersAi>(&WORKERS_AI, &chat, "workers_ai/stream_native_tools.sse"),
        ),
    ];
    for (name, sse) in &cases {
        check(&format!("{name}.events.sse"), sse);
    }
    // The rules, stated once more than the files do: a message opens and closes once, blocks
    // never overlap, and a thinking block is signed before it stops.
    for (name, sse) in cases {
        let seq = sequence(&sse);
        assert_eq!(
            seq.first().map(String::as_str),
            Some("message_start"),
            "{name}"
        );
        assert_eq!(
            seq.last().map(String::as_str),
            Some("message_stop"),
            "{name}"
        );
        let mut open: Option<String> = None;
        let mut signed = false;
        for step in &seq {
            if let Some(rest) = step.strip_prefix("content_block_start ") {
                assert!(open.is_none(), "{name}: overlapping blocks in {seq:?}");
                open = Some(rest.to_owned());
                signed = false;
            } else if step.starts_with("content_block_delta") {
                assert!(open.is_some(), "{name}: a delta outside a block");
                signed |= step.ends_with("\"signature_delta\"");
            } else if step.starts_with("content_block_stop") {
                let block = open.take().expect("a stop without a start");
                if block.ends_with("\"thinking\"") {
                    assert!(signed, "{name}: an unsigned thinking block");
                }
            }
        }
        assert!(open.is_none(), "{name}: a block left open");
    }
}

#[test]
fn a_passed_through_stream_is_byte_for_byte_the_upstreams() {
    let chat = request("thinking_turn", Operation::Complete);
    let prepared = Anthropic::prepare(&ANTHROPIC, &chat, &|_| None).unwrap();
    assert!(Anthropic::speaks_front(&prepared));
    let translator = Anthropic::translator(&ANTHROPIC, &prepared, 0);
    let out = translated(translator, "anthropic/thinking.sse");
    let upstream = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/anthropic/thinking.sse"),
    )
    .unwrap();
    assert_eq!(out, upstream);
}

#[test]
fn a_whole_translated_answer_is_an_anthropic_message() {
    let chat = request("text_turn", Operation::Complete);
    let mut chat = chat;
    chat.stream = false;
    let prepared = Google::prepare(&GOOGLE, &chat, &|_| None).unwrap();
    let inner = Google::translator(&GOOGLE, &prepared, 1_760_000_000);
    let out = translated(front_response::json_translator(inner), "google/text.json");
    check("google_text.message.json", &(out + "\n"));
}
