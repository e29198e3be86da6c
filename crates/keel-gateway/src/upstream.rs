//! Services behind the gateway: their instances (balanced), breaker, adaptive limit and retry budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::uri::{Authority, Scheme};
use keel_balance::{Balancer, InstanceSpec};
use keel_resilience::{AdaptiveLimit, CircuitBreaker, RetryBudget};
use prometheus_client::metrics::gauge::Gauge;

use crate::config::GatewayConfig;
use crate::metrics::{GatewayMetrics, ServiceMetrics};

/// Where to send a request: scheme and `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Speaks HTTP/2 without TLS (instance metadata `protocol: h2c`).
    pub h2c: bool,
}

impl Endpoint {
    pub fn http(addr: std::net::SocketAddr) -> Self {
        // A SocketAddr always renders as a valid authority.
        let authority =
            Authority::try_from(addr.to_string()).expect("socket address is a valid authority");
        Endpoint {
            scheme: Scheme::HTTP,
            authority,
            h2c: false,
        }
    }
}

/// One service, by lower-case id.
#[derive(Debug)]
pub struct Service {
    pub id: Arc<str>,
    pub balancer: Balancer<Endpoint>,
    pub breaker: CircuitBreaker,
    pub limit: Option<Arc<AdaptiveLimit>>,
    pub budget: RetryBudget,
    pub metrics: ServiceMetrics,
    /// Its `/{id}/**` route, built on first use.
    pub discovery_route: std::sync::OnceLock<Arc<crate::table::Route>>,
    count: AtomicUsize,
}

impl Service {
    /// Instances currently known.
    pub fn instance_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn publish_state(&self) {
        // Stored only on a change: a store on every call would bounce the gauges' cache lines
        // between the workers for nothing.
        let set = |gauge: &Gauge, v: i64| {
            if gauge.get() != v {
                gauge.set(v);
            }
        };
        set(&self.metrics.breaker_state, self.breaker.state().as_gauge());
        if let Some(l) = &self.limit {
            set(&self.metrics.concurrency_limit, l.limit() as i64);
        }
    }
}

/// The directory of services; reads are lock-free snapshots, writes (registry updates) are serialised.
#[derive(Debug)]
pub struct Services {
    map: ArcSwap<HashMap<Arc<str>, Arc<Service>>>,
    write: Mutex<()>,
    config: GatewayConfig,
    metrics: GatewayMetrics,
}

impl Services {
    pub fn new(config: GatewayConfig, metrics: GatewayMetrics) -> Self {
        Services {
            map: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
            config,
            metrics,
        }
    }

    /// The service with this id (any case; the registry stores ids upper-case).
    #[inline]
    pub fn get(&self, id: &str) -> Option<Arc<Service>> {
        let map = self.map.load();
        if id.bytes().any(|b| b.is_ascii_uppercase()) {
            map.get(id.to_ascii_lowercase().as_str()).cloned()
        } else {
            map.get(id).cloned()
        }
    }

    /// Every service, sorted by id.
    pub fn all(&self) -> Vec<Arc<Service>> {
        let mut v: Vec<_> = self.map.load().values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The service with this id, created (with no instances) if unknown.
    pub fn get_or_create(&self, id: &str) -> Arc<Service> {
        if let Some(s) = self.get(id) {
            return s;
        }
        let _w = self.write.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = self.get(id) {
            return s;
        }
        let service = self.detached(id);
        service.publish_state();
        let mut next = HashMap::clone(&self.map.load());
        next.insert(service.id.clone(), service.clone());
        self.map.store(Arc::new(next));
        service
    }

    /// A service that is not (yet) in the directory, for dry-run compiles.
    pub fn detached(&self, id: &str) -> Arc<Service> {
        let id: Arc<str> = id.to_ascii_lowercase().into();
        let c = &self.config;
        Arc::new(Service {
            id: id.clone(),
            balancer: Balancer::new(c.balancer.clone(), Vec::new()),
            breaker: CircuitBreaker::new(c.breaker.clone()),
            limit: c.concurrency_limit.map(|l| Arc::new(AdaptiveLimit::new(l))),
            budget: RetryBudget::new(
                Duration::from_secs(10),
                c.retry_budget_min_per_sec,
                c.retry_budget_ratio,
            ),
            metrics: self.metrics.service(&id),
            discovery_route: std::sync::OnceLock::new(),
            count: AtomicUsize::new(0),
        })
    }

    /// Replaces one service's instances; balancer stats survive for instances with the same id.
    pub fn set_instances(&self, id: &str, instances: Vec<InstanceSpec<Endpoint>>) {
        let service = self.get_or_create(id);
        service.count.store(instances.len(), Ordering::Relaxed);
        service.metrics.instances.set(instances.len() as i64);
        service.balancer.update(instances);
    }

    /// Replaces every service's instances; services missing from `all` are left with none.
    pub fn replace_all(&self, all: HashMap<String, Vec<InstanceSpec<Endpoint>>>) {
        let all: HashMap<String, _> = all
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for s in self.all() {
            if !all.contains_key(s.id.as_ref()) && s.instance_count() > 0 {
                self.set_instances(&s.id, Vec::new());
            }
        }
        for (id, list) in all {
            self.set_instances(&id, list);
        }
    }
}
