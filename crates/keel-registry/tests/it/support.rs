//! Shared test helpers: instances, clocks, and an in-process server on a real socket.

use std::net::SocketAddr;
use std::sync::Arc;

use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus};
use keel_registry::{Clock, Registry, RegistryConfig};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};

pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// A wall clock that never moves, so encoded timestamps are stable in snapshots.
#[derive(Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now_millis(&self) -> i64 {
        self.0
    }
}

pub fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

pub fn id(raw: &str) -> InstanceId {
    InstanceId::parse(raw).unwrap()
}

/// An UP instance renewing every `interval` s with a lease of `duration` s.
pub fn instance(app_name: &str, instance_id: &str, interval: u32, duration: u32) -> InstanceInfo {
    let mut info = InstanceInfo::new(app(app_name), id(instance_id), "127.0.0.1", "127.0.0.1");
    info.lease_info.renewal_interval_in_secs = interval;
    info.lease_info.duration_in_secs = duration;
    info.vip_address = Some(app_name.to_lowercase());
    info.secure_vip_address = Some(format!("{}-secure", app_name.to_lowercase()));
    info.last_dirty_timestamp = 1000;
    info
}

pub fn statuses(registry: &Registry) -> Vec<(String, InstanceStatus)> {
    registry
        .snapshot()
        .instances()
        .map(|r| (r.info().instance_id.to_string(), r.info().status))
        .collect()
}

/// One registry served over HTTP on 127.0.0.1:0 with the same wrapping `keel` uses.
pub struct TestServer {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub shutdown: Shutdown,
    pub metrics: MetricsRegistry,
    pub health: HealthRegistry,
}

impl TestServer {
    pub async fn start(config: RegistryConfig, clock: Arc<dyn Clock>) -> Self {
        let shutdown = Shutdown::new(ShutdownConfig::default());
        let health = HealthRegistry::new();
        let mut prometheus = prometheus_client::registry::Registry::with_prefix("keel");
        let http_metrics = HttpMetrics::new(&mut prometheus);
        let registry = Registry::new(config, clock);
        registry.observe(&health, &mut prometheus);
        registry.end_streams_on(shutdown.streams_token());
        let metrics = MetricsRegistry::new(prometheus);
        let common = Common {
            shutdown: shutdown.clone(),
            health: health.clone(),
            metrics: metrics.clone(),
            http_metrics,
            limits: HttpLimits::default(),
        };
        let listener = keel_server::bind("registry", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr;
        let app = keel_server::app("registry", keel_registry::router(registry.clone()), &common);
        tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
        Self {
            addr,
            registry,
            shutdown,
            metrics,
            health,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.streams_token().cancel();
    }
}

/// The decompressed body of a gzip response.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}

/// A client that leaves gzip to the test (it asserts on `Content-Encoding` itself).
pub fn client() -> reqwest::Client {
    builder().no_gzip().build().unwrap()
}

/// reqwest is built without a bundled crypto provider; tests use rustls' ring provider.
pub fn builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Polls `check` until it holds or `secs` pass (for eventual behaviour over real time).
pub async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
