//! The soak client (benches/soak/run.sh): N concurrent clients, each on its own keep-alive
//! connection, sending chat completions to the proxy for a while, and a report of what came back.
//!
//! `soak MIX ADDR [--clients N] [--seconds S] [--count K] [--threads T] [--ramp-ms MS]`
//!
//! - `streams`: healthy streams, rotating over the pass-through, Anthropic and Gemini routes.
//! - `mixed`: healthy streams and JSON, streams the client abandons after its first events (a
//!   client disconnect), and requests to routes whose upstream stalls, resets, answers 429 or
//!   storms (tests/routes/soak.toml).
//! - `abandon`: only abandoned streams, until K (`--count`) were abandoned.
//! - `early`: K requests to a route whose upstream stalls, each given up after 500 ms, before
//!   any byte of the answer arrived.
//!
//! Every request's outcome is counted by kind (ok, HTTP status, in-stream error, cut stream,
//! connect error, ...) with the time to its first content event and to its end; the report is
//! Markdown on stdout, with a last line `abandoned N` for the script.
//!
//! An example (`cargo build --release --example soak`) so that `cargo test` never starts it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

#[cfg(not(target_arch = "wasm32"))]
mod report;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpStream;

    use crate::report::{Outcome, Report};

    /// One kind of request: a route, streamed or not, abandoned or read to the end.
    #[derive(Clone, Copy)]
    struct Kind {
        model: &'static str,
        stream: bool,
        end: End,
    }

    /// How the client ends a request.
    #[derive(Clone, Copy, PartialEq)]
    enum End {
        /// Reads the answer to its end.
        Read,
        /// Goes away a few frames after the first content event.
        Abandon,
        /// Goes away after 500 ms, whatever arrived.
        Early,
    }

    const fn kind(model: &'static str, stream: bool, end: End) -> Kind {
        Kind { model, stream, end }
    }

    /// Phase 1: healthy streams in each wire format.
    const STREAMS: &[(Kind, u32)] = &[
        (kind("soak", true, End::Read), 1),
        (kind("soak-claude", true, End::Read), 1),
        (kind("soak-gemini", true, End::Read), 1),
    ];

    /// Phase 2, with weights (percent): a quarter healthy streams, a tenth JSON, a tenth
    /// abandoned, the rest to faulty routes.
    const MIXED: &[(Kind, u32)] = &[
        (kind("soak", true, End::Read), 10),
        (kind("soak-claude", true, End::Read), 8),
        (kind("soak-gemini", true, End::Read), 7),
        (kind("soak", false, End::Read), 4),
        (kind("soak-claude", false, End::Read), 3),
        (kind("soak-gemini", false, End::Read), 3),
        (kind("soak-abandon", true, End::Abandon), 4),
        (kind("soak-abandon-claude", true, End::Abandon), 3),
        (kind("soak-abandon-gemini", true, End::Abandon), 3),
        (kind("soak-faulty", true, End::Read), 15),
        (kind("soak-faulty", false, End::Read), 5),
        (kind("soak-storm", true, End::Read), 10),
        (kind("soak-storm", false, End::Read), 5),
        (kind("soak-stall", true, End::Read), 4),
        (kind("soak-stall", false, End::Read), 2),
        (kind("soak-reset", true, End::Read), 10),
        (kind("soak-reset", false, End::Read), 4),
    ];

    const ABANDON: &[(Kind, u32)] = &[
        (kind("soak-abandon", true, End::Abandon), 1),
        (kind("soak-abandon-claude", true, End::Abandon), 1),
        (kind("soak-abandon-gemini", true, End::Abandon), 1),
    ];

    const EARLY: &[(Kind, u32)] = &[(kind("soak-hang", true, End::Early), 1)];

    /// Longer than any route should take (the proxy's `total_timeout` is 60 s): a request still
    /// running then is counted as a client timeout.
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

    /// Frames read after the first content event before an abandoning client goes.
    const ABANDON_AFTER_FRAMES: usize = 3;

    struct Options {
        mix: &'static [(Kind, u32)],
        mix_name: String,
        addr: SocketAddr,
        clients: usize,
        seconds: u64,
        /// Requests to make in all (`abandon`, `early`); unlimited within `seconds` otherwise.
        count: Option<usize>,
        threads: usize,
        ramp: Duration,
        token: String,
    }

    fn options() -> Options {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let usage = "usage: soak streams|mixed|abandon|early ADDR [--clients N] [--seconds S] \
                     [--count K] [--threads T] [--ramp-ms MS]   (token: SOAK_TOKEN)";
        let [mix_name, addr, flags @ ..] = &args[..] else {
            eprintln!("{usage}");
            std::process::exit(2);
        };
        let mix = match mix_name.as_str() {
            "streams" => STREAMS,
            "mixed" => MIXED,
            "abandon" => ABANDON,
            "early" => EARLY,
            _ => panic!("{usage}"),
        };
        let mut options = Options {
            mix,
            mix_name: mix_name.clone(),
            addr: addr.parse().expect("ADDR: ip:port"),
            clients: 100,
            seconds: 60,
            count: None,
            threads: 2,
            ramp: Duration::from_secs(1),
            token: std::env::var("SOAK_TOKEN").unwrap_or_else(|_| "soak-token".into()),
        };
        for pair in flags.chunks(2) {
            let [flag, value] = pair else {
                panic!("{usage}")
            };
            let n: u64 = value.parse().expect("a number");
            match flag.as_str() {
                "--clients" => options.clients = n as usize,
                "--seconds" => options.seconds = n,
                "--count" => options.count = Some(n as usize),
                "--threads" => options.threads = (n as usize).max(1),
                "--ramp-ms" => options.ramp = Duration::from_millis(n),
                _ => panic!("{usage}"),
            }
        }
        options
    }

    /// A keep-alive connection to the proxy; dropping it closes the socket at once.
    struct Conn {
        sender: http1::SendRequest<Full<Bytes>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn connect(addr: SocketAddr) -> Result<Conn, Outcome> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| Outcome::ConnectError)?
            .map_err(|_| Outcome::ConnectError)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Outcome::ConnectError)?;
        let task = tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Ok(Conn { sender, task })
    }

    fn find(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// What one request came to, and when its first content event and its end arrived.
    struct Done {
        outcome: Outcome,
        first: Option<Duration>,
        total: Duration,
    }

    /// Sends one request on `conn` (connecting first if there is none) and reads its answer as
    /// `kind` says. The connection is kept for the next request unless the request broke it.
    async fn request(conn: &mut Option<Conn>, options: &Options, kind: Kind) -> Done {
        let started = Instant::now();
        let done = |outcome, first| Done {
            outcome,
            first,
            total: started.elapsed(),
        };
        if conn.as_ref().is_none_or(|c| c.sender.is_closed()) {
            match connect(options.addr).await {
                Ok(c) => *conn = Some(c),
                Err(outcome) => return done(outcome, None),
            }
        }
        let Some(c) = conn.as_mut() else {
            return done(Outcome::ConnectError, None);
        };
        let body = format!(
            r#"{{"model":"{}","messages":[{{"role":"user","content":"Say hello."}}],"stream":{}}}"#,
            kind.model, kind.stream
        );
        let request = hyper::Request::post("/v1/chat/completions")
            .header(hyper::header::HOST, options.addr.to_string())
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", options.token),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        if c.sender.ready().await.is_err() {
            *conn = None;
            return done(Outcome::SendError, None);
        }
        let limit = if kind.end == End::Early {
            Duration::from_millis(500)
        } else {
            REQUEST_TIMEOUT
        };
        let read = read(c, request, kind, started);
        match tokio::time::timeout(limit, read).await {
            Ok((outcome, first)) => {
                if !matches!(outcome, Outcome::Ok | Outcome::Http(_)) {
                    // Cut, abandoned or broken: this connection is done.
                    *conn = None;
                }
                done(outcome, first)
            }
            Err(_) => {
                *conn = None;
                let outcome = if kind.end == End::Early {
                    Outcome::Abandoned
                } else {
                    Outcome::Timeout
                };
                done(outcome, None)
            }
        }
    }

    async fn read(
        conn: &mut Conn,
        request: hyper::Request<Full<Bytes>>,
        kind: Kind,
        started: Instant,
    ) -> (Outcome, Option<Duration>) {
        let response = match conn.sender.send_request(request).await {
            Ok(response) => response,
            Err(_) => return (Outcome::SendError, None),
        };
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut seen = Vec::new();
        let mut first = None;
        let mut frames_after_first = 0;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    seen.extend_from_slice(&data);
                    if status != 200 || !kind.stream {
                        continue;
                    }
                    if first.is_some() {
                        frames_after_first += 1;
                    } else if find(&seen, b"\"content\":\"H") {
                        first = Some(started.elapsed());
                    }
                    if kind.end == End::Abandon && frames_after_first >= ABANDON_AFTER_FRAMES {
                        return (Outcome::Abandoned, first);
                    }
                }
                Some(Err(_)) => return (Outcome::Cut, first),
                None => break,
            }
        }
        let outcome = if status != 200 {
            Outcome::Http(status)
        } else if !kind.stream {
            if find(&seen, b"\"choices\"") {
                Outcome::Ok
            } else {
                Outcome::BadAnswer
            }
        } else if find(&seen, b"data: {\"error\"") {
            Outcome::StreamError
        } else if find(&seen, b"data: [DONE]") && first.is_some() {
            Outcome::Ok
        } else {
            Outcome::Cut
        };
        // A JSON answer's only event is its end.
        let first = first.or_else(|| (!kind.stream).then(|| started.elapsed()));
        (outcome, first)
    }

    /// Picks the `i`-th request kind from a weighted mix: a fixed low-discrepancy sequence, so
    /// every run sends the same proportions without a random generator.
    fn pick(mix: &[(Kind, u32)], i: usize) -> Kind {
        let total: u32 = mix.iter().map(|(_, w)| w).sum();
        // The golden ratio's fractional part spreads consecutive picks over the whole range.
        let at = ((i as f64 * 0.618_033_988_75).fract() * f64::from(total)) as u32;
        let mut acc = 0;
        for (kind, weight) in mix {
            acc += weight;
            if at < acc {
                return *kind;
            }
        }
        mix[mix.len() - 1].0
    }

    /// One client: requests back to back until the deadline or the shared budget runs out.
    async fn client(
        id: usize,
        options: Arc<Options>,
        budget: Arc<AtomicUsize>,
        report: Report,
    ) -> Report {
        let mut report = report;
        tokio::time::sleep(options.ramp.mul_f64(id as f64 / options.clients as f64)).await;
        let deadline = Instant::now() + Duration::from_secs(options.seconds);
        let mut conn = None;
        let mut i = id * 7919;
        while Instant::now() < deadline {
            if options.count.is_some()
                && budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_err()
            {
                break;
            }
            let kind = pick(options.mix, i);
            i += 1;
            let done = request(&mut conn, &options, kind).await;
            let name = format!(
                "{} {}",
                kind.model,
                if kind.stream { "stream" } else { "JSON" }
            );
            report.record(&name, done.outcome, done.first, done.total);
        }
        report
    }

    pub fn main() {
        let options = Arc::new(options());
        let budget = Arc::new(AtomicUsize::new(options.count.unwrap_or(usize::MAX)));
        let merged = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        let threads: Vec<_> = (0..options.threads)
            .map(|t| {
                let (options, budget, merged) = (
                    Arc::clone(&options),
                    Arc::clone(&budget),
                    Arc::clone(&merged),
                );
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    let local = tokio::task::LocalSet::new();
                    let report = local.block_on(&runtime, async {
                        let clients: Vec<_> = (t..options.clients)
                            .step_by(options.threads)
                            .map(|id| {
                                tokio::task::spawn_local(client(
                                    id,
                                    Arc::clone(&options),
                                    Arc::clone(&budget),
                                    Report::default(),
                                ))
                            })
                            .collect();
                        let mut report = Report::default();
                        for c in clients {
                            report.merge(c.await.expect("a client"));
                        }
                        report
                    });
                    merged.lock().expect("the report").merge(report);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a client thread");
        }
        let report = merged.lock().expect("the report");
        report.print(&options.mix_name, options.clients, started.elapsed());
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(target_arch = "wasm32")]
fn main() {}
