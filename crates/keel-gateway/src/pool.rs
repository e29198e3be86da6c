//! Per-worker HTTP/1.1 upstream connections, driven inline by the request's own task: the request
//! head is written straight from the proxied request's parts, the response head is parsed with
//! httparse, and a body already in the read buffer comes back as one shared slice, so the common
//! exchange takes no task hand-off, no channel and no per-request allocation beyond the header map.
//! Each thread keeps its own idle connections per backend, so a checkout takes no lock; a
//! connection goes back to the pool of the thread that reads its response body to the end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Idle connections kept per backend and thread; more are closed when they come back.
const MAX_IDLE: usize = 256;
/// Largest response head accepted (status line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields accepted.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE: usize = 4 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 8 * 1024;
/// A fixed-length body up to this size goes out in the same write as the head.
const COALESCE: usize = 16 * 1024;

/// One upstream connection, its buffers and its response timer, which live as long as it does.
struct Conn {
    link: Link,
    /// The response deadline, re-armed for each request. Deadlines only move forward, so re-arming
    /// extends the registered timer instead of registering a new one (and never has to wake the
    /// runtime's driver to bring its next wake-up closer).
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The sweep epoch in which it last went back to the idle list.
    returned: u64,
}

/// The socket and its buffers.
struct Link {
    io: TcpStream,
    /// Bytes read and not yet consumed; empty whenever the connection is idle.
    buf: BytesMut,
    /// The request head (and a small body) being written.
    wbuf: Vec<u8>,
    /// Where each header of the response head being parsed lies in `buf` (kept to reuse its
    /// allocation: a fresh array per response would be zeroed every time).
    spans: Vec<Span>,
}

/// A header of the head being parsed: its name and value as byte ranges of the head, and what
/// its name means to the proxy.
#[derive(Clone, Copy)]
struct Span {
    name: (usize, usize),
    value: (usize, usize),
    kind: Kind,
}

/// What a response header's name means to the proxy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    ContentLength,
    TransferEncoding,
    Connection,
    /// Any other hop-by-hop header (RFC 9110 §7.6.1, and the legacy `Keep-Alive` and
    /// `Proxy-Connection`): never passed on.
    HopByHop,
    Date,
    /// Replaced by the proxy's own.
    RequestId,
    SetCookie,
    Other,
}

impl Kind {
    /// Compares lengths first, so most names cost one comparison or none.
    fn of(name: &[u8]) -> Kind {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        match name.len() {
            2 if is(b"te") => Kind::HopByHop,
            4 if is(b"date") => Kind::Date,
            7 if is(b"trailer") || is(b"upgrade") => Kind::HopByHop,
            10 if is(b"connection") => Kind::Connection,
            10 if is(b"keep-alive") => Kind::HopByHop,
            10 if is(b"set-cookie") => Kind::SetCookie,
            12 if is(b"x-request-id") => Kind::RequestId,
            14 if is(b"content-length") => Kind::ContentLength,
            16 if is(b"proxy-connection") => Kind::HopByHop,
            17 if is(b"transfer-encoding") => Kind::TransferEncoding,
            19 if is(b"proxy-authorization") => Kind::HopByHop,
            _ => Kind::Other,
        }
    }
}

/// This thread's idle connections.
///
/// Idle connections are closed once unused for the idle timeout, without a timer per connection:
/// each connection notes the sweep epoch it was returned in, and a sweep at least the idle timeout
/// after the last one closes those returned before that one (unused since, so idle for between one
/// and two timeouts) and forgets backends left with none. Sweeps are due-checked when a
/// connection is opened — which is when instances change, and with them the backends whose
/// connections would otherwise linger — and every [`SWEEP_EVERY`] returns.
#[derive(Default)]
struct Idle {
    /// Keyed by the authority's text: hashing it as one slice is several times cheaper than
    /// `Authority`'s own case-folding hash, which feeds the hasher a byte at a time. The keys are
    /// this gateway's own upstreams, so a fast seeded hash serves (SipHash cost two per request).
    by_authority: HashMap<Box<str>, Vec<Conn>, foldhash::fast::RandomState>,
    epoch: u64,
    returns: u32,
    last_sweep: Option<tokio::time::Instant>,
    /// The idle timeout the last request asked for.
    timeout: Duration,
}

/// Returns between two due-checks of the sweep (each check reads the clock).
const SWEEP_EVERY: u32 = 256;

impl Idle {
    fn sweep_if_due(&mut self) {
        let now = tokio::time::Instant::now();
        let Some(last) = self.last_sweep else {
            self.last_sweep = Some(now);
            return;
        };
        if now.saturating_duration_since(last) < self.timeout {
            return;
        }
        let epoch = self.epoch;
        // Returned in order, so the ones returned before the last sweep are at the front.
        self.by_authority.retain(|_, list| {
            let stale = list.partition_point(|c| c.returned < epoch);
            list.drain(..stale);
            !list.is_empty()
        });
        self.epoch += 1;
        self.last_sweep = Some(now);
    }
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum PoolError {
    /// Nothing reached the backend (connect failure).
    NotSent(String),
    /// The request may have reached the backend.
    Failed(String),
}

/// The request body to send.
pub enum Outgoing {
    /// Fully buffered (and so replayable on another connection).
    Full(Bytes),
    /// Streamed once.
    Stream(Body),
}

/// The request line and headers to send; hop-by-hop headers are already gone.
pub struct Head<'a> {
    pub method: &'a Method,
    pub path: &'a PathAndQuery,
    pub headers: &'a HeaderMap,
    /// Header lines (`name: value\r\n` each) written after the map's.
    pub extra: &'a [u8],
    /// Relay the response's header lines as they came instead of building a header map from them.
    pub relay: Option<Relay>,
}

/// How the response's header lines are relayed, for a proxy that edits none of them and answers
/// through Keel's own HTTP/1.1 writer ([`keel_server::RawHeaders`]). Hop-by-hop headers and the
/// upstream's `X-Request-Id` (the proxy sets its own) are left out. A head in an unusual form
/// (`Transfer-Encoding`, a `Connection` naming other headers, a bad `Content-Length`, a line not
/// written `name: value\r\n`) is built into a map as usual.
#[derive(Clone, Copy, Debug)]
pub struct Relay {
    /// `Set-Cookie` is left out too (the route does not pass cookies).
    pub drop_set_cookie: bool,
}

/// An idle connection stays usable while its socket has nothing to read: the backend closing it
/// makes it readable (EOF). Tokio clears read readiness after a short read, so a healthy idle
/// connection answers this without a system call.
fn usable(conn: &Conn) -> bool {
    let mut probe = [0u8; 1];
    conn.link.buf.is_empty()
        && matches!(conn.link.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// An idle connection to `authority`; with none, a sweep when one is due (a connection is about
/// to be opened).
fn checkout(authority: &Authority, idle_timeout: Duration) -> Option<Conn> {
    IDLE.with_borrow_mut(|idle| {
        idle.timeout = idle_timeout;
        if let Some(list) = idle.by_authority.get_mut(authority.as_str()) {
            while let Some(c) = list.pop() {
                if usable(&c) {
                    return Some(c);
                }
            }
        }
        idle.sweep_if_due();
        None
    })
}

fn checkin(authority: &Authority, mut conn: Conn) {
    IDLE.with_borrow_mut(|idle| {
        conn.returned = idle.epoch;
        let list = match idle.by_authority.get_mut(authority.as_str()) {
            Some(list) => list,
            None => idle
                .by_authority
                .entry(authority.as_str().into())
                .or_default(),
        };
        if list.len() < MAX_IDLE {
            list.push(conn);
        }
        idle.returns = idle.returns.wrapping_add(1);
        if idle.returns % SWEEP_EVERY == 0 {
            idle.sweep_if_due();
        }
    });
}

async fn connect(authority: &Authority, timeout: Duration) -> Result<Conn, PoolError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = (host, authority.port_u16().unwrap_or(80));
    let io = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(PoolError::NotSent(format!("connect {authority}: {e}"))),
        Err(_) => {
            return Err(PoolError::NotSent(format!(
                "connect {authority}: timed out"
            )));
        }
    };
    let _ = io.set_nodelay(true);
    Ok(Conn {
        link: Link {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(1024),
            spans: Vec::with_capacity(32),
        },
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        returned: 0,
    })
}

/// How an exchange on one connection went wrong.
enum Broken {
    /// A reused connection failed before the backend could have acted on the request: it goes
    /// again on a new connection.
    Stale,
    Failed(String),
}

/// Why [`send`] returned no response.
#[derive(Debug)]
pub enum SendError {
    Pool(PoolError),
    /// No response head within the timeout.
    TimedOut,
}

impl From<PoolError> for SendError {
    fn from(e: PoolError) -> Self {
        SendError::Pool(e)
    }
}

/// Sends the request to `authority` over a pooled connection and returns the response once its
/// head has arrived. A reused connection that turns out closed gets the request again on a new one
/// when that is safe: nothing of a streamed body was consumed, or the request is idempotent and
/// buffered. The response head must arrive by `deadline`.
pub async fn send(
    authority: &Authority,
    head: Head<'_>,
    mut body: Outgoing,
    (connect_timeout, idle_timeout): (Duration, Duration),
    deadline: tokio::time::Instant,
) -> Result<Response<Body>, SendError> {
    loop {
        let (mut conn, fresh) = match checkout(authority, idle_timeout) {
            Some(c) => (c, false),
            None => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let limit = connect_timeout.min(left);
                (connect(authority, limit).await?, true)
            }
        };
        let retry_ok = head.method.is_idempotent() && matches!(body, Outgoing::Full(_));
        conn.timer.as_mut().reset(deadline);
        let exchanged = tokio::select! {
            biased;
            r = exchange(&mut conn.link, authority, &head, &mut body, retry_ok) => r,
            () = conn.timer.as_mut() => return Err(SendError::TimedOut),
        };
        match exchanged {
            Ok((parts, framing, reusable)) => {
                return Ok(Response::from_parts(
                    parts,
                    deliver(conn, authority, framing, reusable),
                ));
            }
            Err(Broken::Stale) if !fresh => continue,
            Err(Broken::Stale) => {
                return Err(PoolError::Failed(format!(
                    "{authority}: connection closed before a response"
                ))
                .into());
            }
            Err(Broken::Failed(e)) => {
                return Err(PoolError::Failed(format!("{authority}: {e}")).into());
            }
        }
    }
}

/// How the response body is delimited.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

async fn exchange(
    conn: &mut Link,
    authority: &Authority,
    head: &Head<'_>,
    body: &mut Outgoing,
    retry_ok: bool,
) -> Result<(http::response::Parts, Framing, bool), Broken> {
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let framing = match body {
        Outgoing::Full(b) if !b.is_empty() || declared.is_some() => Framing::Length(b.len() as u64),
        Outgoing::Full(_) => Framing::Empty,
        Outgoing::Stream(_) => declared.map_or(Framing::Chunked, Framing::Length),
    };
    write_head(&mut conn.wbuf, head, authority, framing);
    let lost = |e: io::Error, retry: bool| {
        if retry {
            Broken::Stale
        } else {
            Broken::Failed(format!("writing the request: {e}"))
        }
    };
    match body {
        Outgoing::Full(b) if b.len() <= COALESCE => {
            conn.wbuf.extend_from_slice(b);
            conn.io
                .write_all(&conn.wbuf)
                .await
                .map_err(|e| lost(e, true))?;
        }
        Outgoing::Full(b) => {
            conn.io
                .write_all(&conn.wbuf)
                .await
                .map_err(|e| lost(e, true))?;
            conn.io.write_all(b).await.map_err(|e| lost(e, retry_ok))?;
        }
        Outgoing::Stream(stream) => {
            conn.io
                .write_all(&conn.wbuf)
                .await
                .map_err(|e| lost(e, true))?;
            let chunked = matches!(framing, Framing::Chunked);
            while let Some(frame) = stream.frame().await {
                let frame =
                    frame.map_err(|e| Broken::Failed(format!("reading the request body: {e}")))?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers are not forwarded
                };
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    conn.wbuf.clear();
                    let _ = write!(conn.wbuf, "{:x}\r\n", data.len());
                    conn.io
                        .write_all(&conn.wbuf)
                        .await
                        .map_err(|e| lost(e, false))?;
                    conn.io.write_all(&data).await.map_err(|e| lost(e, false))?;
                    conn.io
                        .write_all(b"\r\n")
                        .await
                        .map_err(|e| lost(e, false))?;
                } else {
                    conn.io.write_all(&data).await.map_err(|e| lost(e, false))?;
                }
            }
            if chunked {
                conn.io
                    .write_all(b"0\r\n\r\n")
                    .await
                    .map_err(|e| lost(e, false))?;
            }
        }
    }
    read_head(conn, head.method, head.relay, retry_ok).await
}

fn write_head(w: &mut Vec<u8>, head: &Head<'_>, authority: &Authority, framing: Framing) {
    w.clear();
    w.extend_from_slice(head.method.as_str().as_bytes());
    w.push(b' ');
    w.extend_from_slice(head.path.as_str().as_bytes());
    w.extend_from_slice(b" HTTP/1.1\r\n");
    if !head.headers.contains_key(header::HOST) {
        w.extend_from_slice(b"host: ");
        w.extend_from_slice(authority.as_str().as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    for (name, value) in head.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        w.extend_from_slice(name.as_str().as_bytes());
        w.extend_from_slice(b": ");
        w.extend_from_slice(value.as_bytes());
        w.extend_from_slice(b"\r\n");
    }
    w.extend_from_slice(head.extra);
    match framing {
        Framing::Length(n) => {
            let _ = write!(w, "content-length: {n}\r\n");
        }
        Framing::Chunked => w.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    w.extend_from_slice(b"\r\n");
}

/// Reads and parses the response head (skipping interim 1xx responses), leaving any body bytes
/// that came with it in the buffer.
async fn read_head(
    conn: &mut Link,
    method: &Method,
    relay: Option<Relay>,
    retry_ok: bool,
) -> Result<(http::response::Parts, Framing, bool), Broken> {
    let mut received = false;
    loop {
        if !conn.buf.is_empty() {
            if let Some(done) = parse_head(&mut conn.buf, &mut conn.spans, method, relay)? {
                return Ok(done);
            }
            if conn.buf.len() >= MAX_HEAD {
                return Err(Broken::Failed("response head too large".into()));
            }
        }
        reserve(&mut conn.buf);
        match conn.io.read_buf(&mut conn.buf).await {
            Ok(0) if !received && retry_ok => return Err(Broken::Stale),
            Ok(0) => {
                return Err(Broken::Failed(
                    "connection closed before a complete response head".into(),
                ));
            }
            Ok(_) => received = true,
            Err(e) if !received && retry_ok => {
                tracing::debug!(error = %e, "reused upstream connection failed");
                return Err(Broken::Stale);
            }
            Err(e) => return Err(Broken::Failed(format!("reading the response: {e}"))),
        }
    }
}

type Parsed = (http::response::Parts, Framing, bool);

/// Makes room to read into, unless there is a fair amount left.
///
/// The buffer's front is split off and frozen for each response (its head's header values and its
/// body share it), and the connection goes back to the pool before those are dropped. Asking for a
/// whole chunk each time would find the allocation still shared and allocate a new one per response;
/// reading into what is left after the previous response allocates once per several.
fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
}

/// Parses one complete final response head off the front of `buf`; `None` when more is needed.
/// With `relay`, its header lines are relayed as they are when they can be ([`Relay`]).
fn parse_head(
    buf: &mut BytesMut,
    spans: &mut Vec<Span>,
    method: &Method,
    relay: Option<Relay>,
) -> Result<Option<Parsed>, Broken> {
    let invalid = |what: &str| Broken::Failed(format!("invalid response from upstream: {what}"));
    loop {
        // Uninitialised slots: zeroing 100 headers (3.2 kB) per response cost more than parsing them.
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut slots,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(invalid(&e.to_string())),
        };
        let code = parsed.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            // 100 Continue and other interim answers: the final one follows.
            buf.advance(len);
            if buf.is_empty() {
                return Ok(None);
            }
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| invalid("status code"))?;
        let version = if parsed.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Header positions, so that the head can be rearranged (relayed) or its values share its
        // buffer once it is frozen (a map).
        let base = buf.as_ptr() as usize;
        spans.clear();
        spans.extend(parsed.headers.iter().map(|h| {
            let n = h.name.as_ptr() as usize - base;
            let v = h.value.as_ptr() as usize - base;
            Span {
                name: (n, n + h.name.len()),
                value: (v, v + h.value.len()),
                kind: Kind::of(h.name.as_bytes()),
            }
        }));
        let mut facts = Facts::default();
        let mut usual = relay.is_some();
        for span in spans.iter() {
            facts.note(span.kind, &buf[span.value.0..span.value.1]);
            usual = usual && in_usual_form(buf, span);
        }
        let relayed = relay.filter(|_| {
            usual
                && !facts.names_others
                && facts.transfer_encoding.is_none()
                && facts.length.is_ok()
        });
        let (mut headers, raw) = match relayed {
            Some(relay) => {
                let lines = relayed_lines(buf, spans, len, relay);
                let raw =
                    keel_server::RawHeaders::new(lines, facts.length.ok().flatten(), facts.date);
                (keel_server::header_map(4), Some(raw))
            }
            None => (header_map_of(buf, spans, len, &facts)?, None),
        };
        let (framing, reusable) = framing(&mut headers, &facts, status, version, method)?;
        let mut parts = Response::new(()).into_parts().0;
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        if let Some(raw) = raw {
            parts.extensions.insert(raw);
        }
        return Ok(Some((parts, framing, reusable)));
    }
}

/// Takes the head (`len` bytes) off the front of `buf` and builds its headers into a map whose
/// values share the head's buffer; hop-by-hop headers stay out unless a `Connection` names others.
fn header_map_of(
    buf: &mut BytesMut,
    spans: &[Span],
    len: usize,
    facts: &Facts,
) -> Result<HeaderMap, Broken> {
    let invalid = |what: &str| Broken::Failed(format!("invalid response from upstream: {what}"));
    let head = buf.split_to(len).freeze();
    // Room for what the proxy adds (X-Request-Id, response filters) without growing the map.
    let mut headers = keel_server::header_map(spans.len() + 4);
    for span in spans {
        let keep = match span.kind {
            Kind::TransferEncoding | Kind::HopByHop => false,
            // Kept when it names other headers, so that the proxy strips those.
            Kind::Connection => facts.names_others,
            _ => true,
        };
        if !keep {
            continue;
        }
        let name = HeaderName::from_bytes(&head[span.name.0..span.name.1])
            .map_err(|_| invalid("header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(span.value.0..span.value.1))
            .map_err(|_| invalid("header value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Whether the header's line reads exactly `name: value\r\n` (what the relay passes on as it is).
fn in_usual_form(buf: &[u8], span: &Span) -> bool {
    let (n1, (v0, v1)) = (span.name.1, span.value);
    v0 == n1 + 2 && buf[n1..v0] == *b": " && buf.get(v1..v1 + 2) == Some(b"\r\n")
}

/// Takes the head (`len` bytes) off the front of `buf` and returns its header lines, minus those
/// the relay leaves out, moved together in place: no copy out and no allocation.
fn relayed_lines(buf: &mut BytesMut, spans: &[Span], len: usize, relay: Relay) -> Bytes {
    let first = spans.first().map_or(0, |s| s.name.0);
    let mut end = first;
    for span in spans {
        let keep = match span.kind {
            Kind::Connection | Kind::TransferEncoding | Kind::HopByHop | Kind::RequestId => false,
            Kind::SetCookie => !relay.drop_set_cookie,
            Kind::ContentLength | Kind::Date | Kind::Other => true,
        };
        if keep {
            // The line's CRLF follows its value ([`in_usual_form`]); lines only move forward.
            let line = span.name.0..span.value.1 + 2;
            let n = line.len();
            if line.start != end {
                buf.copy_within(line, end);
            }
            end += n;
        }
    }
    let mut head = buf.split_to(len);
    head.truncate(end);
    head.advance(first);
    head.freeze()
}

/// What a response head says about its framing and its connection, gathered while its headers
/// are read (so none is looked up again in the map).
struct Facts {
    /// `Connection` tokens.
    close: bool,
    keep_alive: bool,
    /// A `Connection` header names other headers (hop-by-hop too, so they are to be stripped).
    names_others: bool,
    /// The last `Transfer-Encoding` value ends in `chunked`, if there is one.
    transfer_encoding: Option<bool>,
    /// `Content-Length`, if every value agreed; an error otherwise, which counts only where the
    /// length frames the body.
    length: Result<Option<u64>, &'static str>,
    date: bool,
}

impl Default for Facts {
    fn default() -> Self {
        Facts {
            close: false,
            keep_alive: false,
            names_others: false,
            transfer_encoding: None,
            length: Ok(None),
            date: false,
        }
    }
}

impl Facts {
    /// Notes what a header of this kind says.
    fn note(&mut self, kind: Kind, value: &[u8]) {
        match kind {
            Kind::ContentLength => {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                self.length = match (self.length, n) {
                    (Err(e), _) => Err(e),
                    (_, None) => Err("content-length"),
                    (Ok(Some(l)), Some(n)) if l != n => Err("conflicting content-length"),
                    (Ok(_), Some(n)) => Ok(Some(n)),
                };
            }
            Kind::TransferEncoding => {
                let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
                self.transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Kind::Connection => {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if !token.is_empty() && !token.eq_ignore_ascii_case(b"upgrade") {
                        self.names_others = true;
                    }
                }
            }
            Kind::Date => self.date = true,
            Kind::HopByHop | Kind::RequestId | Kind::SetCookie | Kind::Other => {}
        }
    }
}

/// The body's framing (RFC 9112 §6.3) and whether the connection can carry another request.
fn framing(
    headers: &mut HeaderMap,
    facts: &Facts,
    status: StatusCode,
    version: Version,
    method: &Method,
) -> Result<(Framing, bool), Broken> {
    let reusable = if version == Version::HTTP_10 {
        facts.keep_alive
    } else {
        !facts.close
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(Broken::Failed(
            "switched protocols without an upgrade request".into(),
        ));
    }
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, reusable));
    }
    if let Some(chunked) = facts.transfer_encoding {
        // Transfer-Encoding wins over Content-Length, which is dropped.
        if facts.length != Ok(None) {
            headers.remove(header::CONTENT_LENGTH);
        }
        if chunked {
            return Ok((Framing::Chunked, reusable));
        }
        return Ok((Framing::Close, false));
    }
    match facts.length {
        Err(what) => Err(Broken::Failed(format!(
            "invalid response from upstream: {what}"
        ))),
        Ok(Some(n)) => Ok((Framing::Length(n), reusable)),
        // Delimited by the close, so the connection ends with the body.
        Ok(None) => Ok((Framing::Close, false)),
    }
}

/// The response body: the bytes already read when they are all of it (the connection goes back to
/// the pool at once), otherwise a body that reads the rest from the connection.
fn deliver(mut conn: Conn, authority: &Authority, framing: Framing, reusable: bool) -> Body {
    match framing {
        Framing::Empty => {
            if reusable && conn.link.buf.is_empty() {
                checkin(authority, conn);
            }
            Body::empty()
        }
        Framing::Length(n) if conn.link.buf.len() as u64 >= n => {
            let data = conn.link.buf.split_to(n as usize).freeze();
            if reusable && conn.link.buf.is_empty() {
                checkin(authority, conn);
            }
            Body::from(data)
        }
        _ => Body::new(Streaming {
            conn: Some(conn),
            authority: authority.clone(),
            reusable,
            state: match framing {
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize,
                _ => State::Close,
            },
        }),
    }
}

#[derive(Clone, Copy, Debug)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Close,
    Done,
}

/// A response body read from its connection as the client takes it.
struct Streaming {
    conn: Option<Conn>,
    authority: Authority,
    reusable: bool,
    state: State,
}

fn broken(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl Streaming {
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.link.buf.is_empty()
        {
            checkin(&self.authority, conn);
        }
    }

    /// Reads more into the buffer; `Ok(false)` at end of stream.
    fn fill(link: &mut Link, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        reserve(&mut link.buf);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut link.io),
            cx,
            &mut link.buf
        ))?;
        Poll::Ready(Ok(n > 0))
    }
}

impl http_body::Body for Streaming {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(rest) | State::ChunkData(rest) if !conn.link.buf.is_empty() => {
                    let take = rest.min(conn.link.buf.len() as u64);
                    let data = conn.link.buf.split_to(take as usize).freeze();
                    let rest = rest - take;
                    this.state = match this.state {
                        State::Length(_) => State::Length(rest),
                        _ if rest == 0 => State::ChunkEnd,
                        _ => State::ChunkData(rest),
                    };
                    if matches!(this.state, State::Length(0)) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Close if !conn.link.buf.is_empty() => {
                    let data = conn.link.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::ChunkSize if !conn.link.buf.is_empty() => {
                    match httparse::parse_chunk_size(&conn.link.buf) {
                        Ok(httparse::Status::Complete((used, 0))) => {
                            conn.link.buf.advance(used);
                            this.state = State::Trailers;
                            continue;
                        }
                        Ok(httparse::Status::Complete((used, size))) => {
                            conn.link.buf.advance(used);
                            this.state = State::ChunkData(size);
                            continue;
                        }
                        Ok(httparse::Status::Partial) if conn.link.buf.len() < MAX_LINE => {}
                        _ => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(broken(
                                "invalid chunk size from upstream",
                            ))));
                        }
                    }
                }
                State::ChunkEnd if conn.link.buf.len() >= 2 => {
                    if &conn.link.buf[..2] != b"\r\n" {
                        this.conn = None;
                        return Poll::Ready(Some(Err(broken("invalid chunk from upstream"))));
                    }
                    conn.link.buf.advance(2);
                    this.state = State::ChunkSize;
                    continue;
                }
                State::Trailers if !conn.link.buf.is_empty() => {
                    // Trailer fields are read and dropped, up to the empty line that ends the body.
                    match conn.link.buf.windows(2).position(|w| w == b"\r\n") {
                        Some(0) => {
                            conn.link.buf.advance(2);
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Some(end) => {
                            conn.link.buf.advance(end + 2);
                            continue;
                        }
                        None if conn.link.buf.len() < MAX_LINE => {}
                        None => {
                            this.conn = None;
                            return Poll::Ready(Some(Err(broken("trailer line too long"))));
                        }
                    }
                }
                _ => {}
            }
            // The buffer holds nothing usable yet: read more.
            match ready!(Self::fill(&mut conn.link, cx)) {
                Ok(true) => {}
                Ok(false) if matches!(this.state, State::Close) => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(false) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(broken(
                        "upstream closed the connection mid-body",
                    ))));
                }
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done | State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
