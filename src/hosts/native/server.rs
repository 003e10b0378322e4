//! hyper ⇄ core: converts requests and responses and runs the accept loop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::core::error::MAX_BODY_BYTES;
use crate::core::http::{
    BodyStream, IncomingRequest, Method, ProxyResponse, RequestBody, ResponseBody, StreamAbort,
};
use crate::core::{self, host::Host};
use crate::hosts::native::NativeHost;

/// A response body hyper can write: whole, or forwarded chunk by chunk as the core yields it.
/// (http-body-util's boxed bodies require `Send`, which the core's streams are not.)
enum Body {
    Full(Option<Bytes>),
    Stream(BodyStream),
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
            Body::Stream(stream) => stream
                .as_mut()
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
/// futures are `!Send` by design (see [`Host`]).
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

/// Binds `addr` and serves until ctrl-c, on a single-threaded runtime.
pub fn run(addr: SocketAddr, host: NativeHost) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(addr).await?;
        host.log(&format!(
            "ai-worker-proxy listening on http://{} ({} routes)",
            listener.local_addr()?,
            crate::routes::ROUTES.len()
        ));
        serve(listener, host).await
    })
}

async fn respond(host: &NativeHost, request: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let incoming = incoming(request).await;
    outgoing(core::handle::<crate::routes::Table, _>(host, incoming).await)
}

async fn incoming(request: hyper::Request<Incoming>) -> IncomingRequest {
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
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
        headers,
        body,
    }
}

fn outgoing(response: ProxyResponse) -> hyper::Response<Body> {
    let body = match response.body {
        ResponseBody::Full(bytes) => Body::Full(Some(bytes)),
        ResponseBody::Stream(stream) => Body::Stream(stream),
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
