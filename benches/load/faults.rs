//! The upstream's faults and its count of what became of each labelled request (see the
//! upstream's doc): what the soak (benches/soak/run.sh) injects and how it proves that a client
//! disconnect reaches the upstream.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The faults a path asks for: percentages of requests, and a 429 storm's window.
#[derive(Default)]
pub struct Faults {
    stall: u32,
    reset: u32,
    rate_limit: u32,
    /// 429 to everything during the first `.0` seconds of every `.1` seconds.
    storm: Option<(u64, u64)>,
}

/// The fault a request drew.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Headers, then nothing for an hour.
    Stall,
    /// A reset halfway through the body.
    Reset,
    /// 429 with this `retry-after`.
    RateLimit {
        retry_after: u32,
    },
}

impl Faults {
    /// Takes a path segment if it names a fault (`fstall5`, `freset5`, `f4295`, `fstorm10of30`).
    pub fn parse(&mut self, segment: &str) -> bool {
        let percent = |prefix: &str| segment.strip_prefix(prefix)?.parse::<u32>().ok();
        if let Some(n) = percent("fstall") {
            self.stall = n;
        } else if let Some(n) = percent("freset") {
            self.reset = n;
        } else if let Some(n) = percent("f429") {
            self.rate_limit = n;
        } else if let Some(window) = segment
            .strip_prefix("fstorm")
            .and_then(|s| s.split_once("of"))
            .and_then(|(on, period)| Some((on.parse().ok()?, period.parse().ok()?)))
            .filter(|&(_, period): &(u64, u64)| period > 0)
        {
            self.storm = Some(window);
        } else {
            return false;
        }
        true
    }

    /// The fault this request gets.
    pub fn draw(&self) -> Fault {
        if let Some((on, period)) = self.storm {
            if started().elapsed().as_secs() % period < on {
                return Fault::RateLimit { retry_after: 2 };
            }
        }
        // One draw over the three percentages, so that they add up as written.
        let roll = (random() % 100) as u32;
        if roll < self.stall {
            Fault::Stall
        } else if roll < self.stall + self.reset {
            Fault::Reset
        } else if roll < self.stall + self.reset + self.rate_limit {
            Fault::RateLimit { retry_after: 1 }
        } else {
            Fault::None
        }
    }
}

/// When the server started: the 429 storms' clock.
pub fn started() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A xorshift per thread: the faults need a fair coin, not a cryptographic one.
fn random() -> u64 {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

/// What became of one label's requests.
#[derive(Default)]
pub struct Counts {
    requests: AtomicU64,
    /// Streamed (or stalled) bodies started, and how they ended.
    streams: AtomicU64,
    completed: AtomicU64,
    /// Closed by the client (the proxy) before the body ended: a cancelled upstream request.
    cancelled: AtomicU64,
    stalled: AtomicU64,
    reset: AtomicU64,
    rate_limited: AtomicU64,
}

impl Counts {
    /// Counts a request under `label`; returns the label's counts, created on first use.
    pub fn request(label: &str) -> Arc<Counts> {
        let mut all = registry().lock().unwrap_or_else(|e| e.into_inner());
        let counts = all.entry(label.to_owned()).or_default();
        counts.requests.fetch_add(1, Ordering::Relaxed);
        Arc::clone(counts)
    }

    /// Notes the fault a request drew.
    pub fn fault(&self, fault: Fault) {
        let counter = match fault {
            Fault::None => return,
            Fault::Stall => &self.stalled,
            Fault::Reset => &self.reset,
            Fault::RateLimit { .. } => &self.rate_limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<Counts>>> {
    static ALL: OnceLock<Mutex<BTreeMap<String, Arc<Counts>>>> = OnceLock::new();
    ALL.get_or_init(Default::default)
}

/// Every label's counts as a JSON object, for `GET /stats`.
pub fn stats_json() -> String {
    let all = registry().lock().unwrap_or_else(|e| e.into_inner());
    let labels: Vec<String> = all
        .iter()
        .map(|(label, c)| {
            let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
            format!(
                "\"{label}\":{{\"requests\":{},\"streams\":{},\"completed\":{},\"cancelled\":{},\"stalled\":{},\"reset\":{},\"rate_limited\":{}}}",
                n(&c.requests),
                n(&c.streams),
                n(&c.completed),
                n(&c.cancelled),
                n(&c.stalled),
                n(&c.reset),
                n(&c.rate_limited)
            )
        })
        .collect();
    format!("{{{}}}\n", labels.join(","))
}

/// A response body that counts how its stream ended (a body dropped before its end was
/// cancelled by the client) and can reset its connection after some frames.
pub struct Tracked<B> {
    body: B,
    /// Frames still to send before the connection is reset (`freset`).
    reset_after: Option<usize>,
    /// The connection's reset flag (see [`ResetOnDrop`]).
    reset: Arc<AtomicBool>,
    /// Where a stream's end is counted; `None`: not counted (whole answers, unlabelled paths).
    counts: Option<Arc<Counts>>,
    ended: bool,
}

impl<B> Tracked<B> {
    /// `body` on the connection whose reset flag is `reset`, counted under `counts` as a stream.
    pub fn new(body: B, reset: Arc<AtomicBool>, counts: Option<Arc<Counts>>) -> Self {
        if let Some(counts) = &counts {
            counts.streams.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            body,
            reset_after: None,
            reset,
            counts,
            ended: false,
        }
    }

    /// Resets the connection after `frames` frames instead of ending the body.
    pub fn reset_after(mut self, frames: usize) -> Self {
        self.reset_after = Some(frames);
        self
    }

    fn end(&mut self, counter: impl Fn(&Counts) -> &AtomicU64) {
        self.ended = true;
        if let Some(counts) = &self.counts {
            counter(counts).fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.reset_after == Some(0) {
            this.reset.store(true, Ordering::Relaxed);
            // A reset is the upstream's own doing, not a cancellation.
            this.ended = true;
            return Poll::Ready(Some(Err(io::Error::from(io::ErrorKind::ConnectionReset))));
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(left) = this.reset_after.as_mut() {
                    *left -= 1;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(_))) => {
                this.ended = true;
                Poll::Ready(Some(Err(io::Error::other("body failed"))))
            }
            Poll::Ready(None) => {
                this.end(|c| &c.completed);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.reset_after.is_some() {
            SizeHint::default()
        } else {
            self.body.size_hint()
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(|c| &c.cancelled);
        }
    }
}

/// A connection that is reset (RST, `SO_LINGER` 0) rather than closed once a body has asked for
/// it: what a crashed upstream or a middlebox does, and a different error from a clean close.
pub struct ResetOnDrop {
    stream: tokio::net::TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResetOnDrop {
    /// `stream`, and the flag its bodies set to reset it.
    pub fn new(stream: tokio::net::TcpStream) -> (Self, Arc<AtomicBool>) {
        let reset = Arc::new(AtomicBool::new(false));
        let io = Self {
            stream,
            reset: Arc::clone(&reset),
        };
        (io, reset)
    }

    /// Once reset, nothing more is written: not even hyper's end of a chunked body.
    fn refuse(&self) -> Option<io::Error> {
        self.reset
            .load(Ordering::Relaxed)
            .then(|| io::Error::from(io::ErrorKind::ConnectionReset))
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.refuse() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.refuse() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = self.refuse() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = self.stream.set_zero_linger();
        }
    }
}
