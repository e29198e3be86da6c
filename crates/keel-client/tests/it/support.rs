//! Shared helpers: the real registry on a socket, instances, a dead URL, and polling waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_client::{InstanceConfig, RegistryUrls};
use keel_eureka::AppName;
use keel_registry::{Registry, RegistryConfig, SystemClock};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};

pub fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

/// The real registry component on 127.0.0.1:0, wrapped as `keel registry` wraps it.
pub struct RegistryServer {
    pub addr: SocketAddr,
    pub registry: Registry,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<()>,
}

impl RegistryServer {
    pub async fn start() -> Self {
        let shutdown = Shutdown::new(ShutdownConfig {
            drain_timeout: Duration::from_millis(200),
            ..ShutdownConfig::default()
        });
        let mut prometheus = prometheus_client_registry();
        let http_metrics = HttpMetrics::new(&mut prometheus);
        let registry = Registry::new(RegistryConfig::default(), Arc::new(SystemClock));
        registry.end_streams_on(shutdown.streams_token());
        let common = Common {
            shutdown: shutdown.clone(),
            health: HealthRegistry::new(),
            metrics: MetricsRegistry::new(prometheus),
            http_metrics,
            limits: HttpLimits::default(),
        };
        let listener = keel_server::bind("registry", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr;
        let app = keel_server::app("registry", keel_registry::router(registry.clone()), &common);
        let task = tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
        Self {
            addr,
            registry,
            shutdown,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/eureka/", self.addr)
    }

    /// Ends streams and stops listening, as a node going away does.
    pub async fn stop(self) {
        self.shutdown.begin().await;
        let _ = self.task.await;
    }
}

fn prometheus_client_registry() -> prometheus_client::registry::Registry {
    prometheus_client::registry::Registry::default()
}

/// A URL nothing listens on (bound, then released).
pub async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}/eureka/")
}

pub fn urls(list: &[&str]) -> RegistryUrls {
    RegistryUrls::parse_list(&list.join(",")).unwrap()
}

pub fn instance(app_name: &str, port: u16) -> InstanceConfig {
    InstanceConfig::new(app(app_name), "127.0.0.1", port)
}

/// Polls `check` every 20 ms until it holds; panics after a generous deadline.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
