//! The access log: one JSON line per request, handed to a writer task so the request path never blocks on I/O.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

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

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessEntry {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub request_id: String,
    pub route: Option<String>,
    pub service: Option<String>,
    pub instance: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Response body bytes when declared by Content-Length.
    pub bytes: Option<u64>,
    pub total_ms: f64,
    pub upstream_ms: Option<f64>,
    pub client: String,
    pub attempts: u32,
    /// Why the gateway answered itself: `no_route`, `rate_limited`, `breaker_open`, `fallback`, `no_instance`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
}

/// Sending side; cloning is cheap. Lines are dropped (and counted) rather than slowing requests.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<AccessEntry>>,
    metrics: GatewayMetrics,
}

const QUEUE: usize = 16 * 1024;
const FLUSH_BYTES: usize = 32 * 1024;

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
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(e) => {
                    if serde_json::to_writer(&mut buf, &e).is_ok() {
                        buf.push(b'\n');
                    }
                    if buf.len() < FLUSH_BYTES {
                        continue;
                    }
                }
                None => {
                    flush(&mut sink, &mut buf);
                    return;
                }
            },
            _ = tick.tick() => {}
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
