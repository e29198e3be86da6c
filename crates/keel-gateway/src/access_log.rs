//! The access log: one JSON line per request, formatted into a per-thread buffer that a writer task
//! drains, so the request path never blocks on I/O.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use keel_balance::InstanceId;

use serde::Serialize;

use crate::metrics::GatewayMetrics;

/// Where access-log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessLogTarget {
    #[default]
    Off,
    Stdout,
    File(PathBuf),
}

/// The instance a request went to: a registry instance id, or a fixed route's address.
#[derive(Debug, Clone)]
pub enum Instance {
    Id(InstanceId),
    Addr(Authority),
}

impl Instance {
    pub fn as_str(&self) -> &str {
        match self {
            Instance::Id(id) => id.as_str(),
            Instance::Addr(a) => a.as_str(),
        }
    }
}

/// One request's line, in field order, borrowed from the request's own records.
#[derive(Serialize)]
pub struct Line<'a> {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub request_id: &'a str,
    pub route: Option<&'a str>,
    pub service: Option<&'a str>,
    pub instance: Option<&'a str>,
    pub method: &'a str,
    /// The normalised path when it differs from the request's, else the request's path.
    pub path: &'a str,
    pub status: u16,
    /// Response body bytes when declared by Content-Length.
    pub bytes: Option<u64>,
    pub total_ms: f64,
    pub upstream_ms: Option<f64>,
    pub client: IpAddr,
    pub attempts: u32,
    /// Why the gateway answered itself: `no_route`, `rate_limited`, `breaker_open`, `fallback`, `no_instance`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// Who decided the route's rate limit: `local`, `redis`, `redis_fail_open`, `redis_fail_closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limiter: Option<&'static str>,
}

/// Sending side; cloning is cheap. Each thread formats its lines into a buffer of its own (one of
/// a few stripes, under a mutex no other request thread takes); a writer task swaps the buffers out
/// on a short tick and writes them, so the request path shares no cache line with other threads and
/// never waits on I/O. Lines past a stripe's bound are dropped (and counted) rather than slowing
/// requests.
#[derive(Debug, Clone)]
pub struct AccessLog {
    stripes: Option<Arc<Stripes>>,
    metrics: GatewayMetrics,
}

#[derive(Debug)]
struct Stripes(Box<[Stripe]>);

/// One stripe's pending lines, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(Mutex<Vec<u8>>);

/// Pending bytes a stripe may hold between two drains before lines are dropped.
const STRIPE_BOUND: usize = 4 * 1024 * 1024;
const DRAIN_EVERY: Duration = Duration::from_millis(50);

fn lock(stripe: &Stripe) -> std::sync::MutexGuard<'_, Vec<u8>> {
    // Plain bytes: a panic mid-line leaves at worst a torn line, never a broken buffer.
    stripe.0.lock().unwrap_or_else(|e| e.into_inner())
}

impl AccessLog {
    /// Starts the writer task (inside a tokio runtime) unless the target is `Off`.
    pub fn start(target: &AccessLogTarget, metrics: GatewayMetrics) -> std::io::Result<Self> {
        let sink: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    stripes: None,
                    metrics,
                });
            }
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let count = crate::metrics::stripe_count();
        let stripes = Arc::new(Stripes((0..count).map(|_| Stripe::default()).collect()));
        tokio::spawn(write_loop(stripes.clone(), sink));
        Ok(AccessLog {
            stripes: Some(stripes),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.stripes.is_some()
    }

    pub fn record(&self, line: &Line<'_>) {
        let Some(stripes) = &self.stripes else {
            return;
        };
        let stripe = &stripes.0[crate::metrics::stripe_index() % stripes.0.len()];
        let mut buf = lock(stripe);
        if buf.len() >= STRIPE_BOUND {
            drop(buf);
            self.metrics.access_log_dropped.inc();
            return;
        }
        if serde_json::to_writer(&mut *buf, line).is_ok() {
            buf.push(b'\n');
        }
    }
}

async fn write_loop(stripes: Arc<Stripes>, mut sink: Box<dyn Write + Send>) {
    let mut spare: Vec<u8> = Vec::new();
    let mut tick = tokio::time::interval(DRAIN_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Once every sender is gone, this is the last drain.
        let last = Arc::strong_count(&stripes) == 1;
        for stripe in stripes.0.iter() {
            {
                let mut buf = lock(stripe);
                if buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buf, &mut spare);
            }
            flush(&mut sink, &mut spare);
        }
        if last {
            return;
        }
    }
}

fn flush(sink: &mut Box<dyn Write + Send>, buf: &mut Vec<u8>) {
    if buf.is_empty() {
        return;
    }
    // A short blocking write of what one stripe gathered in one tick; the log task is not on any
    // request's path.
    if let Err(e) = sink.write_all(buf).and_then(|()| sink.flush()) {
        tracing::warn!(error = %e, "access log write failed");
    }
    buf.clear();
}
