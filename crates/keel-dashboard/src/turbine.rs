//! Circuit breakers across services, as Turbine aggregated them: one reader per instance's
//! `/hystrix.stream`, the latest sample per command and host, summed per command key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keel_resilience::CommandRegistry;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transport::SourceError;

/// A source of Hystrix events (`HystrixCommand` / `HystrixThreadPool` JSON objects).
pub trait HystrixSource: Send + Sync {
    /// Events as they arrive; the stream ends when the source does.
    fn events(&self) -> BoxStream<'static, Result<Value, SourceError>>;
}

/// A service's `/hystrix.stream` over HTTP (Server-Sent Events, one `data:` line per event).
#[derive(Clone, Debug)]
pub struct HttpHystrixSource {
    url: String,
}

impl HttpHystrixSource {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into() }
    }
}

impl HystrixSource for HttpHystrixSource {
    fn events(&self) -> BoxStream<'static, Result<Value, SourceError>> {
        let url = self.url.clone();
        let connect = async move {
            let uri: http::Uri =
                url.parse()
                    .map_err(|e: http::uri::InvalidUri| SourceError::BadUrl {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
                .await
                .map_err(|_| SourceError::Unreachable {
                    url: url.clone(),
                    reason: "no answer within 5s".into(),
                })?
                .map_err(|e| SourceError::Unreachable {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            if response.status() == http::StatusCode::NOT_FOUND {
                return Err(SourceError::NotFound {
                    url,
                    message: "no /hystrix.stream here".into(),
                });
            }
            if !response.status().is_success() {
                return Err(SourceError::Failed {
                    url,
                    status: response.status().as_u16(),
                    message: "hystrix stream refused".into(),
                });
            }
            Ok((url, response.into_body()))
        };
        let state = (
            None::<(String, hyper::body::Incoming)>,
            String::new(),
            Some(connect),
        );
        futures_util::stream::unfold(state, |(mut body, mut buffer, mut connect)| async move {
            loop {
                if let Some(c) = connect.take() {
                    match c.await {
                        Ok(b) => body = Some(b),
                        Err(e) => return Some((vec![Err(e)], (None, buffer, None))),
                    }
                }
                let (url, incoming) = body.as_mut()?;
                // Whole events only: an SSE event ends at a blank line.
                if let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let items: Vec<Result<Value, SourceError>> = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .filter_map(|d| serde_json::from_str(d.trim()).ok())
                        .map(Ok)
                        .collect();
                    if items.is_empty() {
                        continue;
                    }
                    return Some((items, (body, buffer, None)));
                }
                match incoming.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            buffer.push_str(&String::from_utf8_lossy(data).replace("\r\n", "\n"));
                        }
                    }
                    Some(Err(e)) => {
                        let err = SourceError::Unreachable {
                            url: url.clone(),
                            reason: e.to_string(),
                        };
                        return Some((vec![Err(err)], (None, buffer, None)));
                    }
                    None => return None,
                }
            }
        })
        .flat_map(futures_util::stream::iter)
        .boxed()
    }
}

/// The command registry of this process, sampled as its `/hystrix.stream` would be.
#[derive(Clone, Debug)]
pub struct LocalHystrixSource {
    registry: CommandRegistry,
    interval: Duration,
}

impl LocalHystrixSource {
    pub fn new(registry: CommandRegistry, interval: Duration) -> Self {
        Self { registry, interval }
    }
}

impl HystrixSource for LocalHystrixSource {
    fn events(&self) -> BoxStream<'static, Result<Value, SourceError>> {
        let registry = self.registry.clone();
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        futures_util::stream::unfold((registry, ticker), |(registry, mut ticker)| async move {
            ticker.tick().await;
            let events: Vec<Result<Value, SourceError>> =
                keel_resilience::hystrix::hystrix_payloads(&registry)
                    .iter()
                    .filter_map(|p| serde_json::from_str(p).ok())
                    .map(Ok)
                    .collect();
            Some((events, (registry, ticker)))
        })
        .flat_map(futures_util::stream::iter)
        .boxed()
    }
}

/// One command key across every host that reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    pub name: String,
    pub group: String,
    /// `service` (from `/hystrix.stream`) or `gateway`.
    pub source: String,
    /// `OPEN` if any host's breaker is open, else `CLOSED` (or the gateway's `HALF_OPEN`).
    pub state: String,
    pub error_percentage: f64,
    pub request_count: u64,
    pub error_count: u64,
    pub short_circuited: u64,
    /// Semaphore and thread-pool rejections in the rolling window.
    pub rejected: u64,
    pub latency_p50_ms: u64,
    pub latency_p99_ms: u64,
    pub reporting_hosts: u64,
    pub hosts: Vec<String>,
}

struct Host {
    commands: BTreeMap<String, Value>,
    /// Set when the host turned out to have no stream; it is not asked again while it stays.
    unsupported: bool,
    task: tokio::task::JoinHandle<()>,
}

/// Readers for a changing set of hosts, and the aggregate of their latest samples.
#[derive(Clone, Default)]
pub struct Turbine {
    hosts: Arc<Mutex<HashMap<String, Host>>>,
}

impl std::fmt::Debug for Turbine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turbine").finish_non_exhaustive()
    }
}

fn lock(hosts: &Mutex<HashMap<String, Host>>) -> std::sync::MutexGuard<'_, HashMap<String, Host>> {
    // Plain data; a panic mid-update leaves at worst a stale sample.
    hosts.lock().unwrap_or_else(|e| e.into_inner())
}

impl Turbine {
    /// Follows exactly `targets` (host key → source): new hosts get a reader, gone hosts are
    /// dropped with their samples.
    pub fn follow(&self, targets: Vec<(String, Arc<dyn HystrixSource>)>) {
        let mut hosts = lock(&self.hosts);
        hosts.retain(|key, host| {
            let keep = targets.iter().any(|(k, _)| k == key);
            if !keep {
                host.task.abort();
            }
            keep
        });
        for (key, source) in targets {
            if hosts.contains_key(&key) {
                continue;
            }
            let task = tokio::spawn(read(self.hosts.clone(), key.clone(), source));
            hosts.insert(
                key,
                Host {
                    commands: BTreeMap::new(),
                    unsupported: false,
                    task,
                },
            );
        }
    }

    /// Hosts currently delivering samples.
    pub fn streaming_hosts(&self) -> Vec<String> {
        let hosts = lock(&self.hosts);
        let mut out: Vec<String> = hosts
            .iter()
            .filter(|(_, h)| !h.unsupported && !h.commands.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// Every command key, summed over hosts as Turbine sums them.
    pub fn breakers(&self) -> Vec<BreakerView> {
        let hosts = lock(&self.hosts);
        let mut by_name: BTreeMap<String, BreakerView> = BTreeMap::new();
        for (host, h) in hosts.iter() {
            for (name, c) in &h.commands {
                let n = |k: &str| c[k].as_u64().unwrap_or(0);
                let b = by_name.entry(name.clone()).or_insert_with(|| BreakerView {
                    name: name.clone(),
                    group: c["group"].as_str().unwrap_or_default().to_owned(),
                    source: "service".to_owned(),
                    state: "CLOSED".to_owned(),
                    error_percentage: 0.0,
                    request_count: 0,
                    error_count: 0,
                    short_circuited: 0,
                    rejected: 0,
                    latency_p50_ms: 0,
                    latency_p99_ms: 0,
                    reporting_hosts: 0,
                    hosts: Vec::new(),
                });
                if c["isCircuitBreakerOpen"].as_bool().unwrap_or(false) {
                    b.state = "OPEN".to_owned();
                }
                b.request_count += n("requestCount");
                b.error_count += n("errorCount");
                b.short_circuited += n("rollingCountShortCircuited");
                b.rejected +=
                    n("rollingCountSemaphoreRejected") + n("rollingCountThreadPoolRejected");
                b.latency_p50_ms = b
                    .latency_p50_ms
                    .max(c["latencyTotal"]["50"].as_u64().unwrap_or(0));
                b.latency_p99_ms = b
                    .latency_p99_ms
                    .max(c["latencyTotal"]["99"].as_u64().unwrap_or(0));
                b.reporting_hosts += 1;
                b.hosts.push(host.clone());
            }
        }
        by_name
            .into_values()
            .map(|mut b| {
                b.hosts.sort();
                b.error_percentage = if b.request_count > 0 {
                    (b.error_count as f64 * 100.0 / b.request_count as f64).round()
                } else {
                    0.0
                };
                b
            })
            .collect()
    }
}

/// Reads one host until it is dropped; reconnects after errors, stops for good on a 404.
async fn read(
    hosts: Arc<Mutex<HashMap<String, Host>>>,
    key: String,
    source: Arc<dyn HystrixSource>,
) {
    loop {
        let mut events = source.events();
        while let Some(event) = events.next().await {
            match event {
                Ok(v) if v["type"] == "HystrixCommand" => {
                    let Some(name) = v["name"].as_str().map(str::to_owned) else {
                        continue;
                    };
                    if let Some(h) = lock(&hosts).get_mut(&key) {
                        h.commands.insert(name, v);
                    }
                }
                Ok(_) => {}
                Err(SourceError::NotFound { .. }) => {
                    if let Some(h) = lock(&hosts).get_mut(&key) {
                        h.unsupported = true;
                        h.commands.clear();
                    }
                    return;
                }
                Err(e) => {
                    tracing::debug!(host = %key, error = %e, "hystrix stream interrupted");
                    break;
                }
            }
        }
        // The host's samples are stale once its stream is gone.
        if let Some(h) = lock(&hosts).get_mut(&key) {
            h.commands.clear();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
