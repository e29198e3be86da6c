//! `LbClient`: HTTP for `lb://service/path` URLs. Each call goes through one tower stack per
//! service, built in [`service_stack`]: command (breaker, bulkhead, overall timeout, metrics) →
//! retry (budgeted, idempotent only, elsewhere) → balancer (P2C peak-EWMA, outlier ejection) →
//! per-attempt timeout → reqwest.
//!
//! reqwest rather than hyper-util's client: instances and registries may be HTTPS, and reqwest
//! brings rustls (ring, no aws-lc), pooling and gzip, and is already a workspace dependency.

mod balance;
mod error;
mod request;
mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Method;
use keel_balance::{Balancer, BalancerConfig};
use keel_eureka::AppName;
use keel_resilience::layer::{BoxError, BudgetedRetry, CommandLayer, TimeoutLayer};
use keel_resilience::{Backoff, CommandConfig, CommandRegistry, RetryBudget};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

pub use balance::{Endpoint, ServiceStats};
pub use error::{CallError, NoInstances, UpstreamStatus};
pub use request::{LbRequest, RequestBuilder};
pub use transport::{Outgoing, Transport};

use crate::discovery::Discovery;
use balance::BalanceLayer;

/// Settings for [`LbClient`], applied to every service it calls.
#[derive(Debug, Clone)]
pub struct LbClientConfig {
    pub balancer: BalancerConfig,
    /// The per-service command: breaker, bulkhead, and the timeout of a whole call (retries
    /// included).
    pub command: CommandConfig,
    /// Time limit of one attempt on one instance.
    pub attempt_timeout: Duration,
    /// Retries after the first attempt, and the pause before each (full jitter).
    pub backoff: Backoff,
    /// Retries are capped to `ratio` of calls plus `min_per_sec` per second over `window`.
    pub budget_window: Duration,
    pub budget_min_per_sec: u32,
    pub budget_ratio: f32,
    pub connect_timeout: Duration,
}

impl Default for LbClientConfig {
    fn default() -> Self {
        Self {
            balancer: BalancerConfig::default(),
            command: CommandConfig {
                timeout: Some(Duration::from_secs(5)),
                max_concurrent_requests: 200,
                ..CommandConfig::default()
            },
            attempt_timeout: Duration::from_secs(2),
            backoff: Backoff {
                base: Duration::from_millis(25),
                max: Duration::from_millis(250),
                max_retries: 2,
            },
            budget_window: Duration::from_secs(10),
            budget_min_per_sec: 10,
            budget_ratio: 0.2,
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The stack one service's calls go through.
pub type ServiceStack = BoxCloneSyncService<LbRequest, http::Response<Bytes>, BoxError>;

/// What one service's stack shares across calls.
pub struct ServiceParts {
    pub command: keel_resilience::Command,
    pub budget: Arc<RetryBudget>,
    pub backoff: Backoff,
    pub balancer: Arc<Balancer<Endpoint>>,
    pub stats: Arc<ServiceStats>,
    pub attempt_timeout: Duration,
    pub transport: Transport,
}

/// The whole request path of one service, outermost layer first.
pub fn service_stack(parts: ServiceParts) -> ServiceStack {
    let retryable = |req: &LbRequest, result: &Result<http::Response<Bytes>, BoxError>| {
        req.safety.retryable() && result.as_ref().is_err_and(error::is_retryable_failure)
    };
    let stack = ServiceBuilder::new()
        // Hystrix command keyed by service: its breaker opens when the service as a whole fails,
        // its bulkhead caps calls in flight, its timeout bounds the call with every retry, and its
        // metrics (counts and latency percentiles) feed /hystrix.stream. Outside the retries, so
        // a rescued call is a success. A request sent with `send_or` brings its fallback, which
        // runs inside the command and is counted there.
        .layer(CommandLayer::new(parts.command).fallback(request::take_fallback))
        // Retries: only idempotent or marked-safe requests, only for failures an instance can
        // cause (connect errors, attempt timeouts, 502/503/504), with jittered backoff, within
        // the service's retry budget so an outage cannot multiply load.
        .layer(tower::retry::RetryLayer::new(BudgetedRetry::new(
            parts.budget,
            parts.backoff,
            retryable,
        )))
        // Instance choice per attempt: P2C over peak EWMA, skipping ejected outliers and the
        // instances this call already tried; latency and failures feed back into the choice.
        .layer(BalanceLayer::new(parts.balancer, parts.stats))
        // One attempt's limit, inside the balancer so a hung instance is charged for it and the
        // retry still has time to go elsewhere.
        .layer(TimeoutLayer::new(parts.attempt_timeout))
        // The wire: pooled keep-alive connections, rustls for https instances.
        .service(parts.transport);
    BoxCloneSyncService::new(stack)
}

/// One service's stack and the parts tests and endpoints read.
struct ServiceHandle {
    stack: ServiceStack,
    budget: Arc<RetryBudget>,
    stats: Arc<ServiceStats>,
    balancer: Arc<Balancer<Endpoint>>,
}

/// Calls and retries of one service (since start) and the retry budget's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStats {
    pub calls: u64,
    pub retries: u64,
    /// `(calls, retries)` inside the budget's rolling window.
    pub budget_window: (u64, u64),
    /// Instances the balancer knows.
    pub instances: usize,
}

/// An HTTP client for `lb://` URLs. Cheap to clone.
#[derive(Clone)]
pub struct LbClient {
    inner: Arc<Inner>,
}

struct Inner {
    discovery: Arc<dyn Discovery>,
    transport: Transport,
    commands: CommandRegistry,
    config: LbClientConfig,
    services: ArcSwap<HashMap<AppName, Arc<ServiceHandle>>>,
    create: std::sync::Mutex<()>,
}

impl std::fmt::Debug for LbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbClient").finish_non_exhaustive()
    }
}

impl LbClient {
    pub fn new(
        discovery: Arc<dyn Discovery>,
        config: LbClientConfig,
    ) -> Result<Self, crate::ClientBuildError> {
        crate::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()?;
        Ok(Self::with_http(
            discovery,
            config,
            http,
            CommandRegistry::new(),
        ))
    }

    /// With a caller-built reqwest client and a shared command registry (the one the process's
    /// `/hystrix.stream` reads).
    pub fn with_http(
        discovery: Arc<dyn Discovery>,
        config: LbClientConfig,
        http: reqwest::Client,
        commands: CommandRegistry,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                discovery,
                transport: Transport::new(http),
                commands,
                config,
                services: ArcSwap::default(),
                create: std::sync::Mutex::new(()),
            }),
        }
    }

    /// The commands (one per service called) for `/hystrix.stream`.
    pub fn commands(&self) -> &CommandRegistry {
        &self.inner.commands
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        RequestBuilder {
            client: self.clone(),
            request: LbRequest::new(method, url),
        }
    }

    pub fn get(&self, url: &str) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Sends `request` through its service's stack. A 5xx that survives retries is an error
    /// ([`CallError::Status`]); a 4xx is the service's answer and comes back as `Ok`.
    pub async fn send(&self, request: LbRequest) -> Result<http::Response<Bytes>, CallError> {
        let app = request.app.clone();
        let stack = self.service(&app).stack.clone();
        stack
            .oneshot(request)
            .await
            .map_err(|e| CallError::from_stack(app, e))
    }

    /// Like [`LbClient::send`], answering with `fallback(error)` when the call fails; the
    /// fallback runs inside the service's command and is counted in its Hystrix metrics.
    pub async fn send_or<F, Fut>(&self, request: LbRequest, fallback: F) -> http::Response<Bytes>
    where
        F: FnOnce(CallError) -> Fut + Send + 'static,
        Fut: Future<Output = http::Response<Bytes>> + Send + 'static,
    {
        let app = request.app.clone();
        let for_fallback = app.clone();
        request.fallback.set(Box::new(move |cause| {
            let error = CallError::from_stack(for_fallback, cause.into_box_error());
            Box::pin(async move { Ok(fallback(error).await) })
        }));
        match self.service(&app).stack.clone().oneshot(request).await {
            Ok(response) => response,
            // Only if the fallback itself failed, which ours cannot: a bare 503 keeps the signature total.
            Err(e) => {
                tracing::warn!(app = %app, error = %e, "fallback failed");
                let mut response = http::Response::new(Bytes::new());
                *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                response
            }
        }
    }

    /// Counters of one service, if it has been called.
    pub fn stats(&self, app: &AppName) -> Option<CallStats> {
        let services = self.inner.services.load();
        let s = services.get(app)?;
        Some(CallStats {
            calls: s.stats.calls.load(Ordering::Relaxed),
            retries: s.stats.retries.load(Ordering::Relaxed),
            budget_window: s.budget.usage(),
            instances: s.balancer.instances().len(),
        })
    }

    fn service(&self, app: &AppName) -> Arc<ServiceHandle> {
        if let Some(s) = self.inner.services.load().get(app) {
            return s.clone();
        }
        let _creating = self
            .inner
            .create
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = self.inner.services.load().get(app) {
            return s.clone();
        }
        let handle = Arc::new(self.build(app));
        let mut map = HashMap::clone(&self.inner.services.load());
        map.insert(app.clone(), handle.clone());
        self.inner.services.store(Arc::new(map));
        handle
    }

    fn build(&self, app: &AppName) -> ServiceHandle {
        let config = &self.inner.config;
        let mut rx = self.inner.discovery.subscribe(app);
        let balancer = Arc::new(Balancer::new(
            config.balancer.clone(),
            balance::specs(&rx.borrow_and_update()),
        ));
        // Keeps the balancer's list in step with discovery until the client drops it.
        let weak = Arc::downgrade(&balancer);
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(balancer) = weak.upgrade() else {
                    break;
                };
                balancer.update(balance::specs(&rx.borrow_and_update()));
            }
        });
        let budget = Arc::new(RetryBudget::new(
            config.budget_window,
            config.budget_min_per_sec,
            config.budget_ratio,
        ));
        let stats = Arc::new(ServiceStats::default());
        let stack = service_stack(ServiceParts {
            command: self
                .inner
                .commands
                .command(app.as_str(), config.command.clone()),
            budget: budget.clone(),
            backoff: config.backoff,
            balancer: balancer.clone(),
            stats: stats.clone(),
            attempt_timeout: config.attempt_timeout,
            transport: self.inner.transport.clone(),
        });
        ServiceHandle {
            stack,
            budget,
            stats,
            balancer,
        }
    }
}
