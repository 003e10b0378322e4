//! hyper ⇄ core: converts requests and responses and runs the accept loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::core;
use crate::core::error::MAX_BODY_BYTES;
use crate::core::http::{
    BodyStream, IncomingRequest, Method, ProxyResponse, RequestBody, RequestHeaders, ResponseBody,
    StreamAbort,
};
use crate::core::route::ServerLimits;
use crate::hosts::native::connection::{Guarded, Tracker, Watched};
use crate::hosts::native::redis::{RedisLimits, RedisUrl};
use crate::hosts::native::{NativeHost, Shared};

/// Largest body frame gathered from stream pieces.
const MAX_FRAME: usize = 64 * 1024;

/// A response body hyper can write: whole, or forwarded as the core yields it.
/// (http-body-util's boxed bodies require `Send`, which the core's streams are not.)
enum Body {
    Full(Option<Bytes>),
    Stream(Gather),
}

/// Turns of the event loop a gathered piece waits for the next one. hyper's client hands a body
/// over one chunk at a time, the next one already read two turns after the last was taken.
const TURNS: u8 = 2;

/// A stream's pieces gathered into as few writes as possible without waiting for time: when the
/// stream has nothing more right now, the pieces so far wait [`TURNS`] turns of the event loop,
/// in which the upstream connection hands over what it has already read. A burst of events from
/// upstream then costs one write to the client, not one per event, and no byte waits for
/// anything but tasks that can run at once. The first piece does not wait: it is what the core
/// held until the first token, which the client is waiting for, and ready when the response is,
/// so hyper writes it with the response's head.
struct Gather {
    stream: BodyStream,
    pieces: Option<BytesMut>,
    /// Whether a piece has been handed on.
    started: bool,
    /// Turns of the loop given since the last piece arrived.
    turns: u8,
    /// What ended the stream while pieces were waiting: reported after them.
    end: Option<Option<Result<Bytes, StreamAbort>>>,
}

impl Gather {
    fn new(stream: BodyStream) -> Self {
        Self {
            stream,
            pieces: None,
            started: false,
            turns: 0,
            end: None,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamAbort>>> {
        if let Some(end) = self.end.take() {
            return Poll::Ready(end);
        }
        loop {
            match self.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(piece))) => {
                    self.turns = 0;
                    let pieces = self.pieces.get_or_insert_with(BytesMut::new);
                    pieces.extend_from_slice(&piece);
                    if pieces.len() >= MAX_FRAME {
                        return Poll::Ready(self.take());
                    }
                }
                Poll::Ready(end) => {
                    if self.pieces.is_none() {
                        return Poll::Ready(end);
                    }
                    self.end = Some(end);
                    return Poll::Ready(self.take());
                }
                Poll::Pending if self.pieces.is_none() => return Poll::Pending,
                Poll::Pending if self.started && self.turns < TURNS => {
                    self.turns += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Ready(self.take()),
            }
        }
    }

    fn take(&mut self) -> Option<Result<Bytes, StreamAbort>> {
        self.turns = 0;
        self.started = true;
        self.pieces.take().map(|p| Ok(p.freeze()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = StreamAbort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAbort>>> {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Stream(gather) => gather
                .poll_next(cx)
                .map(|item| item.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// A response body that tells its connection's tracker when hyper is done with it: the
/// connection is then idle, and its keep-alive time starts.
struct Tracked {
    body: Body,
    tracker: Tracker,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.tracker.idle();
    }
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = StreamAbort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAbort>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What every connection of one server thread needs.
#[derive(Clone)]
struct Connections {
    host: NativeHost,
    limits: ServerLimits,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// Accepts connections until `stop` turns true, then lets open connections finish their
/// requests for up to `shutdown_timeout`. Must run inside a `tokio::task::LocalSet`: the core's
/// futures are `!Send` by design (see [`Host`](crate::core::host::Host)).
async fn serve(listener: TcpListener, cx: Connections) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    let mut stop = cx.stop.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors or a connection reset before it was accepted: the
                // listener itself is fine, so wait a moment rather than spin or stop serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|stopping| *stopping) => break,
        };
        while connections.try_join_next().is_some() {}
        let Some(slot) = Slot::take(&cx.shared, cx.limits.max_connections) else {
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn_local(connection(stream, cx.clone(), slot));
    }
    // New connections are refused from here on; running requests get the grace period.
    drop(listener);
    let grace = Duration::from_millis(cx.limits.shutdown_timeout_ms);
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One of `max_connections`, given back when the connection closes.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>, max: u32) -> Option<Self> {
        let open = shared.open_connections.fetch_add(1, Ordering::AcqRel);
        if open >= max as usize {
            shared.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a connection over `max_connections` with a 503 if its socket takes it at once, and
/// closes it: no task, no buffer, nothing read.
fn refuse(stream: &tokio::net::TcpStream) {
    const BODY: &str = r#"{"error":{"message":"The proxy is at its connection limit; retry shortly.","type":"server_error","param":null,"code":"too_many_connections"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

async fn connection(stream: tokio::net::TcpStream, cx: Connections, slot: Slot) {
    let tracker = Tracker::opened();
    let io = TokioIo::new(Watched::new(stream, tracker.clone()));
    let service = {
        let (host, tracker) = (cx.host.clone(), tracker.clone());
        let body_timeout = Duration::from_millis(cx.limits.body_read_timeout_ms);
        service_fn(move |request| {
            tracker.busy();
            let (host, tracker) = (host.clone(), tracker.clone());
            async move {
                let response = respond(&host, request, body_timeout).await;
                Ok::<_, Infallible>(response.map(|body| Tracked { body, tracker }))
            }
        })
    };
    let conn = http1::Builder::new()
        .keep_alive(cx.limits.keep_alive_timeout_ms > 0)
        .max_buf_size(cx.limits.max_header_bytes as usize)
        .serve_connection(io, service);
    let mut stop = cx.stop.clone();
    let stopping = Box::pin(async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    // A client that goes away mid-response is not the server's error.
    Guarded::new(conn, tracker, cx.limits, stopping).await;
    drop(slot);
}

/// A running server: its threads, and what stops them.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    threads: Vec<ServerThread>,
    stop: watch::Sender<bool>,
    limits: ServerLimits,
}

/// Starts serving on `addr` with `threads` threads (default: one per core), each with its own
/// event loop, listener (`SO_REUSEPORT`: the kernel spreads connections over them) and host.
/// A thread that cannot start stops them all.
pub fn start(
    addr: SocketAddr,
    threads: Option<usize>,
    shared: Arc<Shared>,
    limits: ServerLimits,
) -> std::io::Result<Running> {
    crate::core::entropy::mix_in(super::random_bits());
    let count = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let (stop, stopped) = watch::channel(false);
    let start = |addr| spawn(addr, (Arc::clone(&shared), limits, stopped.clone()));
    // The first thread binds first, so `--listen 127.0.0.1:0` gets one port for all of them.
    let (first, bound) = start(addr)?;
    let mut running = Running {
        addr: bound,
        threads: vec![first],
        stop,
        limits,
    };
    for _ in 1..count {
        running.threads.push(start(bound)?.0);
    }
    Ok(running)
}

impl Running {
    /// Stops accepting and gives running requests `shutdown_timeout` to finish; returns when
    /// every thread has stopped.
    pub fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.join()
    }

    /// Waits for every thread to stop.
    fn join(self) -> std::io::Result<()> {
        for thread in self.threads {
            thread
                .join()
                .map_err(|_| std::io::Error::other("a server thread panicked"))??;
        }
        Ok(())
    }
}

/// Serves on `addr` (see [`start`]) until SIGTERM or SIGINT, then shuts down gracefully (see
/// [`Running::shutdown`]); a second signal ends running requests at once.
pub fn run(
    addr: SocketAddr,
    threads: Option<usize>,
    shared: Arc<Shared>,
    limits: ServerLimits,
) -> std::io::Result<()> {
    let store = shared.limits_store().map(|url| {
        check_limits_store(url);
        format!(", client limits in {url}")
    });
    let running = start(addr, threads, shared, limits)?;
    eprintln!(
        "ai-worker-proxy listening on http://{} ({} routes, {} threads{})",
        running.addr,
        crate::routes::ROUTES.len(),
        running.threads.len(),
        store.unwrap_or_default()
    );
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    signals.block_on(async {
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
            // Every thread has stopped on its own (an error): nothing to shut down.
            () = running.stop.closed() => return Ok::<_, std::io::Error>(()),
        }
        eprintln!(
            "ai-worker-proxy: stopping; running requests have {} s to finish",
            running.limits.shutdown_timeout_ms.div_ceil(1000)
        );
        let _ = running.stop.send(true);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => std::process::exit(130),
            _ = terminate.recv() => std::process::exit(143),
            () = running.stop.closed() => Ok(()),
        }
    })?;
    running.join()
}

/// Warns when the limits store does not answer at start: the server serves all the same (it
/// may come up later), and a limited client gets a 503 until it does.
fn check_limits_store(url: &RedisUrl) {
    let limits = RedisLimits::new(std::sync::Arc::new(url.clone()));
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(limits.ping()).map_err(|e| e.why));
    if let Err(why) = answered {
        eprintln!(
            "ai-worker-proxy: warning: the limits store does not answer ({why}); limited clients get 503 until it does"
        );
    }
}

type ServerThread = std::thread::JoinHandle<std::io::Result<()>>;

/// Starts one server thread on `addr`; returns once it listens, with the address it got.
fn spawn(
    addr: SocketAddr,
    (shared, limits, stop): (Arc<Shared>, ServerLimits, watch::Receiver<bool>),
) -> std::io::Result<(ServerThread, SocketAddr)> {
    let (ready, listening) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let started = (|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let listener = runtime.block_on(async { listen(addr) })?;
            let host = NativeHost::new(Arc::clone(&shared)).map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>((runtime, listener, host))
        })();
        let (runtime, listener, host) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = ready.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                return Err(e);
            }
        };
        let _ = ready.send(listener.local_addr());
        let cx = Connections {
            host,
            limits,
            shared,
            stop,
        };
        tokio::task::LocalSet::new().block_on(&runtime, serve(listener, cx))
    });
    let bound = listening
        .recv()
        .map_err(|_| std::io::Error::other("a server thread stopped before listening"))??;
    Ok((handle, bound))
}

/// A listener that shares its port with the other threads' (`SO_REUSEPORT`).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn respond(
    host: &NativeHost,
    request: hyper::Request<Incoming>,
    body_timeout: Duration,
) -> hyper::Response<Body> {
    let incoming = incoming(request, body_timeout);
    outgoing(core::handle::<crate::routes::Table, _>(host, incoming).await)
}

/// The request's own header map, read by name.
struct Headers(hyper::HeaderMap);

impl RequestHeaders for Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name)?.to_str().ok().map(str::to_owned)
    }
}

/// The core's view of `request`. Its body is read only when the core awaits it (after the
/// token), within `body_timeout`, and not at all when its declared length is over the limit.
fn incoming(request: hyper::Request<Incoming>, body_timeout: Duration) -> IncomingRequest {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    let body = Box::pin(async move {
        if declared_too_large {
            return RequestBody::TooLarge;
        }
        let read = Limited::new(body, MAX_BODY_BYTES).collect();
        match tokio::time::timeout(body_timeout, read).await {
            Ok(Ok(collected)) => RequestBody::Complete(collected.to_bytes()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => RequestBody::TooLarge,
            // The client broke off mid-body; an empty body gets the usual 400.
            Ok(Err(_)) => RequestBody::Complete(Bytes::new()),
            Err(_) => RequestBody::TimedOut,
        }
    });
    IncomingRequest {
        method: Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_owned(),
        headers: Box::new(Headers(parts.headers)),
        body,
    }
}

fn outgoing(response: ProxyResponse) -> hyper::Response<Body> {
    let body = match response.body {
        ResponseBody::Full(bytes) => Body::Full(Some(bytes)),
        ResponseBody::Upstream(body) => Body::Stream(Gather::new(body.into_stream())),
    };
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Body::Full(None));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// A stream that gives `pieces`, each followed by one `Pending`, then ends.
    fn stuttering(pieces: &'static [&'static str]) -> BodyStream {
        let steps = pieces.iter().flat_map(|p| [Some(*p), None]);
        let mut steps = steps.collect::<Vec<_>>().into_iter();
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            match steps.next() {
                Some(Some(piece)) => Poll::Ready(Some(Ok(Bytes::from_static(piece.as_bytes())))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }))
    }

    #[test]
    fn the_first_piece_goes_at_once_and_later_ones_wait_turns_for_more() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut gather = Gather::new(stuttering(&["head", "a", "b"]));
        let ready = |poll: Poll<Option<Result<Bytes, StreamAbort>>>| match poll {
            Poll::Ready(Some(Ok(bytes))) => Some(bytes),
            _ => None,
        };
        assert_eq!(
            ready(gather.poll_next(&mut cx)).as_deref(),
            Some(&b"head"[..])
        );
        // "a" waits a turn, in which "b" arrives: one piece for both.
        let mut polls = 0;
        let both = loop {
            polls += 1;
            if let Some(bytes) = ready(gather.poll_next(&mut cx)) {
                break bytes;
            }
        };
        assert_eq!(&both[..], b"ab");
        assert!(polls > 1);
        assert!(matches!(gather.poll_next(&mut cx), Poll::Ready(None)));
    }
}
