//! The access log: one JSON line per request, handed to a writer task so the request path never blocks on I/O.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderValue, Method, Uri};
use keel_balance::InstanceId;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::metrics::GatewayMetrics;

/// Where access-log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    #[default]
    Off,
    Stdout,
    File(PathBuf),
}

/// One request, as recorded on the request path: cheap clones only (shared strings, the parsed
/// URI), so the JSON is built by the writer task, off the request path.
#[derive(Debug)]
pub struct AccessEntry {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub request_id: HeaderValue,
    pub route: Option<Arc<str>>,
    pub service: Option<Arc<str>>,
    pub instance: Option<Instance>,
    pub method: Method,
    /// The normalised path when it differs from the request's, else the request's path.
    pub path: Option<String>,
    pub uri: Uri,
    pub status: u16,
    /// Response body bytes when declared by Content-Length.
    pub bytes: Option<u64>,
    pub total_ms: f64,
    pub upstream_ms: Option<f64>,
    pub client: IpAddr,
    pub attempts: u32,
    /// Why the gateway answered itself: `no_route`, `rate_limited`, `breaker_open`, `fallback`, `no_instance`…
    pub decision: Option<&'static str>,
    /// Who decided the route's rate limit: `local`, `redis`, `redis_fail_open`, `redis_fail_closed`.
    pub limiter: Option<&'static str>,
}

/// The instance a request went to: a registry instance id, or a fixed route's address.
#[derive(Debug, Clone)]
pub enum Instance {
    Id(InstanceId),
    Addr(Authority),
}

impl Instance {
    fn as_str(&self) -> &str {
        match self {
            Instance::Id(id) => id.as_str(),
            Instance::Addr(a) => a.as_str(),
        }
    }
}

/// The JSON line, in field order.
#[derive(Serialize)]
struct Line<'a> {
    ts: u64,
    request_id: &'a str,
    route: Option<&'a str>,
    service: Option<&'a str>,
    instance: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes: Option<u64>,
    total_ms: f64,
    upstream_ms: Option<f64>,
    client: IpAddr,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limiter: Option<&'static str>,
}

impl AccessEntry {
    fn line(&self) -> Line<'_> {
        Line {
            ts: self.ts,
            request_id: self.request_id.to_str().unwrap_or(""),
            route: self.route.as_deref(),
            service: self.service.as_deref(),
            instance: self.instance.as_ref().map(Instance::as_str),
            method: self.method.as_str(),
            path: self.path.as_deref().unwrap_or_else(|| self.uri.path()),
            status: self.status,
            bytes: self.bytes,
            total_ms: self.total_ms,
            upstream_ms: self.upstream_ms,
            client: self.client,
            attempts: self.attempts,
            decision: self.decision,
            limiter: self.limiter,
        }
    }
}

/// Sending side; cloning is cheap. Lines are dropped (and counted) rather than slowing requests.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<AccessEntry>>,
    metrics: GatewayMetrics,
}

const QUEUE: usize = 16 * 1024;
const FLUSH_BYTES: usize = 32 * 1024;
const DRAIN_EVERY: Duration = Duration::from_millis(50);

impl AccessLog {
    /// Starts the writer task (inside a tokio runtime) unless the target is `Off`.
    pub fn start(target: &AccessLogTarget, metrics: GatewayMetrics) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(AccessLog { tx: None, metrics }),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(rx, sink));
        Ok(AccessLog {
            tx: Some(tx),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn record(&self, entry: AccessEntry) {
        if let Some(tx) = &self.tx
            && tx.try_send(entry).is_err()
        {
            self.metrics.access_log_dropped.inc();
        }
    }
}

async fn write_loop(mut rx: mpsc::Receiver<AccessEntry>, mut sink: Box<dyn Write + Send>) {
    let mut buf = Vec::with_capacity(FLUSH_BYTES * 2);
    // Drained on a short tick instead of waiting in `recv`: a waiting receiver is woken by every
    // line, and that wake-up (a cross-thread notification from the proxy's workers) would be paid
    // on each request's path.
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match rx.try_recv() {
                Ok(e) => {
                    if serde_json::to_writer(&mut buf, &e.line()).is_ok() {
                        buf.push(b'\n');
                    }
                    if buf.len() >= FLUSH_BYTES {
                        flush(&mut sink, &mut buf);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    flush(&mut sink, &mut buf);
                    return;
                }
            }
        }
        flush(&mut sink, &mut buf);
    }
}

fn flush(sink: &mut Box<dyn Write + Send>, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    // A short blocking write of at most FLUSH_BYTES; the log task is not on any request's path.
    if let Err(e) = sink.write_all(buf).and_then(|()| sink.flush()) {
        tracing::warn!(error = %e, "access log write failed");
    }
    buf.clear();
}
