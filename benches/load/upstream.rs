//! The upstream of the load benchmarks, and the probe that times first events.
//!
//! `serve ADDR`: answers OpenAI, Anthropic and Gemini requests from pre-rendered bytes on every
//! core (a current-thread runtime per core, each with its own `SO_REUSEPORT` listener), so it is
//! never the bottleneck of a run. The path says what to answer, before the API's own path:
//! `/e{EVENTS}/p{PACE_MS}/v1/chat/completions` streams EVENTS content events (default 20), one
//! per write, PACE_MS apart (default 0: back to back), as real LLM streams arrive; `/w1/` sends
//! them all in one write instead.
//! Anthropic is `/.../v1/messages`, Gemini `/.../v1beta/models/M:generateContent` or
//! `:streamGenerateContent`. A request body containing `"stream":true` gets the SSE answer.
//!
//! Faults, for the soak (benches/soak/run.sh), are path segments too, each with the percentage of
//! requests it hits, so that one route mixes healthy and faulty answers: `/fstall{PCT}/` sends
//! the headers and then nothing for an hour; `/freset{PCT}/` resets the connection (RST) halfway
//! through the body; `/f429{PCT}/` answers 429 with `retry-after: 1`; `/fstorm{ON}of{PERIOD}/`
//! answers 429 (`retry-after: 2`) to everything during the first ON seconds of every PERIOD
//! seconds. A last `/x{LABEL}/` segment makes the upstream count the request's fate under
//! LABEL; `GET /stats` returns the counts as JSON, among them `cancelled`: streams whose client
//! closed the connection before the stream ended, which is how the soak shows that a client
//! disconnect reaches the upstream. Unlabelled requests (the benchmarks') are not counted.
//!
//! `probe URL BODY [N]`: N times (default 20), opens a connection, posts BODY with the bench
//! token and prints the milliseconds until the first SSE event carrying content arrived, then the
//! median. `probe-long URL BODY`: reads one whole stream and prints its event count.
//!
//! Run through `benches/load/run.sh`; built as an example (`cargo build --release --example
//! upstream`) so that neither `cargo test` nor `cargo bench` starts a server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

#[cfg(not(target_arch = "wasm32"))]
mod faults;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::convert::Infallible;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::pin::Pin;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::{Frame, Incoming, SizeHint};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpSocket;

    use crate::faults::{self, Fault};

    /// An answer's body: whole, or one event per write with a pause (a sleep, or just a turn of
    /// the event loop, which makes hyper write what it has) between events; or nothing until a
    /// timer ends (a stall).
    enum Body {
        Whole(Option<Bytes>),
        Stall(Pin<Box<tokio::time::Sleep>>),
        Paced {
            events: std::vec::IntoIter<Bytes>,
            pace: Duration,
            sleep: Option<Pin<Box<tokio::time::Sleep>>>,
            yielded: bool,
        },
    }

    impl Body {
        fn paced(events: Vec<Bytes>, pace: Duration) -> Self {
            Body::Paced {
                events: events.into_iter(),
                pace,
                sleep: None,
                yielded: true,
            }
        }

        /// Writes left in a paced body.
        fn frames(&self) -> usize {
            match self {
                Body::Paced { events, .. } => events.len(),
                Body::Whole(_) | Body::Stall(_) => 1,
            }
        }
    }

    impl hyper::body::Body for Body {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.get_mut() {
                Body::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
                Body::Stall(timer) => timer.as_mut().poll(cx).map(|()| None),
                Body::Paced {
                    events,
                    pace,
                    sleep,
                    yielded,
                } => {
                    if let Some(timer) = sleep.as_mut() {
                        if timer.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    } else if !*yielded {
                        // Unpaced: one turn of the loop, so this event is written on its own.
                        *yielded = true;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    match events.next() {
                        Some(event) => {
                            if pace.is_zero() {
                                *yielded = false;
                            } else {
                                *sleep = Some(Box::pin(tokio::time::sleep(*pace)));
                            }
                            Poll::Ready(Some(Ok(Frame::data(event))))
                        }
                        None => Poll::Ready(None),
                    }
                }
            }
        }

        fn size_hint(&self) -> SizeHint {
            match self {
                Body::Whole(Some(b)) => SizeHint::with_exact(b.len() as u64),
                _ => SizeHint::default(),
            }
        }
    }

    use std::future::Future;

    /// What the path asks for.
    struct Shape {
        events: usize,
        pace: Duration,
        /// All events in one write (`w1`), rather than one write each.
        one_write: bool,
        api: Api,
        faults: faults::Faults,
        /// Where this request's fate is counted (`x{LABEL}`), if anywhere.
        label: Option<String>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Api {
        OpenAi,
        Anthropic,
        Gemini { stream: bool },
    }

    fn shape(path: &str) -> Option<Shape> {
        let mut events = 20;
        let mut pace = Duration::ZERO;
        let mut one_write = false;
        let mut faults = faults::Faults::default();
        let mut label = None;
        let mut rest = path;
        while let Some(segment) = rest.strip_prefix('/').and_then(|r| r.split('/').next()) {
            if let Some(n) = segment.strip_prefix('e').and_then(|n| n.parse().ok()) {
                events = n;
            } else if let Some(ms) = segment.strip_prefix('p').and_then(|n| n.parse().ok()) {
                pace = Duration::from_millis(ms);
            } else if segment == "w1" {
                one_write = true;
            } else if faults.parse(segment) {
                // A fault segment: `faults` holds it.
            } else if let Some(name) = segment.strip_prefix('x').filter(|n| !n.is_empty()) {
                label = Some(name.to_owned());
            } else {
                break;
            }
            rest = &rest[1 + segment.len()..];
        }
        let api = if rest.ends_with("/chat/completions") {
            Api::OpenAi
        } else if rest.ends_with("/messages") {
            Api::Anthropic
        } else if rest.contains(":streamGenerateContent") {
            Api::Gemini { stream: true }
        } else if rest.contains(":generateContent") {
            Api::Gemini { stream: false }
        } else {
            return None;
        };
        Some(Shape {
            events,
            pace,
            one_write,
            api,
            faults,
            label,
        })
    }

    const TEXT: &str = "Hello";

    fn openai_stream(events: usize) -> Vec<Bytes> {
        let head = r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","#;
        let mut out = vec![Bytes::from(format!(
            "{head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ))];
        for _ in 0..events {
            out.push(Bytes::from(format!(
                "{head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{TEXT}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
            )));
        }
        out.push(Bytes::from(format!(
            "{head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
        )));
        out.push(Bytes::from(format!(
            "{head}\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{events},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
            events + 12
        )));
        out
    }

    fn anthropic_stream(events: usize) -> Vec<Bytes> {
        let mut out = vec![Bytes::from_static(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        )];
        for _ in 0..events {
            out.push(Bytes::from(format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{TEXT}\"}}}}\n\n"
            )));
        }
        out.push(Bytes::from(format!(
            "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{events}}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )));
        out
    }

    fn gemini_stream(events: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        for _ in 0..events {
            out.push(Bytes::from(format!(
                "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"{TEXT}\"}}],\"role\": \"model\"}},\"index\": 0}}],\"usageMetadata\": {{\"promptTokenCount\": 12,\"candidatesTokenCount\": 1,\"totalTokenCount\": 13}},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"bench\"}}\r\n\r\n"
            )));
        }
        out.push(Bytes::from(format!(
            "data: {{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"\"}}],\"role\": \"model\"}},\"finishReason\": \"STOP\",\"index\": 0}}],\"usageMetadata\": {{\"promptTokenCount\": 12,\"candidatesTokenCount\": {events},\"totalTokenCount\": {}}},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"bench\"}}\r\n\r\n",
            events + 12
        )));
        out
    }

    const OPENAI_JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how are you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}"#;
    const ANTHROPIC_JSON: &str = r#"{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[{"type":"text","text":"Hello there, how are you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":8}}"#;
    const GEMINI_JSON: &str = r#"{"candidates":[{"content":{"parts":[{"text":"Hello there, how are you today?"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":8,"totalTokenCount":20},"modelVersion":"gemini-2.5-flash","responseId":"bench"}"#;

    fn answer(shape: &Shape, stream: bool) -> (&'static str, Body) {
        let events = match (shape.api, stream) {
            (Api::OpenAi, false) => return json(OPENAI_JSON),
            (Api::Anthropic, false) => return json(ANTHROPIC_JSON),
            (Api::Gemini { stream: false }, _) => return json(GEMINI_JSON),
            (Api::OpenAi, true) => openai_stream(shape.events),
            (Api::Anthropic, true) => anthropic_stream(shape.events),
            (Api::Gemini { stream: true }, _) => gemini_stream(shape.events),
        };
        let body = if shape.one_write {
            Body::Whole(Some(Bytes::from(events.concat())))
        } else {
            // The events before the first content (role chunk, message_start) go with it, as
            // they do from real upstreams, so the first content event is not delayed.
            let lead = match shape.api {
                Api::Gemini { .. } => 1,
                Api::OpenAi | Api::Anthropic => 2,
            };
            let mut events = events.into_iter();
            let first: Vec<Bytes> = events.by_ref().take(lead).collect();
            let paced: Vec<Bytes> = std::iter::once(Bytes::from(first.concat()))
                .chain(events)
                .collect();
            Body::paced(paced, shape.pace)
        };
        ("text/event-stream", body)
    }

    fn json(body: &'static str) -> (&'static str, Body) {
        (
            "application/json",
            Body::Whole(Some(Bytes::from_static(body.as_bytes()))),
        )
    }

    /// A 429 as each API words it.
    fn rate_limited(api: Api, retry_after: u32) -> hyper::Response<Answer> {
        let body: &'static str = match api {
            Api::OpenAi => {
                r#"{"error":{"message":"Rate limit reached (emulated)","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
            }
            Api::Anthropic => {
                r#"{"type":"error","error":{"type":"rate_limit_error","message":"Rate limit reached (emulated)"}}"#
            }
            Api::Gemini { .. } => {
                r#"{"error":{"code":429,"message":"Resource exhausted (emulated)","status":"RESOURCE_EXHAUSTED"}}"#
            }
        };
        let mut response = whole(hyper::StatusCode::TOO_MANY_REQUESTS, body);
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(retry_after),
        );
        response
    }

    /// What the server sends: a body that counts how it ended and can reset its connection.
    type Answer = faults::Tracked<Body>;

    fn whole(status: hyper::StatusCode, body: &'static str) -> hyper::Response<Answer> {
        let body = Body::Whole(Some(Bytes::from_static(body.as_bytes())));
        let mut r = hyper::Response::new(faults::Tracked::new(body, Default::default(), None));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        r
    }

    async fn respond(
        request: hyper::Request<Incoming>,
        reset: Arc<AtomicBool>,
    ) -> hyper::Response<Answer> {
        if request.method() == hyper::Method::GET && request.uri().path() == "/stats" {
            let stats = Bytes::from(faults::stats_json());
            return hyper::Response::new(faults::Tracked::new(
                Body::Whole(Some(stats)),
                reset,
                None,
            ));
        }
        let shape = shape(request.uri().path());
        let body = request.into_body().collect().await.map(|b| b.to_bytes());
        let (shape, body) = match (shape, body) {
            (Some(shape), Ok(body)) => (shape, body),
            _ => return whole(hyper::StatusCode::NOT_FOUND, "{}"),
        };
        let counts = shape.label.as_deref().map(faults::Counts::request);
        let fault = shape.faults.draw();
        if let Some(counts) = &counts {
            counts.fault(fault);
        }
        let stream = body.windows(13).any(|w| w == b"\"stream\":true");
        let (content_type, body) = match fault {
            Fault::RateLimit { retry_after } => return rate_limited(shape.api, retry_after),
            Fault::Stall => {
                let stall = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
                let content_type = if stream {
                    "text/event-stream"
                } else {
                    "application/json"
                };
                (content_type, Body::Stall(stall))
            }
            Fault::Reset | Fault::None => answer(&shape, stream),
        };
        // Whole answers are written at once: only streams (and stalls) can be cancelled.
        let counted = counts.filter(|_| !matches!(body, Body::Whole(_)) || fault == Fault::Reset);
        let body = match (fault, body) {
            (Fault::Reset, Body::Whole(Some(bytes))) => {
                // Halfway through: the first half as one write, then the reset.
                let half = bytes.len() / 2;
                let halves = vec![bytes.slice(..half), bytes.slice(half..)];
                faults::Tracked::new(Body::paced(halves, Duration::ZERO), reset, counted)
                    .reset_after(1)
            }
            (Fault::Reset, body @ Body::Paced { .. }) => {
                let frames = body.frames();
                faults::Tracked::new(body, reset, counted).reset_after((frames / 2).max(1))
            }
            (_, body) => faults::Tracked::new(body, reset, counted),
        };
        let mut response = hyper::Response::new(body);
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(content_type),
        );
        response
    }

    fn serve_on(addr: SocketAddr) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(addr)?;
            let listener = socket.listen(1024)?;
            loop {
                let (stream, _) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let (io, reset) = faults::ResetOnDrop::new(stream);
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(
                            TokioIo::new(io),
                            service_fn(move |r| {
                                let reset = Arc::clone(&reset);
                                async move { Ok::<_, Infallible>(respond(r, reset).await) }
                            }),
                        )
                        .await;
                });
            }
        })
    }

    fn serve(addr: SocketAddr) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let handles: Vec<_> = (0..threads)
            .map(|_| std::thread::spawn(move || serve_on(addr)))
            .collect();
        eprintln!("bench upstream on http://{addr} ({threads} threads)");
        for h in handles {
            if let Ok(Err(e)) = h.join() {
                eprintln!("bench upstream: {e}");
                std::process::exit(1);
            }
        }
    }

    /// Posts `body` to `url` on a new connection; returns the connection, what was read so far,
    /// and when the request was sent.
    fn post(url: &str, body: &str) -> (TcpStream, Instant) {
        let rest = url.strip_prefix("http://").expect("an http:// URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut conn = TcpStream::connect(authority).expect("connect");
        conn.set_nodelay(true).unwrap();
        let token = std::env::var("TOKEN").unwrap_or_else(|_| "bench-token".into());
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nx-api-key: {token}\r\nx-goog-api-key: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        conn.write_all(request.as_bytes()).unwrap();
        (conn, sent)
    }

    /// Whether `bytes` hold, after the response headers, a complete SSE event that carries
    /// content (OpenAI `content`, Anthropic `text_delta`, Gemini `text`).
    fn has_content_event(bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        let Some((_, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        [
            "\"content\":\"Hello\"",
            "\"text\":\"Hello\"",
            "\"text\": \"Hello\"",
        ]
        .iter()
        .filter_map(|marker| body.find(marker))
        .any(|at| body[at..].contains("\n\n") || body[at..].contains("\r\n\r\n"))
    }

    fn probe(url: &str, body: &str, n: usize) {
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut conn, sent) = post(url, body);
            let mut seen = Vec::new();
            let mut buf = [0u8; 16384];
            loop {
                let read = conn.read(&mut buf).unwrap();
                assert!(
                    read > 0,
                    "the stream ended before a content event: {}",
                    String::from_utf8_lossy(&seen)
                );
                seen.extend_from_slice(&buf[..read]);
                if has_content_event(&seen) {
                    break;
                }
            }
            times.push(sent.elapsed().as_secs_f64() * 1000.0);
            // Read to the end so the server finishes the request before the next probe.
            while conn.read(&mut buf).map_or(0, |n| n) > 0 {}
        }
        times.sort_by(f64::total_cmp);
        println!("{:.3}", times[times.len() / 2]);
    }

    fn probe_long(url: &str, body: &str) {
        let (mut conn, _) = post(url, body);
        let mut all = Vec::new();
        conn.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        println!("{}", text.matches("data:").count());
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["serve", addr] => serve(addr.parse().expect("ADDR: ip:port")),
            ["probe", url, body] => probe(url, body, 20),
            ["probe", url, body, n] => probe(url, body, n.parse().expect("N")),
            ["probe-long", url, body] => probe_long(url, body),
            _ => {
                eprintln!("usage: upstream serve ADDR | probe URL BODY [N] | probe-long URL BODY");
                std::process::exit(2);
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(target_arch = "wasm32")]
fn main() {}
