//! The access log: one JSON line per request, formatted into a per-thread buffer that a writer task
//! drains, so the request path never blocks on I/O.

use std::cell::Cell;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

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

/// The instance a request went to: a registry instance id, or the address of the route's own URI.
#[derive(Debug, Clone)]
pub enum Instance {
    Id(InstanceId),
    RouteUri,
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
    /// Written as `total_ms`, milliseconds with microsecond precision.
    #[serde(rename = "total_ms", serialize_with = "ms")]
    pub total_us: u64,
    /// Written as `upstream_ms`.
    #[serde(rename = "upstream_ms", serialize_with = "opt_ms")]
    pub upstream_us: Option<u64>,
    pub client: IpAddr,
    pub attempts: u32,
    /// Why the gateway answered itself: `no_route`, `rate_limited`, `breaker_open`, `fallback`, `no_instance`…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// Who decided the route's rate limit: `local`, `redis`, `redis_fail_open`, `redis_fail_closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limiter: Option<&'static str>,
}

fn ms<S: serde::Serializer>(us: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*us as f64 / 1000.0)
}

fn opt_ms<S: serde::Serializer>(us: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match us {
        Some(us) => ms(us, s),
        None => s.serialize_none(),
    }
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
        line.write_json(&mut buf);
        buf.push(b'\n');
    }
}

impl Line<'_> {
    /// Appends the line as one JSON object, fields in declaration order, as `serde_json` writes it.
    ///
    /// Written by hand because it runs for every request: `serde_json` escapes strings a byte at a
    /// time and formats the address and the latencies through `core::fmt`, together about a tenth of
    /// the proxy's own instructions per request. Strings that need escaping still go through `serde_json`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut int = itoa::Buffer::new();
        out.extend_from_slice(b"{\"ts\":");
        out.extend_from_slice(int.format(self.ts).as_bytes());
        out.extend_from_slice(b",\"request_id\":");
        json_str(out, self.request_id);
        out.extend_from_slice(b",\"route\":");
        json_opt_str(out, self.route);
        out.extend_from_slice(b",\"service\":");
        json_opt_str(out, self.service);
        out.extend_from_slice(b",\"instance\":");
        json_opt_str(out, self.instance);
        out.extend_from_slice(b",\"method\":");
        json_str(out, self.method);
        out.extend_from_slice(b",\"path\":");
        json_str(out, self.path);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(int.format(self.status).as_bytes());
        out.extend_from_slice(b",\"bytes\":");
        match self.bytes {
            Some(n) => out.extend_from_slice(int.format(n).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"total_ms\":");
        json_ms(out, self.total_us);
        out.extend_from_slice(b",\"upstream_ms\":");
        match self.upstream_us {
            Some(us) => json_ms(out, us),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"client\":\"");
        match self.client {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(int.format(octet).as_bytes());
                }
            }
            // Display never needs escaping.
            IpAddr::V6(v6) => {
                let _ = write!(out, "{v6}");
            }
        }
        out.extend_from_slice(b"\",\"attempts\":");
        out.extend_from_slice(int.format(self.attempts).as_bytes());
        if let Some(d) = self.decision {
            out.extend_from_slice(b",\"decision\":");
            json_str(out, d);
        }
        if let Some(l) = self.limiter {
            out.extend_from_slice(b",\"limiter\":");
            json_str(out, l);
        }
        out.push(b'}');
    }
}

/// Milliseconds since the Unix epoch at `at`, an instant on tokio's clock: the wall clock is read
/// once a second per thread and the request's own clock reading carries it forward, so a line's
/// timestamp costs no clock read of its own.
pub fn unix_millis(at: tokio::time::Instant) -> u64 {
    thread_local! {
        static ANCHOR: Cell<Option<(tokio::time::Instant, u64)>> = const { Cell::new(None) };
    }
    ANCHOR.with(|anchor| {
        if let Some((base, ms)) = anchor.get()
            && let Some(since) = at.checked_duration_since(base)
            && since < Duration::from_secs(1)
        {
            return ms + since.as_millis() as u64;
        }
        let now = tokio::time::Instant::now();
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        anchor.set(Some((now, ms)));
        // `at` is at most a moment before `now`.
        ms.saturating_sub(now.saturating_duration_since(at).as_millis() as u64)
    })
}

/// A JSON string: copied as it is unless a byte needs escaping, which `serde_json` then does.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // A fold without early exit, so the compiler checks many bytes at once.
    if s.bytes().fold(false, |esc, b| {
        esc | (b < 0x20) | (b == b'"') | (b == b'\\')
    }) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

fn json_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Whole microseconds as milliseconds with at most three decimals and at least one (`0.852`, `1.5`,
/// `2.0`), the number `serde_json` prints for `us as f64 / 1000.0`.
fn json_ms(out: &mut Vec<u8>, us: u64) {
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(int.format(us / 1000).as_bytes());
    out.push(b'.');
    let frac = us % 1000;
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let keep = if digits[2] != b'0' {
        3
    } else if digits[1] != b'0' {
        2
    } else {
        1
    };
    out.extend_from_slice(&digits[..keep]);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, route: Option<&'a str>, client: IpAddr, us: u64) -> Line<'a> {
        Line {
            ts: 1_764_500_000_123,
            request_id: "0123456789abcdef0123456789abcdef",
            route,
            service: None,
            instance: Some("127.0.0.1:8081"),
            method: "GET",
            path,
            status: 200,
            bytes: us.is_multiple_of(2).then_some(us),
            total_us: us,
            upstream_us: (!us.is_multiple_of(3)).then_some(us / 2),
            client,
            attempts: 1,
            decision: us.is_multiple_of(5).then_some("fallback"),
            limiter: us.is_multiple_of(7).then_some("local"),
        }
    }

    #[test]
    fn the_hand_written_line_is_byte_for_byte_what_serde_json_writes() {
        let clients: [IpAddr; 3] = [
            "127.0.0.1".parse().unwrap(),
            "10.200.3.45".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let paths = ["/a/b", "/q\"uote\\back\u{1}\ttab", "/ünï/códe", ""];
        let routes = [None, Some("backend"), Some("we\"ird")];
        let latencies = [0, 1, 10, 100, 852, 1000, 1500, 2010, 999_999, 123_456_789];
        let mut checked = 0;
        for client in clients {
            for path in paths {
                for route in routes {
                    for us in latencies {
                        let l = line(path, route, client, us);
                        let mut ours = Vec::new();
                        l.write_json(&mut ours);
                        let reference = serde_json::to_vec(&l).unwrap();
                        assert_eq!(
                            String::from_utf8_lossy(&ours),
                            String::from_utf8_lossy(&reference)
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 4 * 3 * 10);
    }
}
