//! hyper ⇄ core: converts requests and responses and runs the accept loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};

use crate::core;
use crate::core::error::MAX_BODY_BYTES;
use crate::core::http::{
    BodyStream, IncomingRequest, Method, ProxyResponse, RequestBody, RequestHeaders, ResponseBody,
    StreamAbort,
};
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
/// anything but tasks that can run at once.
struct Gather {
    stream: BodyStream,
    pieces: Option<BytesMut>,
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
                Poll::Pending if self.turns < TURNS => {
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

/// Accepts connections until ctrl-c. Must run inside a `tokio::task::LocalSet`: the core's
/// futures are `!Send` by design (see [`Host`](crate::core::host::Host)).
pub async fn serve(listener: TcpListener, host: NativeHost) -> std::io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let host = host.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |request| {
                let host = host.clone();
                async move { Ok::<_, Infallible>(respond(&host, request).await) }
            });
            // A client that goes away mid-response is not the server's error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Serves on `addr` until ctrl-c with `threads` threads (default: one per core), each with its
/// own event loop, listener (`SO_REUSEPORT`: the kernel spreads connections over them) and
/// host. Returns once every thread has stopped; a thread that cannot start stops them all.
pub fn run(addr: SocketAddr, threads: Option<usize>, shared: Arc<Shared>) -> std::io::Result<()> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    // The first thread binds first, so `--listen 127.0.0.1:0` gets one port for all of them.
    let (first, bound) = spawn(addr, Arc::clone(&shared))?;
    let mut handles = vec![first];
    for _ in 1..threads {
        handles.push(spawn(bound, Arc::clone(&shared))?.0);
    }
    eprintln!(
        "ai-worker-proxy listening on http://{bound} ({} routes, {threads} threads)",
        crate::routes::ROUTES.len()
    );
    for handle in handles {
        handle
            .join()
            .map_err(|_| std::io::Error::other("a server thread panicked"))??;
    }
    Ok(())
}

type ServerThread = std::thread::JoinHandle<std::io::Result<()>>;

/// Starts one server thread on `addr`; returns once it listens, with the address it got.
fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<(ServerThread, SocketAddr)> {
    let (ready, listening) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let started = (|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let listener = runtime.block_on(async { listen(addr) })?;
            let host = NativeHost::new(shared).map_err(std::io::Error::other)?;
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
        tokio::task::LocalSet::new().block_on(&runtime, serve(listener, host))
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

async fn respond(host: &NativeHost, request: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let incoming = incoming(request).await;
    outgoing(core::handle::<crate::routes::Table, _>(host, incoming).await)
}

/// The request's own header map, read by name.
struct Headers(hyper::HeaderMap);

impl RequestHeaders for Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name)?.to_str().ok().map(str::to_owned)
    }
}

async fn incoming(request: hyper::Request<Incoming>) -> IncomingRequest {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES);
    let body = if declared_too_large {
        RequestBody::TooLarge
    } else {
        match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => RequestBody::Complete(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => RequestBody::TooLarge,
            // The client broke off mid-body; an empty body gets the usual 400.
            Err(_) => RequestBody::Complete(Bytes::new()),
        }
    };
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
