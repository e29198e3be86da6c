//! Keel's own HTTP/1.1 server connection, for a handler's hot path (the gateway's proxy).
//!
//! It serves the plain case itself — an HTTP/1.1 request with no body or a `Content-Length` body,
//! with keep-alive and pipelining — inside the connection's task, with one read buffer and one
//! write buffer per connection and no timer registered per request. Everything else is handed to
//! hyper with the bytes already read ([`End::HandOff`]): HTTP/2's preface, HTTP/1.0,
//! `Transfer-Encoding`, `Expect`, upgrades, `CONNECT`, repeated or odd `Content-Length` values, and
//! heads hyper must refuse (400, 431). hyper then serves the rest of that connection, so every
//! unusual request gets hyper's behaviour unchanged and this path stays small.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::serve::Handler;

/// Headers in one request head; more is hyper's business (it answers 431).
const MAX_HEADERS: usize = 100;
/// Response bytes gathered before a write: a small body goes out with its head in one write.
const COALESCE: usize = 16 * 1024;
const READ_CHUNK: usize = 8 * 1024;
/// Room left in a request's header map for what a proxy adds (`X-Forwarded-*`, `Forwarded`,
/// `X-Request-Id`), so adding them does not grow (reallocate and rehash) the map.
const EXTRA_HEADERS: usize = 8;
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Response header lines a handler serialised itself, written verbatim by Keel's HTTP/1.1 writer
/// before the response's own header map.
///
/// A proxy relaying an upstream's head puts them in the response's extensions instead of building
/// a header map from it: parsing every name, hashing it into the map and copying it out again
/// costs more than the rest of the head's journey. Each line is `name: value\r\n`, as an HTTP/1.1
/// parser accepted it, and none is hop-by-hop (`Connection`, `Keep-Alive`, `Transfer-Encoding`,
/// `TE`, `Trailer`, `Upgrade`, `Proxy-*`), since the writer frames the body itself. Only the writer
/// behind [`Handler::handle_in_place`] honours them (hyper ignores them), so a handler adds them only
/// to the responses it returns from there.
#[derive(Clone, Debug)]
pub struct RawHeaders {
    lines: Bytes,
    content_length: Option<u64>,
    date: bool,
}

impl RawHeaders {
    /// `lines` as described on the type; `content_length`, the body length they declare (every
    /// `Content-Length` among them agrees on it); `date`, whether one of them is a `Date`.
    pub fn new(lines: Bytes, content_length: Option<u64>, date: bool) -> Self {
        RawHeaders {
            lines,
            content_length,
            date,
        }
    }

    /// The body length the lines declare.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Largest request head; a longer one goes to hyper, which answers 431.
    pub max_head: usize,
    /// Time to receive a whole request head, counted from when the connection starts waiting for
    /// it, as hyper's `header_read_timeout`: an idle keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
}

/// How a connection ended on this path.
pub(crate) enum End {
    Closed,
    /// hyper takes over: the stream and the bytes read from it but not yet served.
    HandOff(TcpStream, Bytes),
}

/// Offsets of a header's name and value in the request head.
#[derive(Clone, Copy, Default)]
struct HeaderAt {
    name: (usize, usize),
    value: (usize, usize),
}

/// A request head found complete in the read buffer.
struct Parsed {
    len: usize,
    method: Method,
    path: (usize, usize),
    headers: usize,
    content_length: u64,
    close: bool,
}

/// Serves requests on `io` until the client closes it, a response asks to close, shutdown stops it,
/// or an unusual request hands it to hyper. `stop` is cancelled when listeners stop accepting (an
/// idle connection closes then); `ready` turns false when shutdown begins (no connection is kept
/// alive past its current response).
pub(crate) async fn serve<H: Handler>(
    mut io: TcpStream,
    peer: SocketAddr,
    handler: &H,
    settings: Settings,
    stop: &CancellationToken,
    ready: impl Fn() -> bool,
) -> End {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut at = [HeaderAt::default(); MAX_HEADERS];
    let mut stopped = pin!(stop.cancelled());
    // Polled here once, which registers this task's waker with the token; after that only once
    // shutdown has begun (an atomic load), since each poll takes the token's locks.
    let already =
        std::future::poll_fn(|cx| Poll::Ready(stopped.as_mut().poll(cx).is_ready())).await;
    if already {
        return End::Closed;
    }
    // One timer for the connection's life. The head deadline moves forward with a plain store per
    // request; the timer fires at an old deadline at most once per timeout and is then moved on.
    let mut deadline = Instant::now() + settings.header_read_timeout;
    let mut sleep = pin!(tokio::time::sleep_until(deadline));
    loop {
        let parsed = loop {
            if !buf.is_empty() {
                match parse(&buf, &mut at) {
                    Ok(Some(p)) => break p,
                    Ok(None) if buf.len() < settings.max_head => {}
                    // Malformed, unusual or too long: hyper refuses (400, 431) or serves it.
                    Ok(None) | Err(Unusual) => return End::HandOff(io, buf.freeze()),
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK);
            }
            let idle = buf.is_empty();
            tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(_) => {}
                },
                () = sleep.as_mut() => {
                    if Instant::now() >= deadline {
                        // A slow or silent client: closed before anything is routed.
                        return End::Closed;
                    }
                    sleep.as_mut().reset(deadline);
                }
                // The waker is registered already: until shutdown begins this costs an atomic load.
                () = std::future::poll_fn(|cx| {
                    if ready() { Poll::Pending } else { stopped.as_mut().poll(cx) }
                }), if idle => return End::Closed,
            }
        };
        let head = buf.split_to(parsed.len).freeze();
        let Some(request) = build(&head, &parsed, &at) else {
            let _ = io.write_all(BAD_REQUEST).await;
            return End::Closed;
        };
        let exchange = Exchange {
            head_only: parsed.method == Method::HEAD,
            keep_alive: !parsed.close,
        };
        let content_length = parsed.content_length;
        // The common case — no body, or a body that arrived with its head — runs here rather than
        // in a future of its own, so the handler's (large) future is not moved once more.
        let reusable = if content_length <= buf.len() as u64 {
            let body = match content_length {
                0 => Body::empty(),
                n => Body::from(buf.split_to(n as usize).freeze()),
            };
            let response = handler.handle_in_place(peer, request.map(|()| body)).await;
            let (_, mut wr) = io.split();
            exchange.write(&mut wr, &mut out, response).await
        } else {
            Box::pin(exchange.streaming(
                &mut io,
                &mut buf,
                &mut out,
                handler,
                peer,
                request,
                content_length,
            ))
            .await
        };
        if !reusable || !ready() {
            let _ = io.shutdown().await;
            return End::Closed;
        }
        deadline = Instant::now() + settings.header_read_timeout;
    }
}

/// A request this path leaves to hyper.
struct Unusual;

/// Parses a request head at the start of `buf`: `Ok(None)` while it is incomplete.
fn parse(buf: &[u8], at: &mut [HeaderAt; MAX_HEADERS]) -> Result<Option<Parsed>, Unusual> {
    // Uninitialised slots: zeroing 100 headers (3.2 kB) per request cost more than parsing them.
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Unusual),
    };
    if req.version != Some(1) {
        return Err(Unusual);
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(Unusual);
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| Unusual)?;
    if method == Method::CONNECT {
        return Err(Unusual);
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let mut content_length = None;
    let mut close = false;
    for (slot, h) in at.iter_mut().zip(req.headers.iter()) {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // One plain decimal value; anything else (repeats, lists, signs) is hyper's to judge.
            if content_length.is_some() || h.value.is_empty() || h.value.len() > 18 {
                return Err(Unusual);
            }
            let mut n = 0u64;
            for &d in h.value {
                if !d.is_ascii_digit() {
                    return Err(Unusual);
                }
                n = n * 10 + u64::from(d - b'0');
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Err(Unusual);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Err(Unusual);
                }
            }
        }
        *slot = HeaderAt {
            name: offset(name),
            value: offset(h.value),
        };
    }
    Ok(Some(Parsed {
        len,
        method,
        path: offset(path.as_bytes()),
        headers: req.headers.len(),
        content_length: content_length.unwrap_or(0),
        close,
    }))
}

/// The request for `parsed`, its URI and header values sharing `head`'s buffer.
fn build(head: &Bytes, parsed: &Parsed, at: &[HeaderAt]) -> Option<Request<()>> {
    let (start, len) = parsed.path;
    let uri = Uri::from_maybe_shared(head.slice(start..start + len)).ok()?;
    let mut headers = crate::spare::header_map(parsed.headers + EXTRA_HEADERS);
    for h in &at[..parsed.headers] {
        let (ns, nl) = h.name;
        let (vs, vl) = h.value;
        let name = HeaderName::from_bytes(&head[ns..ns + nl]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..vs + vl)).ok()?;
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = parsed.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Some(request)
}

/// One request and its response on a connection.
struct Exchange {
    head_only: bool,
    keep_alive: bool,
}

impl Exchange {
    /// Runs the handler on a request whose body is still arriving and writes its response; true
    /// when the connection can carry another request.
    #[allow(clippy::too_many_arguments)]
    async fn streaming<H: Handler>(
        self,
        io: &mut TcpStream,
        buf: &mut BytesMut,
        out: &mut Vec<u8>,
        handler: &H,
        peer: SocketAddr,
        request: Request<()>,
        content_length: u64,
    ) -> bool {
        let (rd, mut wr) = io.split();
        // The body is still arriving: the handler reads it through a channel that this task fills
        // while it runs the handler and, for handlers that answer early, while it writes the response.
        let (tx, rx) = mpsc::channel(1);
        let body = Body::new(Incoming {
            rx,
            remaining: content_length,
        });
        let mut pump = pin!(pump(rd, buf, content_length, tx));
        let mut pumped = None;
        let mut handled = pin!(handler.handle_in_place(peer, request.map(|()| body)));
        let response = std::future::poll_fn(|cx| {
            poll_pump(pump.as_mut(), &mut pumped, cx);
            handled.as_mut().poll(cx)
        })
        .await;
        let mut written = pin!(self.write(&mut wr, out, response));
        let reusable = std::future::poll_fn(|cx| {
            poll_pump(pump.as_mut(), &mut pumped, cx);
            written.as_mut().poll(cx)
        })
        .await;
        // A body the handler left unread cannot be told apart from the next request.
        reusable && pumped == Some(true)
    }

    /// Writes `response`; true when it was written whole and the connection may be reused.
    async fn write(
        &self,
        wr: &mut WriteHalf<'_>,
        out: &mut Vec<u8>,
        response: Response<Body>,
    ) -> bool {
        let (mut parts, mut body) = response.into_parts();
        let status = parts.status;
        let no_body = self.head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        // The headers that decide framing are noted while writing them (name comparisons, no hashing).
        let mut asks_close = false;
        let mut has_date = false;
        let mut declared: Option<Option<u64>> = None;
        let mut transfer_encoding: Option<&HeaderValue> = None;
        if let Some(raw) = parts.extensions.remove::<RawHeaders>() {
            out.extend_from_slice(&raw.lines);
            has_date = raw.date;
            declared = raw.content_length.map(Some);
        }
        for (name, value) in &parts.headers {
            if *name == header::CONNECTION {
                asks_close |= has_token(value.as_bytes(), b"close");
            } else if *name == header::DATE {
                has_date = true;
            } else if *name == header::CONTENT_LENGTH {
                // The first one counts, as `HeaderMap::get` would have it.
                declared.get_or_insert_with(|| {
                    std::str::from_utf8(value.as_bytes())
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                });
            } else if *name == header::TRANSFER_ENCODING {
                transfer_encoding.get_or_insert(value);
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let close = !self.keep_alive || asks_close;
        if !has_date {
            push_date(out);
        }
        if close && !asks_close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        let framing = if no_body {
            if self.head_only && declared.is_none() {
                push_length(out, body.size_hint().exact());
            }
            Framing::Empty
        } else if let Some(n) = declared {
            match n {
                Some(n) => Framing::Length(n),
                // An unreadable length from a handler: delimit by closing.
                None => Framing::Close,
            }
        } else if let Some(te) = transfer_encoding {
            if last_token_is_chunked(te.as_bytes()) {
                Framing::Chunked
            } else {
                Framing::Close
            }
        } else if let Some(n) = body.size_hint().exact() {
            push_length(out, Some(n));
            Framing::Length(n)
        } else {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        };
        out.extend_from_slice(b"\r\n");
        // The head is written out: its map goes back for the next message.
        crate::spare::recycle_header_map(parts.headers);
        let mut sent = 0u64;
        if !matches!(framing, Framing::Empty) {
            loop {
                // Gather what is ready; before waiting for more, send what was gathered, so a
                // streamed response (SSE) goes out as it is produced.
                let next = match poll_now(&mut body) {
                    Some(next) => next,
                    None => {
                        if !out.is_empty() && wr.write_all(out).await.is_err() {
                            return false;
                        }
                        out.clear();
                        body.frame().await
                    }
                };
                let data = match next {
                    None => break,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => data,
                        // Trailers are dropped on HTTP/1.1; empty frames carry nothing.
                        _ => continue,
                    },
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "response body failed; closing the connection");
                        let _ = wr.write_all(out).await;
                        return false;
                    }
                };
                sent += data.len() as u64;
                if let Framing::Length(n) = framing
                    && sent > n
                {
                    tracing::debug!(declared = n, "response body longer than its Content-Length");
                    let _ = wr.write_all(out).await;
                    return false;
                }
                if let Framing::Chunked = framing {
                    let _ = write!(out, "{:x}\r\n", data.len());
                }
                if out.len() + data.len() <= COALESCE {
                    out.extend_from_slice(&data);
                } else {
                    if wr.write_all(out).await.is_err() || wr.write_all(&data).await.is_err() {
                        return false;
                    }
                    out.clear();
                }
                if let Framing::Chunked = framing {
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        drop(body);
        if let Framing::Chunked = framing {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        if !out.is_empty() && wr.write_all(out).await.is_err() {
            return false;
        }
        out.clear();
        match framing {
            Framing::Length(n) if sent != n => false,
            Framing::Close => false,
            _ => !close,
        }
    }
}

/// How a response body is delimited on the wire.
#[derive(Clone, Copy)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn last_token_is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

fn push_length(out: &mut Vec<u8>, n: Option<u64>) {
    if let Some(n) = n {
        let _ = write!(out, "content-length: {n}\r\n");
    }
}

/// The `Date` header, formatted once per second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let formatted = httpdate::fmt_http_date(now);
            if formatted.len() == text.len() {
                text.copy_from_slice(formatted.as_bytes());
                *at = secs;
            }
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    });
}

type Next = Option<Result<Frame<Bytes>, axum::Error>>;

/// The body's next frame if it is ready now.
fn poll_now(body: &mut Body) -> Option<Next> {
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    match Pin::new(body).poll_frame(&mut cx) {
        Poll::Ready(next) => Some(next),
        Poll::Pending => None,
    }
}

/// Reads a request body of `remaining` bytes (some may already be in `buf`) into `tx`. True when
/// all of it was read; false when the client went away or the handler dropped the body.
async fn pump(
    mut rd: ReadHalf<'_>,
    buf: &mut BytesMut,
    mut remaining: u64,
    tx: mpsc::Sender<io::Result<Bytes>>,
) -> bool {
    while remaining > 0 {
        if buf.is_empty() {
            buf.reserve(READ_CHUNK);
            match rd.read_buf(buf).await {
                Ok(0) => {
                    let _ = tx.send(Err(io::ErrorKind::UnexpectedEof.into())).await;
                    return false;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return false;
                }
                Ok(_) => {}
            }
        }
        let n = (buf.len() as u64).min(remaining) as usize;
        remaining -= n as u64;
        if tx.send(Ok(buf.split_to(n).freeze())).await.is_err() {
            return false;
        }
    }
    true
}

fn poll_pump(
    pump: Pin<&mut impl Future<Output = bool>>,
    done: &mut Option<bool>,
    cx: &mut Context<'_>,
) {
    if done.is_none()
        && let Poll::Ready(ok) = pump.poll(cx)
    {
        *done = Some(ok);
    }
}

/// A request body still arriving on the connection.
struct Incoming {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.remaining = self.remaining.saturating_sub(data.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A stream with bytes already read from it in front: what hyper reads after a hand-off.
pub(crate) struct Prefixed {
    prefix: Bytes,
    io: TcpStream,
}

impl Prefixed {
    pub(crate) fn new(prefix: Bytes, io: TcpStream) -> Self {
        Self { prefix, io }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, out)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
