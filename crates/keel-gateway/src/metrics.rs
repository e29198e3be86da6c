//! The gateway's Prometheus metrics, defined in one place; per-route handles are resolved off the hot path.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every gateway metric family.
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    requests: Family<RouteStatus, Counter>,
    gateway_latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    upstream_latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
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
    by_class: [Counter; 5],
    pub gateway_latency: Histogram,
    pub upstream_latency: Histogram,
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
