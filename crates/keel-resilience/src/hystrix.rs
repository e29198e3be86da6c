//! Hystrix-compatible `/hystrix.stream`: `HystrixCommand` and `HystrixThreadPool` events with Hystrix's field
//! names (1.5.x `SerialHystrixDashboardData` order), as SSE chunks for Hystrix Dashboard and Turbine.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;

use crate::command::{Command, CommandRegistry};
use crate::event::Event;
use crate::histogram::LatencySnapshot;
use crate::metrics::CommandSnapshot;
use crate::pool::PoolSnapshot;

/// Hystrix's sampling period for the stream (`hystrix.stream.dashboard.intervalInMilliseconds`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// Latency percentiles in milliseconds, keyed as Hystrix keys them.
#[derive(Debug, Serialize)]
struct Percentiles {
    #[serde(rename = "0")]
    p0: u64,
    #[serde(rename = "25")]
    p25: u64,
    #[serde(rename = "50")]
    p50: u64,
    #[serde(rename = "75")]
    p75: u64,
    #[serde(rename = "90")]
    p90: u64,
    #[serde(rename = "95")]
    p95: u64,
    #[serde(rename = "99")]
    p99: u64,
    #[serde(rename = "99.5")]
    p99_5: u64,
    #[serde(rename = "100")]
    p100: u64,
}

impl From<&LatencySnapshot> for Percentiles {
    fn from(l: &LatencySnapshot) -> Self {
        let [p0, p25, p50, p75, p90, p95, p99, p99_5, p100] =
            l.percentiles_micros.map(|us| us / 1000);
        Percentiles {
            p0,
            p25,
            p50,
            p75,
            p90,
            p95,
            p99,
            p99_5,
            p100,
        }
    }
}

#[derive(Debug, Serialize)]
#[allow(non_snake_case, reason = "field names are Hystrix's wire names")]
struct HystrixCommand<'a> {
    r#type: &'static str,
    name: &'a str,
    group: &'a str,
    currentTime: u64,
    isCircuitBreakerOpen: bool,
    errorPercentage: u64,
    errorCount: u64,
    requestCount: u64,
    rollingCountBadRequests: u64,
    rollingCountCollapsedRequests: u64,
    rollingCountEmit: u64,
    rollingCountExceptionsThrown: u64,
    rollingCountFailure: u64,
    rollingCountFallbackEmit: u64,
    rollingCountFallbackFailure: u64,
    rollingCountFallbackMissing: u64,
    rollingCountFallbackRejection: u64,
    rollingCountFallbackSuccess: u64,
    rollingCountResponsesFromCache: u64,
    rollingCountSemaphoreRejected: u64,
    rollingCountShortCircuited: u64,
    rollingCountSuccess: u64,
    rollingCountThreadPoolRejected: u64,
    rollingCountTimeout: u64,
    currentConcurrentExecutionCount: u64,
    rollingMaxConcurrentExecutionCount: u64,
    latencyExecute_mean: u64,
    latencyExecute: Percentiles,
    latencyTotal_mean: u64,
    latencyTotal: Percentiles,
    propertyValue_circuitBreakerRequestVolumeThreshold: u32,
    propertyValue_circuitBreakerSleepWindowInMilliseconds: u64,
    propertyValue_circuitBreakerErrorThresholdPercentage: u32,
    propertyValue_circuitBreakerForceOpen: bool,
    propertyValue_circuitBreakerForceClosed: bool,
    propertyValue_circuitBreakerEnabled: bool,
    propertyValue_executionIsolationStrategy: &'static str,
    propertyValue_executionIsolationThreadTimeoutInMilliseconds: u64,
    propertyValue_executionTimeoutInMilliseconds: u64,
    propertyValue_executionIsolationThreadInterruptOnTimeout: bool,
    propertyValue_executionIsolationThreadPoolKeyOverride: Option<&'a str>,
    propertyValue_executionIsolationSemaphoreMaxConcurrentRequests: usize,
    propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests: usize,
    propertyValue_metricsRollingStatisticalWindowInMilliseconds: u64,
    propertyValue_requestCacheEnabled: bool,
    propertyValue_requestLogEnabled: bool,
    reportingHosts: u32,
    threadPool: &'a str,
}

#[derive(Debug, Serialize)]
#[allow(non_snake_case, reason = "field names are Hystrix's wire names")]
struct HystrixThreadPool<'a> {
    r#type: &'static str,
    name: &'a str,
    currentTime: u64,
    currentActiveCount: usize,
    currentCompletedTaskCount: u64,
    currentCorePoolSize: usize,
    currentLargestPoolSize: usize,
    currentMaximumPoolSize: usize,
    currentPoolSize: usize,
    currentQueueSize: usize,
    currentTaskCount: u64,
    rollingCountThreadsExecuted: u64,
    rollingMaxActiveThreads: u32,
    rollingCountCommandRejections: u64,
    propertyValue_queueSizeRejectionThreshold: usize,
    propertyValue_metricsRollingStatisticalWindowInMilliseconds: u64,
    reportingHosts: u32,
}

/// One `HystrixCommand` JSON object (single line) for `cmd` at wall time `now_ms`.
pub fn command_json(cmd: &Command, now_ms: u64) -> String {
    let s: CommandSnapshot = cmd.snapshot();
    let cfg = cmd.config();
    let b = &cfg.breaker;
    let (forced_open, forced_closed) = cmd.breaker().forced();
    let timeout_ms = cfg.timeout.map_or(0, |t| t.as_millis() as u64);
    let ev = HystrixCommand {
        r#type: "HystrixCommand",
        name: &s.key,
        group: &s.group,
        currentTime: now_ms,
        isCircuitBreakerOpen: s.state != crate::breaker::State::Closed,
        errorPercentage: s.health.error_percentage(),
        errorCount: s.health.errors,
        requestCount: s.health.total,
        rollingCountBadRequests: s.count(Event::BadRequest),
        rollingCountCollapsedRequests: 0,
        rollingCountEmit: 0,
        rollingCountExceptionsThrown: s.count(Event::ExceptionThrown),
        rollingCountFailure: s.count(Event::Failure),
        rollingCountFallbackEmit: 0,
        rollingCountFallbackFailure: s.count(Event::FallbackFailure),
        rollingCountFallbackMissing: s.count(Event::FallbackMissing),
        rollingCountFallbackRejection: s.count(Event::FallbackRejection),
        rollingCountFallbackSuccess: s.count(Event::FallbackSuccess),
        rollingCountResponsesFromCache: 0,
        rollingCountSemaphoreRejected: s.count(Event::SemaphoreRejected),
        rollingCountShortCircuited: s.count(Event::ShortCircuited),
        rollingCountSuccess: s.count(Event::Success),
        rollingCountThreadPoolRejected: s.count(Event::ThreadPoolRejected),
        rollingCountTimeout: s.count(Event::Timeout),
        currentConcurrentExecutionCount: s.concurrent,
        rollingMaxConcurrentExecutionCount: s.rolling_max_concurrent,
        latencyExecute_mean: s.latency_execute.mean_micros / 1000,
        latencyExecute: (&s.latency_execute).into(),
        latencyTotal_mean: s.latency_total.mean_micros / 1000,
        latencyTotal: (&s.latency_total).into(),
        propertyValue_circuitBreakerRequestVolumeThreshold: b.request_volume_threshold,
        propertyValue_circuitBreakerSleepWindowInMilliseconds: b.sleep_window.as_millis() as u64,
        propertyValue_circuitBreakerErrorThresholdPercentage: b.error_threshold_percentage,
        propertyValue_circuitBreakerForceOpen: forced_open,
        propertyValue_circuitBreakerForceClosed: forced_closed,
        propertyValue_circuitBreakerEnabled: b.enabled,
        propertyValue_executionIsolationStrategy: if s.thread_isolated {
            "THREAD"
        } else {
            "SEMAPHORE"
        },
        propertyValue_executionIsolationThreadTimeoutInMilliseconds: timeout_ms,
        propertyValue_executionTimeoutInMilliseconds: timeout_ms,
        // Dropping the future always cancels the work: the closest Hystrix setting is interrupt-on-timeout.
        propertyValue_executionIsolationThreadInterruptOnTimeout: true,
        propertyValue_executionIsolationThreadPoolKeyOverride: cfg.thread_pool_key.as_deref(),
        propertyValue_executionIsolationSemaphoreMaxConcurrentRequests: cmd.bulkhead().max(),
        // Fallbacks are not separately limited; report Hystrix's default so dashboards render.
        propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests: 10,
        propertyValue_metricsRollingStatisticalWindowInMilliseconds: b.rolling_window.as_millis()
            as u64,
        propertyValue_requestCacheEnabled: false,
        propertyValue_requestLogEnabled: false,
        reportingHosts: 1,
        threadPool: &s.pool,
    };
    // Serialising a struct of plain fields cannot fail.
    serde_json::to_string(&ev).unwrap_or_default()
}

/// One `HystrixThreadPool` JSON object (single line).
pub fn thread_pool_json(p: &PoolSnapshot, now_ms: u64) -> String {
    let ev = HystrixThreadPool {
        r#type: "HystrixThreadPool",
        name: &p.name,
        currentTime: now_ms,
        currentActiveCount: p.active,
        currentCompletedTaskCount: p.completed,
        currentCorePoolSize: p.core_size,
        currentLargestPoolSize: p.largest,
        currentMaximumPoolSize: p.core_size,
        currentPoolSize: p.pool_size,
        currentQueueSize: p.queue_size,
        currentTaskCount: p.task_count,
        rollingCountThreadsExecuted: p.rolling_executed,
        rollingMaxActiveThreads: p.rolling_max_active,
        rollingCountCommandRejections: p.rolling_rejected,
        propertyValue_queueSizeRejectionThreshold: p.queue_size_rejection_threshold,
        propertyValue_metricsRollingStatisticalWindowInMilliseconds: p.rolling_window_ms,
        reportingHosts: 1,
    };
    serde_json::to_string(&ev).unwrap_or_default()
}

/// The JSON payloads of one sampling tick: every command, then every pool that has run a task
/// (Hystrix only knows pools once a thread-isolated command used them).
pub fn hystrix_payloads(registry: &CommandRegistry) -> Vec<String> {
    let now = registry.wall_clock().now_millis();
    let mut out: Vec<String> = registry
        .commands()
        .iter()
        .map(|c| command_json(c, now))
        .collect();
    out.extend(
        registry
            .pools()
            .iter()
            .map(|p| p.snapshot())
            .filter(|p| p.task_count > 0)
            .map(|p| thread_pool_json(&p, now)),
    );
    out
}

/// One tick as SSE text: `data: {json}\n\n` per event, or a `ping: \n\n` keep-alive when there is nothing.
pub fn hystrix_sse_chunk(registry: &CommandRegistry) -> Bytes {
    let payloads = hystrix_payloads(registry);
    if payloads.is_empty() {
        return Bytes::from_static(b"ping: \n\n");
    }
    let mut s = String::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
    for p in payloads {
        s.push_str("data: ");
        s.push_str(&p);
        s.push_str("\n\n");
    }
    Bytes::from(s)
}

/// Endless SSE body for `/hystrix.stream`: one chunk now and one per `interval`. Mount it in any server.
pub fn hystrix_stream(
    registry: CommandRegistry,
    interval: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    futures_util::stream::unfold((registry, ticker), |(registry, mut ticker)| async move {
        ticker.tick().await;
        let chunk = hystrix_sse_chunk(&registry);
        Some((Ok(chunk), (registry, ticker)))
    })
}

/// Response headers Hystrix's servlet sends with the stream.
pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream;charset=UTF-8"),
    (
        "cache-control",
        "no-cache, no-store, max-age=0, must-revalidate",
    ),
    ("pragma", "no-cache"),
];

/// `GET /hystrix.stream` (optional `?delay=<ms>`, at least 100 ms) as an axum router to merge into a server.
pub fn hystrix_stream_router(registry: CommandRegistry) -> axum::Router {
    use axum::extract::{Query, State};
    use axum::response::IntoResponse;

    #[derive(serde::Deserialize)]
    struct Params {
        delay: Option<u64>,
    }

    async fn stream(
        State(reg): State<CommandRegistry>,
        Query(p): Query<Params>,
    ) -> impl IntoResponse {
        let interval = p
            .delay
            .map_or(DEFAULT_INTERVAL, |ms| Duration::from_millis(ms.max(100)));
        let headers = HEADERS.map(|(k, v)| {
            (
                http::HeaderName::from_static(k),
                http::HeaderValue::from_static(v),
            )
        });
        (
            headers,
            axum::body::Body::from_stream(hystrix_stream(reg, interval)),
        )
    }

    axum::Router::new()
        .route("/hystrix.stream", axum::routing::get(stream))
        .with_state(registry)
}
