//! One client connection's limits: how long its request head may take, how long it may sit idle
//! between requests, and the graceful close on shutdown.
//!
//! hyper's own `header_read_timeout` starts whenever it waits for a request head, idle or not,
//! so it cannot tell a slow client from a pooled connection waiting for its next request. Here
//! the socket and the service report what the connection is doing ([`Phase`]), and [`Guarded`]
//! closes it when the phase's time is up.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::core::route::ServerLimits;

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opened, or a request's first byte arrived: its head must be complete by
    /// `header_read_timeout` after this.
    Head(Instant),
    /// A request is being read or answered: the body's and the upstream's own deadlines apply.
    Busy,
    /// The last answer was sent: the next request must start by `keep_alive_timeout` after this.
    Idle(Instant),
}

/// A connection's phase, shared by its socket, its service and its guard (one thread, one task).
#[derive(Debug, Clone)]
pub struct Tracker(Rc<Cell<Phase>>);

impl Tracker {
    /// A tracker for a connection opened now.
    pub fn opened() -> Self {
        Self(Rc::new(Cell::new(Phase::Head(Instant::now()))))
    }

    /// The request head is complete: from now on the request's own deadlines apply.
    pub fn busy(&self) {
        self.0.set(Phase::Busy);
    }

    /// The answer has been handed over: the connection waits for its next request.
    pub fn idle(&self) {
        self.0.set(Phase::Idle(Instant::now()));
    }

    /// Bytes arrived: if the connection was idle, a request head has begun.
    fn bytes_arrived(&self) {
        if let Phase::Idle(_) = self.0.get() {
            self.0.set(Phase::Head(Instant::now()));
        }
    }

    /// When the current phase's time is up, if it has a limit.
    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        match self.0.get() {
            Phase::Head(since) => Some(since + ms(limits.header_read_timeout_ms)),
            Phase::Idle(since) => Some(since + ms(limits.keep_alive_timeout_ms)),
            Phase::Busy => None,
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The client's socket, telling its tracker when bytes arrive.
pub struct Watched {
    stream: TcpStream,
    tracker: Tracker,
}

impl Watched {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream, tracker: Tracker) -> Self {
        Self { stream, tracker }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.tracker.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// What [`Guarded`] needs of a served connection: hyper's `http1::Connection`.
pub trait Served: Future {
    /// Finish the request in flight, if any, then close (close at once when idle).
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> Served for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self);
    }
}

/// A connection served until it ends, its phase's time is up (then it is dropped, which closes
/// the socket), or the server stops (then it finishes its request and closes).
pub struct Guarded<C> {
    conn: Pin<Box<C>>,
    tracker: Tracker,
    limits: ServerLimits,
    timer: Pin<Box<Sleep>>,
    /// Resolves when the server starts shutting down.
    stopping: Pin<Box<dyn Future<Output = ()>>>,
    draining: bool,
}

impl<C: Served> Guarded<C> {
    /// Guards `conn`, whose socket and service report to `tracker`.
    pub fn new(
        conn: C,
        tracker: Tracker,
        limits: ServerLimits,
        stopping: Pin<Box<dyn Future<Output = ()>>>,
    ) -> Self {
        let first = tracker.deadline(&limits).unwrap_or_else(Instant::now);
        Self {
            conn: Box::pin(conn),
            tracker,
            limits,
            timer: Box::pin(tokio::time::sleep_until(first)),
            stopping,
            draining: false,
        }
    }
}

impl<C: Served> Future for Guarded<C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.draining && this.stopping.as_mut().poll(cx).is_ready() {
            this.draining = true;
            this.conn.as_mut().graceful_shutdown();
        }
        if this.conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // The phase only changes while the connection is polled, just above, so the deadline
        // read here is current until the next poll.
        let Some(deadline) = this.tracker.deadline(&this.limits) else {
            return Poll::Pending;
        };
        // Moved only earlier: a timer left at an earlier deadline fires, finds it was not the
        // real one, and is set again, once per phase at most, instead of a timer reset on every
        // phase change (twice per request).
        if deadline < this.timer.deadline() {
            this.timer.as_mut().reset(deadline);
        }
        loop {
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if Instant::now() >= deadline => return Poll::Ready(()),
                Poll::Ready(()) => this.timer.as_mut().reset(deadline),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_phase_has_its_own_limit() {
        let limits = ServerLimits {
            header_read_timeout_ms: 1_000,
            keep_alive_timeout_ms: 5_000,
            ..ServerLimits::DEFAULT
        };
        let tracker = Tracker::opened();
        let Phase::Head(opened) = tracker.0.get() else {
            panic!("a new connection waits for its head");
        };
        assert_eq!(tracker.deadline(&limits), Some(opened + ms(1_000)));
        // Bytes of a head in progress do not extend it.
        tracker.bytes_arrived();
        assert_eq!(tracker.deadline(&limits), Some(opened + ms(1_000)));
        tracker.busy();
        assert_eq!(tracker.deadline(&limits), None);
        tracker.idle();
        let Phase::Idle(idle) = tracker.0.get() else {
            panic!("idle after the answer");
        };
        assert_eq!(tracker.deadline(&limits), Some(idle + ms(5_000)));
        tracker.bytes_arrived();
        assert!(matches!(tracker.0.get(), Phase::Head(_)));
    }
}
