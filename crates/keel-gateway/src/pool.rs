//! Per-worker HTTP/1.1 upstream connections: each thread keeps its own idle connections per
//! backend, so a request checks one out without a lock, and no task is spawned per request. A
//! connection goes back to its thread's pool when the response body has been read to the end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Idle connections kept per backend and thread; more are closed when they come back.
const MAX_IDLE: usize = 256;

thread_local! {
    static IDLE: RefCell<HashMap<Authority, Vec<SendRequest<Body>>>> = RefCell::new(HashMap::new());
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum PoolError {
    /// Nothing reached the backend (connect failure, or a closed connection refused the request).
    NotSent(String),
    /// The request may have reached the backend.
    Failed(String),
}

fn checkout(authority: &Authority) -> Option<SendRequest<Body>> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.get_mut(authority)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    })
}

fn checkin(authority: Authority, sender: SendRequest<Body>) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = idle.entry(authority).or_default();
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    });
}

async fn connect(authority: &Authority, timeout: Duration) -> Result<SendRequest<Body>, PoolError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = (host, authority.port_u16().unwrap_or(80));
    let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(PoolError::NotSent(format!("connect {authority}: {e}"))),
        Err(_) => {
            return Err(PoolError::NotSent(format!(
                "connect {authority}: timed out"
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| PoolError::NotSent(format!("handshake {authority}: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Sends `req` (origin-form URI) to `authority` over a pooled HTTP/1.1 connection. A pooled
/// connection the backend has closed meanwhile hands the request back, and it goes out on a new one.
pub async fn send(
    authority: &Authority,
    mut req: Request<Body>,
    connect_timeout: Duration,
) -> Result<Response<Body>, PoolError> {
    *req.version_mut() = Version::HTTP_11;
    if !req.headers().contains_key(header::HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    let mut fresh = false;
    loop {
        let mut sender = match checkout(authority) {
            Some(s) => s,
            None => {
                fresh = true;
                connect(authority, connect_timeout).await?
            }
        };
        // A connection whose last response was just read becomes ready once its task has run.
        if sender.ready().await.is_err() {
            if fresh {
                return Err(PoolError::NotSent(format!(
                    "{authority}: connection closed"
                )));
            }
            continue;
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                let authority = authority.clone();
                return Ok(resp.map(|body| {
                    Body::new(Pooled {
                        body,
                        home: Some((authority, sender)),
                    })
                }));
            }
            Err(mut e) => match e.take_message() {
                // Refused before anything was written: try again on a new connection, once.
                Some(r) if !fresh => req = r,
                _ => return Err(PoolError::Failed(error_chain(e.error()))),
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A response body that returns its connection to the pool of the thread that reads its end.
struct Pooled {
    body: Incoming,
    home: Option<(Authority, SendRequest<Body>)>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some((authority, sender)) = self.home.take() {
            checkin(authority, sender);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Bodies known to be empty (HEAD, 204, Content-Length: 0) may never be polled.
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            // A broken body leaves the connection unusable: it is dropped, not pooled.
            Poll::Ready(Some(Err(_))) => this.home = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
