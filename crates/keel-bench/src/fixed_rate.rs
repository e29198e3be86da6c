//! An open-loop, fixed-rate load generator (wrk2's idea; wrk2 is not in Debian): every request has an
//! intended send time on a fixed schedule, and a request that could not go then because its
//! connection still waited on the server is charged from that time, so a stalled server is charged for
//! the requests that queued behind the stall (no coordinated omission). One that could go is charged
//! from when it went, so the generator's own timer lag is not counted.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

/// Latencies (ms) of one fixed-rate run.
#[derive(Debug, Clone)]
pub struct FixedRateResult {
    pub latencies_ms: Vec<f64>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl FixedRateResult {
    pub fn achieved_rps(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64()
    }
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends `rate` requests per second in total over `connections` keep-alive connections for `duration`.
pub async fn run(
    addr: SocketAddr,
    path: &str,
    rate: f64,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<FixedRateResult> {
    let start = Instant::now() + Duration::from_millis(50);
    let total = (rate * duration.as_secs_f64()) as u64;
    let uri: hyper::Uri = format!("http://{addr}{path}").parse().context("uri")?;
    let mut tasks = tokio::task::JoinSet::new();
    for conn in 0..connections as u64 {
        let uri = uri.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity((total / connections as u64 + 1) as usize);
            let mut errors = 0u64;
            let mut sender: Option<Sender> = None;
            let mut k = conn;
            while k < total {
                let intended = start + Duration::from_secs_f64(k as f64 / rate);
                // The connection is free (the previous answer is in). If that came after this
                // request's intended send time, the server is behind, and the request is charged from
                // its intended time. Otherwise it waits for that time and is charged from when it
                // goes: tokio's timer wakes up to a millisecond late, a lag of the generator's own
                // that would otherwise be most of every latency measured (the same for every target).
                let charged_from = if Instant::now() >= intended {
                    intended
                } else {
                    tokio::time::sleep_until(intended).await;
                    Instant::now()
                };
                k += connections as u64;
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    sender = connect(addr).await.ok();
                }
                let Some(s) = sender.as_mut() else {
                    errors += 1;
                    continue;
                };
                if s.ready().await.is_err() {
                    sender = None;
                    errors += 1;
                    continue;
                }
                let req = hyper::Request::get(uri.clone())
                    .header(hyper::header::HOST, "127.0.0.1")
                    .body(Empty::<Bytes>::new());
                let Ok(req) = req else {
                    errors += 1;
                    continue;
                };
                let exchange = async {
                    let resp = s.send_request(req).await?;
                    let ok = resp.status().is_success();
                    resp.into_body().collect().await?;
                    Ok::<bool, hyper::Error>(ok)
                };
                // Bounded: a stalled server costs errors, never a hung harness.
                match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
                    Ok(Ok(true)) => latencies.push(charged_from.elapsed().as_secs_f64() * 1000.0),
                    Ok(Ok(false)) => errors += 1,
                    Ok(Err(_)) | Err(_) => {
                        sender = None;
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        });
    }
    let mut result = FixedRateResult {
        latencies_ms: Vec::with_capacity(total as usize),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let (l, e) = joined.context("load task")?;
        result.latencies_ms.extend(l);
        result.errors += e;
    }
    result.elapsed = start.elapsed();
    Ok(result)
}
