//! The proxy's own cost per request, without sockets: parsing and re-serialising a request,
//! the whole handler (auth, routing, failover, stream pump) against an in-process upstream,
//! the SSE pass-through per chunk, and the Anthropic and Gemini request and stream translation.
//! `cargo bench --bench core`.

// Criterion does not build for wasm32; `cargo clippy --target wasm32-unknown-unknown
// --all-targets` still compiles this file, so the benchmarks exist only natively.
#[cfg(not(target_arch = "wasm32"))]
mod fixtures;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;

    use super::fixtures::{Identity, CHUNK, CLAUDE_DELTA, CLAUDE_START, GEMINI_EVENT};

    use ai_worker_proxy::core::handle;
    use ai_worker_proxy::core::health::KeyHealth;
    use ai_worker_proxy::core::host::{
        Host, NetworkError, Timeouts, UpstreamRequest, UpstreamResponse,
    };

    static HEALTH: std::sync::LazyLock<KeyHealth> = std::sync::LazyLock::new(KeyHealth::new);
    use ai_worker_proxy::core::http::{
        body_ready, IncomingRequest, Method, RequestBody, ResponseBody,
    };
    use ai_worker_proxy::core::provider::Provider;
    use ai_worker_proxy::core::request::ChatRequest;
    use ai_worker_proxy::core::route::{Target, TargetPolicy, Via};
    use ai_worker_proxy::core::stream::Translate;
    use ai_worker_proxy::front::anthropic::stream as front_stream;
    use ai_worker_proxy::providers::anthropic::stream::StreamTranslator;
    use ai_worker_proxy::providers::anthropic::Anthropic;
    use ai_worker_proxy::providers::google::{self, Google};
    use ai_worker_proxy::providers::openai::PassThrough;
    use ai_worker_proxy::routes::Table;
    use bytes::Bytes;
    use criterion::{criterion_group, Criterion, Throughput};
    use futures_util::{stream, FutureExt, StreamExt};

    const REQUEST: &str = r#"{"model":"fast","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the weather like in Boston today?"}],"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather in a given location","parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}],"tool_choice":"auto","temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}"#;
    const STREAM_CHUNKS: usize = 200;
    static CLAUDE: Target = Target {
        provider: "anthropic",
        model: "claude-sonnet-4-20250514",
        base_url: "https://api.anthropic.com",
        vias: &[Via::Key("ANTHROPIC_KEY_1")],
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: TargetPolicy::DEFAULT,
    };
    static GEMINI: Target = Target {
        provider: "google",
        model: "gemini-2.5-flash",
        base_url: "https://generativelanguage.googleapis.com",
        vias: &[Via::Key("GOOGLE_KEY_1")],
        max_tokens: None,
        max_output_tokens: None,
        account_id: None,
        anthropic_betas: None,
        policy: TargetPolicy::DEFAULT,
    };
    /// A tool schema of ten definitions, each naming the next four times (issue 12's shape).
    static FAN_OUT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let level = |i: usize| {
            let next = format!(r##"{{"$ref":"#/$defs/d{}"}}"##, i + 1);
            format!(
                r#""d{i}":{{"type":"object","description":"one level","properties":{{"a":{next},"b":{next},"c":{next},"d":{next}}}}}"#
            )
        };
        let defs: Vec<String> = (0..10).map(level).collect();
        let schema = format!(
            r##"{{"type":"object","$defs":{{{},"d10":{{"type":"string"}}}},"properties":{{"root":{{"$ref":"#/$defs/d0"}}}}}}"##,
            defs.join(",")
        );
        format!(
            r#"{{"model":"g","messages":[{{"role":"user","content":"hi"}}],"tools":[{{"type":"function","function":{{"name":"explode","parameters":{schema}}}}}]}}"#
        )
    });

    /// An upstream that answers every request at once with a 200-chunk SSE stream.
    #[derive(Clone)]
    struct InstantUpstream;

    impl Host for InstantUpstream {
        async fn send(
            &self,
            _request: UpstreamRequest,
            _timeouts: Timeouts,
        ) -> Result<UpstreamResponse, NetworkError> {
            let chunks = (0..STREAM_CHUNKS)
                .map(|_| Ok(Bytes::from_static(CHUNK.as_bytes())))
                .chain(std::iter::once(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
            Ok(UpstreamResponse {
                status: 200,
                content_type: None,
                retry_after: None,
                body: Box::new(stream::iter(chunks)),
            })
        }
        fn secret(&self, name: &str) -> Option<std::rc::Rc<str>> {
            Some(format!("value-of-{name}").into())
        }
        fn now_ms(&self) -> u64 {
            0
        }
        async fn sleep(&self, _ms: u64) {}
        fn health(&self) -> &KeyHealth {
            &HEALTH
        }
        fn log(&self, _line: &str) {}
    }

    fn incoming() -> IncomingRequest {
        IncomingRequest {
            method: Method::Post,
            path: "/v1/chat/completions".into(),
            headers: Box::new(vec![(
                "authorization".to_owned(),
                "Bearer value-of-PROXY_AUTH_TOKEN".to_owned(),
            )]),
            body: body_ready(RequestBody::Complete(Bytes::from_static(
                REQUEST.as_bytes(),
            ))),
        }
    }

    /// 40 messages of about 1.6 KB of text each, with the quotes and line breaks text has.
    fn long_history() -> String {
        let text = "The \\\"quick\\\" brown fox jumps over the lazy dog.\\n".repeat(32);
        let messages: Vec<String> = (0..40)
            .map(|i| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                format!(r#"{{"role":"{role}","content":"{i}: {text}"}}"#)
            })
            .collect();
        let body = format!(r#"{{"model":"fast","messages":[{}]}}"#, messages.join(","));
        debug_assert!(body.len() > 60_000);
        body
    }

    /// 60 short turns as a tool-using agent sends them: user messages of two text parts, assistant
    /// tool calls and their results; where translation's cost is per message, not per byte.
    fn agent_turns() -> String {
        let mut messages =
            vec![r#"{"role":"system","content":"You are a careful agent."}"#.to_owned()];
        for i in 0..20 {
            messages.push(format!(
                r#"{{"role":"user","content":[{{"type":"text","text":"Step {i}."}},{{"type":"text","text":"Check the weather in Boston."}}]}}"#
            ));
            messages.push(format!(
                r#"{{"role":"assistant","content":null,"tool_calls":[{{"id":"call_{i}","type":"function","function":{{"name":"get_current_weather","arguments":"{{\"location\":\"Boston, MA\"}}"}}}}]}}"#
            ));
            messages.push(format!(
                r#"{{"role":"tool","tool_call_id":"call_{i}","content":"Sunny, 22 degrees."}}"#
            ));
        }
        format!(r#"{{"model":"fast","messages":[{}]}}"#, messages.join(","))
    }

    fn benches(c: &mut Criterion) {
        c.bench_function("request/parse+reserialise (tools, 0.8 KB)", |b| {
            b.iter(|| {
                let request = ChatRequest::parse(black_box(REQUEST.as_bytes()))
                    .unwrap_or_else(|_| unreachable!());
                black_box(request.to_json_with_model("nvidia/llama-3.1-nemotron-70b-instruct"))
            })
        });

        // A long conversation, as an agent or a chat sends it: mostly text.
        let history = long_history();
        c.bench_function("request/parse (conversation, 64 KB)", |b| {
            b.iter(|| {
                ChatRequest::parse(black_box(history.as_bytes())).unwrap_or_else(|_| unreachable!())
            })
        });
        c.bench_function("request/parse+write back (conversation, 64 KB)", |b| {
            b.iter(|| {
                let request = ChatRequest::parse(black_box(history.as_bytes()))
                    .unwrap_or_else(|_| unreachable!());
                black_box(request.to_json_with_model("nvidia/llama-3.1-nemotron-70b-instruct"))
            })
        });

        let mut group = c.benchmark_group("handler");
        group.throughput(Throughput::Elements(1));
        group.bench_function("streamed request, 200 chunks, end to end in process", |b| {
            b.iter(|| {
                let response = handle::<Table, _>(&InstantUpstream, incoming())
                    .now_or_never()
                    .unwrap_or_else(|| unreachable!());
                let ResponseBody::Upstream(body) = response.body else {
                    unreachable!()
                };
                let body = body.into_stream();
                let bytes: usize = body
                    .map(|c| c.map_or(0, |c| c.len()))
                    .collect::<Vec<_>>()
                    .now_or_never()
                    .unwrap_or_default()
                    .iter()
                    .sum();
                black_box(bytes)
            })
        });
        group.finish();

        let mut group = c.benchmark_group("sse");
        group.throughput(Throughput::Bytes(CHUNK.len() as u64));
        group.bench_function("pass-through per chunk", |b| {
            let mut translator = PassThrough::new(true);
            let chunk = Bytes::from_static(CHUNK.as_bytes());
            b.iter(|| black_box(translator.chunk(chunk.clone())))
        });
        group.finish();

        let mut group = c.benchmark_group("anthropic");
        group.bench_function("request translation (tools, 0.8 KB)", |b| {
            let request = ChatRequest::parse(REQUEST.as_bytes()).unwrap_or_else(|_| unreachable!());
            b.iter(|| black_box(Anthropic::prepare(&CLAUDE, black_box(&request), &|_| None)))
        });
        let agent = agent_turns();
        group.bench_function("request translation (agent, 61 messages)", |b| {
            let request = ChatRequest::parse(agent.as_bytes()).unwrap_or_else(|_| unreachable!());
            b.iter(|| black_box(Anthropic::prepare(&CLAUDE, black_box(&request), &|_| None)))
        });
        group.throughput(Throughput::Bytes(CLAUDE_DELTA.len() as u64));
        group.bench_function("stream translation per text_delta event", |b| {
            let mut translator = StreamTranslator::new(1_700_000_000, true, false);
            let _ = translator.chunk(Bytes::from_static(CLAUDE_START.as_bytes()));
            let delta = Bytes::from_static(CLAUDE_DELTA.as_bytes());
            b.iter(|| black_box(translator.chunk(delta.clone())))
        });
        group.finish();

        let mut group = c.benchmark_group("gemini");
        group.bench_function("request translation (tools, 0.8 KB)", |b| {
            let request = ChatRequest::parse(REQUEST.as_bytes()).unwrap_or_else(|_| unreachable!());
            b.iter(|| black_box(Google::prepare(&GEMINI, black_box(&request), &|_| None)))
        });
        group.bench_function("request translation (agent, 61 messages)", |b| {
            let request = ChatRequest::parse(agent.as_bytes()).unwrap_or_else(|_| unreachable!());
            b.iter(|| black_box(Google::prepare(&GEMINI, black_box(&request), &|_| None)))
        });
        group.bench_function("fan-out schema (1.6 KB, 4^10 nodes inlined) refused", |b| {
            let request = ChatRequest::parse(FAN_OUT.as_bytes()).unwrap_or_else(|_| unreachable!());
            b.iter(|| {
                let refused = Google::prepare(&GEMINI, black_box(&request), &|_| None).is_err();
                black_box(refused)
            })
        });
        group.throughput(Throughput::Bytes(GEMINI_EVENT.len() as u64));
        group.bench_function("stream translation per text event", |b| {
            let mut translator =
                google::stream::StreamTranslator::new(1_700_000_000, "gemini-2.5-flash", true);
            let event = Bytes::from_static(GEMINI_EVENT.as_bytes());
            b.iter(|| black_box(translator.chunk(event.clone())))
        });
        group.finish();

        let mut group = c.benchmark_group("front/anthropic");
        group.throughput(Throughput::Bytes(CHUNK.len() as u64));
        group.bench_function("stream translation per OpenAI text chunk", |b| {
            let mut translator = front_stream::stream_translator(
                Box::new(Identity),
                front_stream::StreamContext { input_tokens: 9 },
            );
            let chunk = Bytes::from_static(CHUNK.as_bytes());
            // The first chunk writes message_start and content_block_start; the rest are deltas.
            let _ = translator.chunk(chunk.clone());
            b.iter(|| black_box(translator.chunk(chunk.clone())))
        });
        group.finish();
    }

    criterion_group!(core, benches);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::core);

#[cfg(target_arch = "wasm32")]
fn main() {}
