//! The native server against hostile clients, over real sockets: slow headers, slow bodies,
//! idle connections, too many connections, oversized headers, a body sent without a token,
//! and a graceful shutdown. Each server runs in-process with its own short limits.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ai_worker_proxy::core::route::{Routes, ServerLimits};
use ai_worker_proxy::hosts::native::server::{self, Running};
use ai_worker_proxy::hosts::native::Shared;
use ai_worker_proxy::routes::Table;

const TOKEN: &str = "test-proxy-token";

/// Longest any check waits for the server: far above every limit set here, so a slow machine
/// cannot fail a test, while a server that ignores a limit still does.
const PATIENCE: Duration = Duration::from_secs(10);

fn serve(limits: ServerLimits) -> Running {
    let secrets = HashMap::from([(Table::AUTH_TOKEN_SECRET.to_owned(), TOKEN.to_owned())]);
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    server::start(addr, Some(2), Shared::new(secrets), limits).unwrap()
}

fn connect(server: &Running) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads until the server closes the connection, or [`PATIENCE`] passes (a panic).
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response whose body has a `content-length`.
fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if out.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed mid-response: {text:?}");
        out.extend_from_slice(&buf[..n]);
    }
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: proxy\r\n\r\n";

fn chat_head(token: &str, length: usize) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

#[test]
fn a_slowloris_client_is_cut_off_at_header_read_timeout() {
    let server = serve(ServerLimits {
        header_read_timeout_ms: 300,
        ..ServerLimits::DEFAULT
    });
    let mut stream = connect(&server);
    stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    // One header byte every 50 ms: each byte arrives well inside any per-read timeout.
    let closed = loop {
        if stream.write_all(b"x").is_err() {
            break true;
        }
        if started.elapsed() > PATIENCE {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
        stream.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 64];
        let gone = matches!(stream.read(&mut probe), Ok(0))
            || matches!(stream.read(&mut probe), Err(e) if e.kind() == ErrorKind::ConnectionReset);
        stream.set_nonblocking(false).unwrap();
        if gone {
            break true;
        }
    };
    assert!(closed, "still open after {PATIENCE:?} of dripped headers");
    // A connection that says nothing at all is closed too.
    let mut silent = connect(&server);
    assert_eq!(read_to_close(&mut silent), "");
    server.shutdown().unwrap();
}

#[test]
fn keep_alive_and_header_timeouts_are_separate() {
    // A pooled connection may wait longer than a head may take to arrive.
    let server = serve(ServerLimits {
        header_read_timeout_ms: 200,
        keep_alive_timeout_ms: 5_000,
        ..ServerLimits::DEFAULT
    });
    let mut stream = connect(&server);
    stream.write_all(HEALTH).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(800));
    stream.write_all(HEALTH).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    server.shutdown().unwrap();

    // And an idle one is closed at keep_alive_timeout.
    let server = serve(ServerLimits {
        keep_alive_timeout_ms: 200,
        ..ServerLimits::DEFAULT
    });
    let mut stream = connect(&server);
    stream.write_all(HEALTH).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
    assert_eq!(read_to_close(&mut stream), "");
    server.shutdown().unwrap();
}

#[test]
fn a_slow_16_mib_body_gets_408_at_body_read_timeout() {
    let server = serve(ServerLimits {
        body_read_timeout_ms: 500,
        ..ServerLimits::DEFAULT
    });
    let mut stream = connect(&server);
    let length = 16 * 1024 * 1024;
    stream
        .write_all(chat_head(TOKEN, length).as_bytes())
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        let chunk = [b' '; 1024];
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if writer.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let answer = read_to_close(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    drop(stream);
    drip.join().unwrap();
    server.shutdown().unwrap();
}

#[test]
fn the_token_is_checked_before_a_byte_of_the_body_is_read() {
    let server = serve(ServerLimits::DEFAULT);
    let mut stream = connect(&server);
    // A 16 MiB body is announced and never sent: only a server that answers from the headers
    // can reply.
    stream
        .write_all(chat_head("wrong", 16 * 1024 * 1024).as_bytes())
        .unwrap();
    let answer = read_response(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
    assert!(answer.contains(r#""code":"invalid_api_key""#), "{answer}");

    // `Expect: 100-continue` without a valid token: refused, never invited to send.
    let mut stream = connect(&server);
    let head = chat_head("wrong", 1024).replace("\r\n\r\n", "\r\nexpect: 100-continue\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_response(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");

    // An announced body over the limit is refused by its length once the token is good.
    let mut stream = connect(&server);
    stream
        .write_all(chat_head(TOKEN, 16 * 1024 * 1024 + 1).as_bytes())
        .unwrap();
    let answer = read_response(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    server.shutdown().unwrap();
}

#[test]
fn headers_over_max_header_bytes_get_431() {
    let server = serve(ServerLimits {
        max_header_bytes: 8192,
        ..ServerLimits::DEFAULT
    });
    let mut stream = connect(&server);
    let big = format!(
        "GET /health HTTP/1.1\r\nhost: proxy\r\nx-big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    stream.write_all(big.as_bytes()).unwrap();
    let answer = read_to_close(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    server.shutdown().unwrap();
}

#[test]
fn the_connection_cap_holds_across_threads() {
    let server = serve(ServerLimits {
        max_connections: 4,
        ..ServerLimits::DEFAULT
    });
    // Four connections, each answered once, so each is known to be counted.
    let mut open: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect(&server);
            stream.write_all(HEALTH).unwrap();
            assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
            stream
        })
        .collect();
    for _ in 0..3 {
        let mut extra = connect(&server);
        let _ = extra.write_all(HEALTH);
        let answer = read_to_close(&mut extra);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503 "),
            "a fifth connection was served: {answer}"
        );
    }
    // The open ones still work.
    open[0].write_all(HEALTH).unwrap();
    assert!(read_response(&mut open[0]).starts_with("HTTP/1.1 200"));
    // Closing one frees its slot (once the server has seen it close).
    drop(open.pop());
    let started = Instant::now();
    loop {
        let mut stream = connect(&server);
        let _ = stream.write_all(HEALTH);
        let answer = read_to_close_or_response(&mut stream);
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "the slot never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.shutdown().unwrap();
}

/// A response if one comes, else whatever arrived before the close.
fn read_to_close_or_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&out).contains("\r\n\r\n{") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn shutdown_finishes_running_requests_closes_idle_ones_and_refuses_new_ones() {
    let server = serve(ServerLimits {
        shutdown_timeout_ms: 5_000,
        ..ServerLimits::DEFAULT
    });
    let addr = server.addr;
    let mut idle = connect(&server);
    idle.write_all(HEALTH).unwrap();
    assert!(read_response(&mut idle).starts_with("HTTP/1.1 200"));
    // A request in flight: its body is half sent when the shutdown begins.
    let body = br#"{"model":"no-such-route","messages":[{"role":"user","content":"hi"}]}"#;
    let mut busy = connect(&server);
    busy.write_all(chat_head(TOKEN, body.len()).as_bytes())
        .unwrap();
    busy.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stopping = std::thread::spawn(move || server.shutdown());
    // The idle connection is closed at once.
    assert_eq!(read_to_close(&mut idle), "");
    // New connections are refused.
    let started = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(started.elapsed() < PATIENCE, "still accepting");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The request in flight gets its whole answer, then the connection closes.
    busy.write_all(&body[10..]).unwrap();
    let answer = read_to_close(&mut busy);
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    assert!(answer.contains("model_not_found"), "{answer}");
    stopping.join().unwrap().unwrap();
}

#[test]
fn shutdown_ends_what_is_still_running_at_shutdown_timeout() {
    let server = serve(ServerLimits {
        shutdown_timeout_ms: 200,
        ..ServerLimits::DEFAULT
    });
    let mut busy = connect(&server);
    busy.write_all(chat_head(TOKEN, 100).as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    server.shutdown().unwrap();
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(read_to_close(&mut busy), "");
}
