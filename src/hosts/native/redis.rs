//! Client limits shared by several native instances through Redis (`[server] limits_store`).
//!
//! A small Redis client of our own, for exactly what the limits need: RESP2 over TCP (or TLS
//! for `rediss://`), `AUTH` and `SELECT` when a connection opens, then `EVALSHA` of two Lua
//! scripts (`EVAL` when the server does not know them yet). Each server thread keeps its own
//! few connections ([`RedisLimits`] is `!Send`, like [`NativeHost`](super::NativeHost)).
//!
//! The scripts ([`limits_reserve.lua`](limits_reserve.lua), [`limits_settle.lua`](limits_settle.lua))
//! are [`Counters::reserve`](crate::core::limits::Counters::reserve) and
//! [`Counters::settle`](crate::core::limits::Counters::settle), step for step, on three keys per
//! client (`{NAME}` keeps them in one Redis Cluster slot):
//!
//! | key | type | holds | expires |
//! |---|---|---|---|
//! | `aiwp:limits:{NAME}:minute` | hash | `minute`, `requests`, `tokens` | a minute after its minute ends |
//! | `aiwp:limits:{NAME}:inflight` | sorted set | a member per request in flight, scored by its deadline | at the latest deadline |
//! | `aiwp:limits:{NAME}:budget` | hash | `period`, `spent` (pico-USD); only for a client with a budget | a day after its period ends |
//!
//! (A third script, [`limits_counters.lua`](limits_counters.lua), reads them for the status page.)
//!
//! The proxy computes every number (the calendar minute and budget period of the request's own
//! time, TTLs, the limits) and passes it as `ARGV`, so the scripts hold no calendar and no
//! configuration; the script answers with the counts, and the [`Grant`] or [`Refusal`] is made
//! here as `Counters` makes it. Expiry uses Redis's clock only as a relative time to live.
//!
//! A failure (connect 1 s, command 1 s) is [`LimitsUnavailable::unreachable`]`("redis at HOST:PORT: why")`:
//! the URL's credentials are never in a message, a log line, `Display` or `Debug`.

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::io::ErrorKind;
use std::net::Ipv6Addr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::rustls;

use crate::core::host::LimitsUnavailable;
use crate::core::limits::{calendar, Ask, Counters, Grant, Limit, Refusal, Standing, Used};
use crate::core::route::{Client, LimitsStore};

/// Longest wait for a connection to open (TCP, TLS, `AUTH`, `SELECT`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for a command's answer (and for a free connection).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Connections one server thread may have open at once, and keeps for reuse.
const MAX_CONNECTIONS: usize = 32;
/// The largest reply accepted: the scripts answer a few short strings.
const MAX_REPLY_BYTES: usize = 1 << 20;
const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 86_400_000;

/// A Redis server's address and credentials, from a `redis://` or `rediss://` URL:
/// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`. `Display` and `Debug` never show the
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    tls: bool,
    /// A name or an address (an IPv6 one without its brackets).
    host: String,
    port: u16,
    db: u32,
    username: Option<String>,
    password: Option<String>,
}

impl RedisUrl {
    /// Reads `text`; the error says what is wrong without repeating it (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("redis://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("rediss://") {
            (true, rest)
        } else {
            return Err("it must start with `redis://` or `rediss://`".to_owned());
        };
        // The last `@` ends the credentials: a password may hold one unescaped.
        let (userinfo, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if rest.contains(|c: char| c == '?' || c == '#' || c.is_whitespace()) {
            return Err("it may have no spaces, query or fragment".to_owned());
        }
        let (authority, db) = match rest.split_once('/') {
            Some((authority, db)) => (authority, Some(db)),
            None => (rest, None),
        };
        let db = match db {
            None | Some("") => 0,
            Some(db) => db
                .parse::<u32>()
                .ok()
                .filter(|_| db.bytes().all(|b| b.is_ascii_digit()))
                .ok_or("its only path may be a database number, e.g. `/0`")?,
        };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (address, after) = inner
                .split_once(']')
                .ok_or("its IPv6 host has no closing `]`")?;
            address
                .parse::<Ipv6Addr>()
                .map_err(|_| "its IPv6 host is not an address")?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or("only `:PORT` may follow its IPv6 host")?,
                ),
            };
            (address, port)
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("it has no host".to_owned());
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err("its host may only have letters, digits, `-`, `_` and `.`".to_owned());
        }
        let port = match port {
            None => 6379,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0 && port.bytes().all(|b| b.is_ascii_digit()))
                .ok_or("its port must be a number from 1 to 65535")?,
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let decode = |part: &str| -> Result<Option<String>, String> {
                    let decoded = percent_decode(part)
                        .ok_or("its credentials have a `%` not followed by two hex digits, or are not UTF-8")?;
                    Ok(Some(decoded).filter(|d| !d.is_empty()))
                };
                (decode(user)?, password.map(decode).transpose()?.flatten())
            }
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
            db,
            username,
            password,
        })
    }

    /// `HOST:PORT` (`[::1]:6379`), for messages: never the credentials.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `text` with the password masked, for whatever came back from the server or the system.
    fn redact(&self, text: String) -> String {
        match &self.password {
            Some(password) if text.contains(password.as_str()) => text.replace(password, "***"),
            _ => text,
        }
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let credentials = if self.username.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        write!(f, "{scheme}://{credentials}{}/{}", self.addr(), self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

/// The Redis URL `[server] limits_store` names: itself, or the value of the secret it names
/// (`secret` looks one up by name). `None`: limits are kept in process. The error never
/// repeats a secret's value.
pub fn store_url(
    store: Option<LimitsStore>,
    secret: impl Fn(&str) -> Option<String>,
) -> Result<Option<RedisUrl>, String> {
    match store {
        None => Ok(None),
        Some(LimitsStore::RedisUrl(url)) => RedisUrl::parse(url)
            .map(Some)
            .map_err(|why| format!("`limits_store` is not a usable Redis URL: {why}")),
        Some(LimitsStore::RedisSecret(name)) => {
            let value = secret(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    format!("`limits_store` names the secret `{name}`, which is not set (environment or .dev.vars)")
                })?;
            RedisUrl::parse(value.trim()).map(Some).map_err(|why| {
                format!("the secret `{name}` (`limits_store`) is not a usable Redis URL: {why}")
            })
        }
    }
}

/// `%XY` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RESP2: the commands we send and the replies we read.
mod resp {
    /// One reply.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Reply {
        /// `+OK`
        Simple(String),
        /// `-ERR ...`
        Error(String),
        /// `:42`
        Integer(i64),
        /// `$3\r\nabc` (`None`: `$-1`)
        Bulk(Option<Vec<u8>>),
        /// `*2\r\n...` (`None`: `*-1`)
        Array(Option<Vec<Reply>>),
    }

    /// Deepest nesting of arrays accepted (the scripts answer a flat array).
    const MAX_DEPTH: usize = 8;
    /// Most elements in one array.
    const MAX_ELEMENTS: i64 = 1024;

    /// A command as an array of bulk strings.
    pub fn command(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// The first whole reply in `buf` and the bytes it took; `None` while it is incomplete.
    pub fn parse(buf: &[u8], max_bytes: usize) -> Result<Option<(Reply, usize)>, String> {
        parse_at(buf, 0, 0, max_bytes)
    }

    fn parse_at(
        buf: &[u8],
        at: usize,
        depth: usize,
        max_bytes: usize,
    ) -> Result<Option<(Reply, usize)>, String> {
        let Some(end) = buf
            .get(at..)
            .and_then(|rest| rest.windows(2).position(|w| w == b"\r\n"))
            .map(|n| at + n)
        else {
            if buf.len().saturating_sub(at) > max_bytes {
                return Err("a reply line is too long".to_owned());
            }
            return Ok(None);
        };
        let Some((&kind, line)) = buf[at..end].split_first() else {
            return Err("an empty reply line".to_owned());
        };
        let next = end + 2;
        let text = || String::from_utf8_lossy(line).into_owned();
        let reply = match kind {
            b'+' => Reply::Simple(text()),
            b'-' => Reply::Error(text()),
            b':' => Reply::Integer(integer(line)?),
            b'$' => {
                let len = integer(line)?;
                if len == -1 {
                    return Ok(Some((Reply::Bulk(None), next)));
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= max_bytes)
                    .ok_or_else(|| format!("a bulk reply of {len} bytes"))?;
                let Some(tail) = buf.get(next + len..next + len + 2) else {
                    return Ok(None);
                };
                if tail != b"\r\n" {
                    return Err("a bulk reply longer than it said".to_owned());
                }
                return Ok(Some((
                    Reply::Bulk(Some(buf[next..next + len].to_vec())),
                    next + len + 2,
                )));
            }
            b'*' => {
                let len = integer(line)?;
                if len == -1 {
                    return Ok(Some((Reply::Array(None), next)));
                }
                if !(0..=MAX_ELEMENTS).contains(&len) || depth >= MAX_DEPTH {
                    return Err(format!("an array reply of {len} elements"));
                }
                let mut items = Vec::with_capacity(len as usize);
                let mut at = next;
                for _ in 0..len {
                    let Some((item, after)) = parse_at(buf, at, depth + 1, max_bytes)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    at = after;
                }
                return Ok(Some((Reply::Array(Some(items)), at)));
            }
            other => return Err(format!("a reply starting with byte {other:#04x}")),
        };
        Ok(Some((reply, next)))
    }

    fn integer(line: &[u8]) -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "a malformed number in a reply".to_owned())
    }
}

use resp::Reply;

/// A Lua script and its SHA-1, for `EVALSHA`.
struct Script {
    source: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    const fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: OnceLock::new(),
        }
    }

    fn sha(&self) -> &str {
        self.sha.get_or_init(|| sha1_hex(self.source.as_bytes()))
    }
}

static RESERVE: Script = Script::new(concat!(
    include_str!("limits_u64.lua"),
    include_str!("limits_reserve.lua")
));
static SETTLE: Script = Script::new(concat!(
    include_str!("limits_u64.lua"),
    include_str!("limits_settle.lua")
));
static COUNTERS: Script = Script::new(include_str!("limits_counters.lua"));

/// SHA-1 in hex, as Redis names a script (FIPS 180-4; only for that name, not for security).
fn sha1_hex(data: &[u8]) -> String {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64).wrapping_mul(8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (h, x) in h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(x);
        }
    }
    h.iter().map(|x| format!("{x:08x}")).collect()
}

/// A connection's byte stream: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// One open connection, authenticated and on its database.
struct Connection {
    io: Box<dyn Io>,
    /// Bytes read and not yet parsed.
    read: Vec<u8>,
}

impl Connection {
    async fn open(
        url: &RedisUrl,
        tls: Option<&tokio_rustls::TlsConnector>,
    ) -> Result<Self, String> {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|_| "its host is not a name TLS can check".to_owned())?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS: {e}"))?,
                )
            }
            None => Box::new(tcp),
        };
        let mut connection = Self {
            io,
            read: Vec::with_capacity(256),
        };
        if let Some(password) = &url.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            auth.extend(url.username.as_deref().map(str::as_bytes));
            auth.push(password.as_bytes());
            if let Reply::Error(e) = connection.call(&auth).await.map_err(|f| f.why)? {
                return Err(format!("AUTH refused: {e}"));
            }
        }
        if url.db != 0 {
            let db = url.db.to_string();
            let select = connection.call(&[b"SELECT", db.as_bytes()]).await;
            if let Reply::Error(e) = select.map_err(|f| f.why)? {
                return Err(format!("SELECT {db} refused: {e}"));
            }
        }
        Ok(connection)
    }

    /// Sends one command and reads its reply (an error reply included).
    async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, Failure> {
        // (A flush: TLS may hold what was written.)
        let request = resp::command(args);
        if let Err(e) = async {
            self.io.write_all(&request).await?;
            self.io.flush().await
        }
        .await
        {
            return Err(Failure::closed(format!("cannot send: {e}")));
        }
        loop {
            if let Some((reply, used)) = resp::parse(&self.read, MAX_REPLY_BYTES)? {
                self.read.drain(..used);
                return Ok(reply);
            }
            // Nothing of the reply yet when the connection turns out closed: the server was gone
            // before the command reached it.
            let nothing_yet = self.read.is_empty();
            match self.io.read_buf(&mut self.read).await {
                Ok(0) if nothing_yet => {
                    return Err(Failure::closed("the server closed the connection".into()))
                }
                Ok(0) => {
                    return Err("the server closed the connection mid-reply"
                        .to_owned()
                        .into())
                }
                Ok(_) => {}
                Err(e)
                    if nothing_yet
                        && matches!(
                            e.kind(),
                            ErrorKind::ConnectionReset
                                | ErrorKind::ConnectionAborted
                                | ErrorKind::BrokenPipe
                        ) =>
                {
                    return Err(Failure::closed(format!("cannot read: {e}")))
                }
                Err(e) => return Err(format!("cannot read: {e}").into()),
            }
        }
    }

    /// Runs `script` by its SHA-1, or by its source when the server does not know it yet.
    async fn eval(
        &mut self,
        script: &Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<Reply, Failure> {
        let count = keys.len().to_string();
        let mut command: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + args.len());
        command.extend([
            b"EVALSHA".as_slice(),
            script.sha().as_bytes(),
            count.as_bytes(),
        ]);
        command.extend(keys.iter().map(|k| k.as_bytes()));
        command.extend(args.iter().map(|a| a.as_bytes()));
        match self.call(&command).await? {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                command[0] = b"EVAL";
                command[1] = script.source.as_bytes();
                // The connection was open a moment ago: not a closed one to try again.
                self.call(&command).await.map_err(|f| f.why.into())
            }
            reply => Ok(reply),
        }
    }
}

/// Why a command got no reply.
#[derive(Debug)]
struct Failure {
    why: String,
    /// The connection was closed before the command reached the server: trying it on a new
    /// connection cannot count it twice.
    closed: bool,
}

impl Failure {
    fn closed(why: String) -> Self {
        Self { why, closed: true }
    }
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Self { why, closed: false }
    }
}

/// TLS as the HTTP client has it (rustls with ring, Mozilla's roots), plus `extra_root`.
fn tls_connector(
    extra_root: Option<rustls::pki_types::CertificateDer<'static>>,
) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(root) = extra_root {
        roots.add(root).map_err(|e| format!("TLS: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One thread's connections to one server.
struct Pool {
    url: Arc<RedisUrl>,
    idle: RefCell<Vec<Connection>>,
    /// One per connection in use or opening.
    permits: Semaphore,
    tls: OnceCell<tokio_rustls::TlsConnector>,
}

impl Pool {
    /// The TLS connector for a `rediss://` URL (made once), `None` for `redis://`.
    fn tls(&self) -> Result<Option<&tokio_rustls::TlsConnector>, String> {
        if !self.url.tls {
            return Ok(None);
        }
        if let Some(connector) = self.tls.get() {
            return Ok(Some(connector));
        }
        let connector = tls_connector(None)?;
        Ok(Some(self.tls.get_or_init(|| connector)))
    }

    async fn open(&self) -> Result<Connection, String> {
        let tls = self.tls()?;
        timeout(CONNECT_TIMEOUT, Connection::open(&self.url, tls))
            .await
            .map_err(|_| "no connection within 1 s".to_owned())?
    }

    /// Runs `script` on a connection of this pool (opening one if none is idle).
    async fn eval(&self, script: &Script, keys: &[&str], args: &[&str]) -> Result<Reply, String> {
        let _permit = timeout(COMMAND_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| {
                format!("all {MAX_CONNECTIONS} connections of this thread stayed busy for 1 s")
            })?
            .map_err(|_| "the connection pool is closed".to_owned())?;
        let idle = self.idle.borrow_mut().pop();
        let reused = idle.is_some();
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.open().await?,
        };
        let mut answer = timeout(COMMAND_TIMEOUT, connection.eval(script, keys, args)).await;
        if reused && matches!(&answer, Ok(Err(failure)) if failure.closed) {
            // The server closed this connection while it was idle (a restart, its `timeout`),
            // before the command reached it: once more, on a new one.
            connection = self.open().await?;
            answer = timeout(COMMAND_TIMEOUT, connection.eval(script, keys, args)).await;
        }
        let reply = answer
            .map_err(|_| "no answer within 1 s".to_owned())?
            .map_err(|failure| failure.why)?;
        // A connection that failed is dropped (its reply may still come); this one is in step.
        self.idle.borrow_mut().push(connection);
        match reply {
            Reply::Error(e) => Err(format!("the server answered: {e}")),
            reply => Ok(reply),
        }
    }
}

/// Client limits in Redis, as one server thread reaches them.
#[derive(Clone)]
pub struct RedisLimits {
    pool: Rc<Pool>,
    /// Makes each request's in-flight member unique across threads and processes.
    nonce: u64,
    sequence: Rc<Cell<u64>>,
}

impl RedisLimits {
    /// Limits kept at `url`; nothing connects until the first call.
    pub fn new(url: Arc<RedisUrl>) -> Self {
        Self {
            pool: Rc::new(Pool {
                url,
                idle: RefCell::new(Vec::new()),
                permits: Semaphore::new(MAX_CONNECTIONS),
                tls: OnceCell::new(),
            }),
            nonce: super::random_bits(),
            sequence: Rc::new(Cell::new(0)),
        }
    }

    /// As [`RedisLimits::new`], trusting also the CA certificate `root` (DER) for `rediss://`:
    /// for tests with a CA of their own.
    #[doc(hidden)]
    pub fn with_extra_root(url: Arc<RedisUrl>, root: Vec<u8>) -> Result<Self, String> {
        let limits = Self::new(url);
        let connector = tls_connector(Some(root.into()))?;
        let _ = limits.pool.tls.set(connector);
        Ok(limits)
    }

    /// Reserves `ask` against `client`'s limits, as [`Counters::reserve`] does.
    ///
    /// [`Counters::reserve`]: crate::core::limits::Counters::reserve
    pub async fn reserve(
        &self,
        client: &Client,
        ask: &Ask,
    ) -> Result<Result<Grant, Refusal>, LimitsUnavailable> {
        let now = ask.now_ms;
        let minute = calendar::minute(now);
        let minute_reset_ms = calendar::minute_end_ms(minute).saturating_sub(now);
        let period = client.budget.map_or(0, |b| calendar::period(b.per, now));
        let period_end_ms = client
            .budget
            .map_or(0, |b| calendar::period_end_ms(b.per, period));
        self.sequence.set(self.sequence.get().wrapping_add(1));
        let member = format!("{:016x}-{:x}", self.nonce, self.sequence.get());
        let limit = |limit: Option<u64>| limit.map_or_else(String::new, |n| n.to_string());
        let args = [
            now.to_string(),
            minute.to_string(),
            (minute_reset_ms + MINUTE_MS).to_string(),
            period.to_string(),
            (period_end_ms.saturating_sub(now) + DAY_MS).to_string(),
            ask.tokens.to_string(),
            ask.cost.to_string(),
            ask.deadline_ms.to_string(),
            member,
            (ask.deadline_ms.saturating_sub(now) + 1_000).to_string(),
            limit(client.max_concurrent.map(u64::from)),
            limit(client.requests_per_minute.map(u64::from)),
            limit(client.tokens_per_minute),
            limit(client.budget.map(|b| b.pico_usd)),
        ];
        let reply = self.eval(&RESERVE, client, &args).await?;
        let Some((verdict, [requests, tokens, spent])) = counts(&reply) else {
            return Err(self.unavailable(format!("the reserve script answered {reply:?}")));
        };
        let standing = Standing {
            requests: client
                .requests_per_minute
                .map(|max| (u64::from(max), u64::from(max).saturating_sub(requests))),
            tokens: client
                .tokens_per_minute
                .map(|max| (max, max.saturating_sub(tokens))),
            minute_reset_ms,
            budget: client.budget.map(|b| (b.pico_usd, spent)),
        };
        let refused = |limit, retry_after_ms| {
            Ok(Err(Refusal {
                limit,
                retry_after_ms,
                standing,
            }))
        };
        match verdict.as_str() {
            "ok" => Ok(Ok(Grant {
                minute,
                period,
                reserved: Used {
                    tokens: ask.tokens,
                    cost: ask.cost,
                },
                deadline_ms: ask.deadline_ms,
                standing,
            })),
            "concurrency" => refused(Limit::Concurrency, 1_000),
            "requests" => refused(Limit::Requests, minute_reset_ms),
            "tokens" => refused(Limit::Tokens, minute_reset_ms),
            "budget" => refused(Limit::Budget, period_end_ms.saturating_sub(now)),
            other => Err(self.unavailable(format!("the reserve script answered `{other}`"))),
        }
    }

    /// Settles a grant [`RedisLimits::reserve`] gave, as [`Counters::settle`] does.
    ///
    /// [`Counters::settle`]: crate::core::limits::Counters::settle
    pub async fn settle(
        &self,
        client: &Client,
        grant: &Grant,
        used: &Used,
    ) -> Result<(), LimitsUnavailable> {
        let args = [
            grant.minute.to_string(),
            grant.period.to_string(),
            grant.deadline_ms.to_string(),
            grant.reserved.tokens.to_string(),
            used.tokens.to_string(),
            grant.reserved.cost.to_string(),
            used.cost.to_string(),
            if client.budget.is_some() { "1" } else { "0" }.to_owned(),
        ];
        self.eval(&SETTLE, client, &args).await.map(drop)
    }

    /// `client`'s counts as Redis holds them now (for the status page): [`Counters`] as the
    /// in-memory store would hold them (without `spent` for a client without a budget).
    pub async fn counters(&self, client: &Client) -> Result<Counters, LimitsUnavailable> {
        let reply = self.eval(&COUNTERS, client, &[]).await?;
        let numbers = match &reply {
            Reply::Array(Some(items)) if items.len() >= 5 => items
                .iter()
                .map(|item| match item {
                    Reply::Bulk(Some(bytes)) => {
                        std::str::from_utf8(bytes).ok()?.parse::<u64>().ok()
                    }
                    _ => None,
                })
                .collect::<Option<Vec<u64>>>(),
            _ => None,
        };
        let Some([minute, requests, tokens, period, spent, in_flight @ ..]) = numbers.as_deref()
        else {
            return Err(self.unavailable(format!("the counters script answered {reply:?}")));
        };
        Ok(Counters {
            minute: *minute,
            requests: *requests,
            tokens: *tokens,
            in_flight: in_flight.to_vec(),
            period: *period,
            spent: *spent,
        })
    }

    /// Whether the server answers (a `PING` on a connection of this pool).
    pub async fn ping(&self) -> Result<(), LimitsUnavailable> {
        let ping = async {
            let mut connection = self.pool.open().await?;
            match timeout(COMMAND_TIMEOUT, connection.call(&[b"PING"])).await {
                Ok(Ok(Reply::Simple(_) | Reply::Bulk(_))) => Ok(()),
                Ok(Ok(other)) => Err(format!("PING answered {other:?}")),
                Ok(Err(failure)) => Err(failure.why),
                Err(_) => Err("no answer within 1 s".to_owned()),
            }
        };
        ping.await.map_err(|why| self.unavailable(why))
    }

    /// Where the limits are kept (credentials never shown).
    pub fn url(&self) -> &RedisUrl {
        &self.pool.url
    }

    async fn eval(
        &self,
        script: &Script,
        client: &Client,
        args: &[String],
    ) -> Result<Reply, LimitsUnavailable> {
        let keys = ["minute", "inflight", "budget"]
            .map(|k| format!("aiwp:limits:{{{}}}:{k}", client.name));
        let keys = keys.each_ref().map(String::as_str);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.pool
            .eval(script, &keys, &args)
            .await
            .map_err(|why| self.unavailable(why))
    }

    fn unavailable(&self, why: String) -> LimitsUnavailable {
        let url = &self.pool.url;
        LimitsUnavailable::unreachable(format!("redis at {}: {}", url.addr(), url.redact(why)))
    }
}

impl fmt::Debug for RedisLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisLimits({})", self.pool.url)
    }
}

/// The scripts' answer: a verdict and three counts.
fn counts(reply: &Reply) -> Option<(String, [u64; 3])> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    let text = |item: &Reply| match item {
        Reply::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok().map(str::to_owned),
        _ => None,
    };
    let [verdict, a, b, c] = items.as_slice() else {
        return None;
    };
    let number = |item| text(item)?.parse::<u64>().ok();
    Some((text(verdict)?, [number(a)?, number(b)?, number(c)?]))
}

#[cfg(test)]
mod tests {
    use super::resp::{command, parse, Reply};
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let (reply, used) = parse(bytes, MAX_REPLY_BYTES).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "{bytes:?}");
        reply
    }

    #[test]
    fn replies_of_every_kind_parse_from_their_bytes() {
        assert_eq!(whole(b"+OK\r\n"), Reply::Simple("OK".into()));
        assert_eq!(
            whole(b"-NOSCRIPT No matching script. Please use EVAL.\r\n"),
            Reply::Error("NOSCRIPT No matching script. Please use EVAL.".into())
        );
        assert_eq!(whole(b":-42\r\n"), Reply::Integer(-42));
        assert_eq!(
            whole(b"$5\r\nhe\r\no\r\n"),
            Reply::Bulk(Some(b"he\r\no".to_vec()))
        );
        assert_eq!(whole(b"$0\r\n\r\n"), Reply::Bulk(Some(Vec::new())));
        assert_eq!(whole(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(whole(b"*-1\r\n"), Reply::Array(None));
        assert_eq!(whole(b"*0\r\n"), Reply::Array(Some(Vec::new())));
        assert_eq!(
            whole(b"*4\r\n$2\r\nok\r\n$1\r\n3\r\n$19\r\n1000000000000000000\r\n$1\r\n0\r\n"),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"ok".to_vec())),
                Reply::Bulk(Some(b"3".to_vec())),
                Reply::Bulk(Some(b"1000000000000000000".to_vec())),
                Reply::Bulk(Some(b"0".to_vec())),
            ]))
        );
        assert_eq!(
            whole(b"*3\r\n:1\r\n*1\r\n+x\r\n-ERR e\r\n"),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Array(Some(vec![Reply::Simple("x".into())])),
                Reply::Error("ERR e".into()),
            ]))
        );
    }

    #[test]
    fn a_reply_cut_anywhere_waits_for_the_rest_and_the_next_one_stays() {
        let two = b"*2\r\n$2\r\nok\r\n:7\r\n+NEXT\r\n";
        for cut in 0..two.len() - 7 {
            assert_eq!(
                parse(&two[..cut], MAX_REPLY_BYTES),
                Ok(None),
                "cut at {cut}"
            );
        }
        let (first, used) = parse(two, MAX_REPLY_BYTES).unwrap().unwrap();
        assert_eq!(
            first,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"ok".to_vec())),
                Reply::Integer(7)
            ]))
        );
        assert_eq!(whole(&two[used..]), Reply::Simple("NEXT".into()));
    }

    #[test]
    fn malformed_or_oversized_replies_are_errors() {
        for bad in [
            &b"?what\r\n"[..],
            b"\r\n",
            b":12a\r\n",
            b"$3\r\nabcd\r\n",
            b"$-2\r\n",
            b"*-2\r\n",
            b"*1025\r\n",
            b"$2000000\r\n",
        ] {
            assert!(parse(bad, MAX_REPLY_BYTES).is_err(), "{bad:?}");
        }
        let deep = "*1\r\n".repeat(9) + ":1\r\n";
        assert!(parse(deep.as_bytes(), MAX_REPLY_BYTES).is_err());
        assert!(
            parse(&[b'+'; 100], 64).is_err(),
            "a line with no end, past the limit"
        );
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            command(&[b"EVALSHA", b"ab", b"0", b""]),
            b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n0\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn sha1_names_scripts_as_redis_does() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            sha1_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            sha1_hex(&[b'a'; 1000]),
            "291e9a6c66994949b57ba5e650361e98fc36b1ba"
        );
        assert_eq!(RESERVE.sha().len(), 40);
    }

    #[test]
    fn urls_parse_with_defaults_credentials_and_databases() {
        let url = RedisUrl::parse("redis://127.0.0.1").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.db),
            (false, "127.0.0.1", 6379, 0)
        );
        assert_eq!((url.username, url.password), (None, None));

        let url = RedisUrl::parse("rediss://default:p%40ss@w@cache.example.com:6380/3").unwrap();
        assert_eq!(
            (url.tls, url.host.as_str(), url.port, url.db),
            (true, "cache.example.com", 6380, 3)
        );
        assert_eq!(url.username.as_deref(), Some("default"));
        assert_eq!(url.password.as_deref(), Some("p@ss@w"));
        assert_eq!(url.addr(), "cache.example.com:6380");

        let url = RedisUrl::parse("redis://:secret@[::1]:7000/").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.db), ("::1", 7000, 0));
        assert_eq!(
            (url.username.as_deref(), url.password.as_deref()),
            (None, Some("secret"))
        );
        assert_eq!(url.addr(), "[::1]:7000");

        let url = RedisUrl::parse("redis://user@redis").unwrap();
        assert_eq!(
            (url.username.as_deref(), url.password),
            (Some("user"), None)
        );
    }

    #[test]
    fn bad_urls_say_why_without_repeating_themselves() {
        for (url, why) in [
            (
                "http://redis",
                "it must start with `redis://` or `rediss://`",
            ),
            ("redis://", "it has no host"),
            ("redis://:hunter2@:6379", "it has no host"),
            (
                "redis://:hunter2@redis:0",
                "its port must be a number from 1 to 65535",
            ),
            (
                "redis://:hunter2@redis:65536",
                "its port must be a number from 1 to 65535",
            ),
            (
                "redis://:hunter2@redis:+1",
                "its port must be a number from 1 to 65535",
            ),
            (
                "redis://:hunter2@redis/db",
                "its only path may be a database number, e.g. `/0`",
            ),
            (
                "redis://:hunter2@redis/+1",
                "its only path may be a database number, e.g. `/0`",
            ),
            (
                "redis://:hunter2@redis?protocol=3",
                "it may have no spaces, query or fragment",
            ),
            (
                "redis://:hunter2@red!s",
                "its host may only have letters, digits, `-`, `_` and `.`",
            ),
            ("redis://:hunter2@[::1", "its IPv6 host has no closing `]`"),
            ("redis://:hunter2@[zz]:1", "its IPv6 host is not an address"),
            (
                "redis://:hunter2@[::1]6379",
                "only `:PORT` may follow its IPv6 host",
            ),
            (
                "redis://:hunter%2@redis",
                "its credentials have a `%` not followed by two hex digits, or are not UTF-8",
            ),
        ] {
            let error = RedisUrl::parse(url).unwrap_err();
            assert_eq!(error, why, "{url}");
            assert!(!error.contains("hunter"), "{error}");
        }
    }

    #[test]
    fn the_store_is_the_url_itself_or_a_secrets_value() {
        let secrets = |name: &str| match name {
            "REDIS_URL" => Some(" redis://:hunter2@redis:6380/1\n".to_owned()),
            "BAD_URL" => Some("http://:hunter2@redis".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        assert_eq!(store_url(None, secrets), Ok(None));
        let url = store_url(
            Some(LimitsStore::RedisUrl("redis://127.0.0.1:7000")),
            secrets,
        )
        .unwrap()
        .unwrap();
        assert_eq!(url.addr(), "127.0.0.1:7000");
        let url = store_url(Some(LimitsStore::RedisSecret("REDIS_URL")), secrets)
            .unwrap()
            .unwrap();
        assert_eq!(
            (url.addr(), url.db, url.password.as_deref()),
            ("redis:6380".to_owned(), 1, Some("hunter2"))
        );
        for name in ["NOT_SET", "EMPTY"] {
            assert_eq!(
                store_url(Some(LimitsStore::RedisSecret(name)), secrets),
                Err(format!("`limits_store` names the secret `{name}`, which is not set (environment or .dev.vars)"))
            );
        }
        assert_eq!(
            store_url(Some(LimitsStore::RedisSecret("BAD_URL")), secrets),
            Err("the secret `BAD_URL` (`limits_store`) is not a usable Redis URL: it must start with `redis://` or `rediss://`".to_owned())
        );
    }

    #[test]
    fn credentials_never_show_in_display_debug_or_errors() {
        let url = RedisUrl::parse("rediss://admin:hunter2@redis.internal:6380/2").unwrap();
        assert_eq!(url.to_string(), "rediss://***@redis.internal:6380/2");
        assert_eq!(
            format!("{url:?}"),
            "RedisUrl(rediss://***@redis.internal:6380/2)"
        );
        let limits = RedisLimits::new(Arc::new(url.clone()));
        let shown = format!("{limits:?} {}", limits.url());
        assert!(
            !shown.contains("hunter2") && !shown.contains("admin"),
            "{shown}"
        );
        let error = limits.unavailable("AUTH refused: WRONGPASS hunter2".to_owned());
        assert_eq!(
            error.why,
            "redis at redis.internal:6380: AUTH refused: WRONGPASS ***"
        );
        let plain = RedisUrl::parse("redis://localhost").unwrap();
        assert_eq!(plain.to_string(), "redis://localhost:6379/0");
    }
}
