//! The gateway's Prometheus metrics, defined in one place; per-route handles are resolved off the hot path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    pub route: String,
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoutePolicy {
    pub route: String,
    /// `open` or `closed`.
    pub policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

/// Latency buckets: 0.5 ms doubling to ~16 s, then +Inf.
const BUCKETS: usize = 16;

fn latency() -> Striped<HistogramCells> {
    Striped::default()
}

/// This thread's stripe, handed out in order as threads first record something. Per-request
/// metrics and the access log write to their thread's stripe, so the gateway's workers share no
/// written cache line on the request path; scrapes (and the log writer) sum or drain the stripes.
pub(crate) fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    INDEX.with(|i| *i)
}

/// Stripes per metric: twice the CPUs, so threads rarely share one.
pub(crate) fn stripe_count() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2)
}

/// A metric kept as per-thread cells (see [`stripe_index`]) and summed when scraped. Cloning shares it.
#[derive(Debug)]
pub struct Striped<C>(Arc<[Padded<C>]>);

impl<C> Clone for Striped<C> {
    fn clone(&self) -> Self {
        Striped(self.0.clone())
    }
}

/// One stripe on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<C>(C);

impl<C: Default> Default for Striped<C> {
    fn default() -> Self {
        Striped((0..stripe_count()).map(|_| Padded::default()).collect())
    }
}

impl<C> Striped<C> {
    #[inline]
    fn mine(&self) -> &C {
        &self.0[stripe_index() % self.0.len()].0
    }
}

/// A counter's cell.
#[derive(Debug, Default)]
pub struct CounterCell(AtomicU64);

impl Striped<CounterCell> {
    #[inline]
    pub fn inc(&self) {
        self.mine().0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.iter().map(|c| c.0.0.load(Ordering::Relaxed)).sum()
    }
}

impl TypedMetric for Striped<CounterCell> {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Striped<CounterCell> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.get(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// A latency histogram's cell: observation count, sum (f64 bits) and a count per bucket.
#[derive(Debug, Default)]
pub struct HistogramCells {
    count: AtomicU64,
    sum: AtomicU64,
    buckets: [AtomicU64; BUCKETS + 1],
}

/// The upper bound of bucket `i` (the last is +Inf).
fn bound(i: usize) -> f64 {
    if i >= BUCKETS {
        f64::INFINITY
    } else {
        0.0005 * f64::from(1u32 << i)
    }
}

impl Striped<HistogramCells> {
    #[inline]
    pub fn observe(&self, v: f64) {
        let cell = self.mine();
        let i = (0..BUCKETS).find(|&i| v <= bound(i)).unwrap_or(BUCKETS);
        cell.buckets[i].fetch_add(1, Ordering::Relaxed);
        cell.count.fetch_add(1, Ordering::Relaxed);
        // The stripe is this thread's: the update loop practically never retries.
        let _ = cell
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Sum, count and per-bucket counts over every stripe.
    fn totals(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = (0..=BUCKETS).map(|i| (bound(i), 0)).collect();
        let (mut sum, mut count) = (0.0, 0);
        for cell in self.0.iter() {
            let cell = &cell.0;
            sum += f64::from_bits(cell.sum.load(Ordering::Relaxed));
            count += cell.count.load(Ordering::Relaxed);
            for (b, c) in buckets.iter_mut().zip(&cell.buckets) {
                b.1 += c.load(Ordering::Relaxed);
            }
        }
        (sum, count, buckets)
    }
}

impl TypedMetric for Striped<HistogramCells> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Striped<HistogramCells> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A striped per-route counter.
pub type StripedCounter = Striped<CounterCell>;
/// A striped per-route latency histogram.
pub type StripedHistogram = Striped<HistogramCells>;

/// Every gateway metric family.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    requests: Family<RouteStatus, StripedCounter>,
    gateway_latency: Family<RouteLabel, StripedHistogram, fn() -> StripedHistogram>,
    upstream_latency: Family<RouteLabel, StripedHistogram, fn() -> StripedHistogram>,
    rate_limited: Family<RouteLabel, Counter>,
    rate_limiter_unavailable: Family<RoutePolicy, Counter>,
    retries: Family<RouteLabel, Counter>,
    pub(crate) breaker_state: Family<ServiceLabel, Gauge>,
    pub(crate) instances: Family<ServiceLabel, Gauge>,
    pub(crate) concurrency_limit: Family<ServiceLabel, Gauge>,
    pub(crate) access_log_dropped: Counter,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        GatewayMetrics {
            requests: Family::default(),
            gateway_latency: Family::new_with_constructor(latency),
            upstream_latency: Family::new_with_constructor(latency),
            rate_limited: Family::default(),
            rate_limiter_unavailable: Family::default(),
            retries: Family::default(),
            breaker_state: Family::default(),
            instances: Family::default(),
            concurrency_limit: Family::default(),
            access_log_dropped: Counter::default(),
        }
    }
}

impl GatewayMetrics {
    /// Registers every family under `gateway_` in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("gateway");
        r.register(
            "requests",
            "Requests by route and status class",
            self.requests.clone(),
        );
        r.register(
            "latency_seconds",
            "Time in the gateway from request to response head",
            self.gateway_latency.clone(),
        );
        r.register(
            "upstream_latency_seconds",
            "Time waiting for the upstream response head",
            self.upstream_latency.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused by the route's rate limiter",
            self.rate_limited.clone(),
        );
        r.register(
            "rate_limiter_unavailable",
            "Requests whose Redis rate-limit check failed (unreachable, or slower than gateway.redis-timeout), \
             by route and the policy applied (open: admitted uncounted, closed: refused)",
            self.rate_limiter_unavailable.clone(),
        );
        r.register(
            "retries",
            "Attempts retried on another instance",
            self.retries.clone(),
        );
        r.register(
            "breaker_state",
            "Service circuit breaker: 0 closed, 1 open, 2 half-open",
            self.breaker_state.clone(),
        );
        r.register(
            "instances",
            "Instances known per service",
            self.instances.clone(),
        );
        r.register(
            "concurrency_limit",
            "Adaptive concurrency limit per service",
            self.concurrency_limit.clone(),
        );
        r.register(
            "access_log_dropped",
            "Access-log lines dropped because the writer fell behind",
            self.access_log_dropped.clone(),
        );
    }

    /// The handles one route uses per request (cloned counters, so no family lock on the hot path).
    pub fn route(&self, route: &str) -> RouteMetrics {
        let status = |class| {
            self.requests.get_or_create_owned(&RouteStatus {
                route: route.to_owned(),
                class,
            })
        };
        let label = RouteLabel {
            route: route.to_owned(),
        };
        RouteMetrics {
            by_class: [
                status("1xx"),
                status("2xx"),
                status("3xx"),
                status("4xx"),
                status("5xx"),
            ],
            gateway_latency: self.gateway_latency.get_or_create_owned(&label),
            upstream_latency: self.upstream_latency.get_or_create_owned(&label),
            rate_limited: self.rate_limited.get_or_create_owned(&label),
            retries: self.retries.get_or_create_owned(&label),
        }
    }

    /// A Redis-limited route's counter of checks decided by its fail policy.
    pub fn limiter_unavailable(&self, route: &str, fail_open: bool) -> Counter {
        self.rate_limiter_unavailable
            .get_or_create_owned(&RoutePolicy {
                route: route.to_owned(),
                policy: if fail_open { "open" } else { "closed" },
            })
    }

    pub fn service(&self, service: &str) -> ServiceMetrics {
        let label = ServiceLabel {
            service: service.to_owned(),
        };
        ServiceMetrics {
            breaker_state: self.breaker_state.get_or_create_owned(&label),
            instances: self.instances.get_or_create_owned(&label),
            concurrency_limit: self.concurrency_limit.get_or_create_owned(&label),
        }
    }
}

/// One route's metric handles.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    by_class: [StripedCounter; 5],
    pub gateway_latency: StripedHistogram,
    pub upstream_latency: StripedHistogram,
    pub rate_limited: Counter,
    pub retries: Counter,
}

impl RouteMetrics {
    #[inline]
    pub fn count(&self, status: u16) {
        let i = usize::from((status / 100).clamp(1, 5) - 1);
        self.by_class[i].inc();
    }
}

/// One service's metric handles.
#[derive(Clone, Debug)]
pub struct ServiceMetrics {
    pub breaker_state: Gauge,
    pub instances: Gauge,
    pub concurrency_limit: Gauge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_metrics_sum_every_thread_in_prometheus_text() {
        let metrics = GatewayMetrics::default();
        let mut registry = Registry::with_prefix("keel");
        metrics.register(&mut registry);
        let route = metrics.route("r1");
        std::thread::scope(|s| {
            for _ in 0..3 {
                let route = route.clone();
                s.spawn(move || {
                    route.count(200);
                    route.gateway_latency.observe(0.0004);
                    route.gateway_latency.observe(0.003);
                });
            }
        });
        route.count(503);
        route.gateway_latency.observe(100.0);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"keel_gateway_requests_total{route="r1",class="2xx"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keel_gateway_requests_total{route="r1",class="5xx"} 1"#),
            "{text}"
        );
        // Cumulative buckets: 3 at or under 0.5 ms, 6 at or under 4 ms, all 7 under +Inf.
        for (le, n) in [("0.0005", 3), ("0.004", 6), ("16.384", 6), ("+Inf", 7)] {
            let line =
                format!(r#"keel_gateway_latency_seconds_bucket{{le="{le}",route="r1"}} {n}"#);
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(
            text.contains(r#"keel_gateway_latency_seconds_count{route="r1"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keel_gateway_latency_seconds_sum{route="r1"} 100.0102"#),
            "{text}"
        );
    }
}
