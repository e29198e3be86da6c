//! demo-callee: answers `GET /hello` with its instance id and a greeting, and registers itself
//! in the registry. With a config centre, the greeting is its `demo.greeting` setting, updated
//! live as commits land.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use keel_client::{
    ConfigClient, ConfigClientConfig, ConfigSnapshot, InstanceConfig, RegistrationAgent,
    RegistrationConfig, RegistryUrls,
};
use keel_eureka::AppName;
use keel_server::{Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown};

/// How to run one callee instance.
#[derive(Debug, Clone)]
pub struct CalleeConfig {
    pub bind: SocketAddr,
    pub registries: RegistryUrls,
    pub app: AppName,
    /// The host other services reach this one at; defaults to the bound IP (127.0.0.1 when
    /// bound to 0.0.0.0).
    pub advertise_host: Option<String>,
    pub renewal_interval: Duration,
    /// Where the greeting comes from; without it the greeting is always [`DEFAULT_GREETING`].
    pub config: Option<ConfigClientConfig>,
    /// Serve `POST /chaos/allocate?mb=N`, which allocates and keeps N MiB (the chaos suite's
    /// memory-limit scenario). Off unless asked for.
    pub chaos: bool,
}

/// The greeting without a config centre, or when `demo.greeting` is not set.
pub const DEFAULT_GREETING: &str = "hello";

/// The configuration key holding the greeting.
pub const GREETING_KEY: &str = "demo.greeting";

/// A running instance: its address, its registration, its server.
pub struct Running {
    pub addr: SocketAddr,
    pub instance_id: String,
    agent: RegistrationAgent,
    /// Kept so the configuration stays current; dropped at shutdown.
    config: Option<ConfigClient>,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Resolves once registered.
    pub async fn registered(&self) {
        self.agent.registered().await;
    }

    /// Deregisters (DOWN, then cancel), then stops serving after in-flight requests finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deregistered = self.agent.deregister().await;
        self.shutdown.begin().await;
        drop(self.config);
        let _ = self.server.await;
        deregistered.context("deregister")
    }
}

/// Binds, starts serving and starts registering.
pub async fn start(config: CalleeConfig) -> anyhow::Result<Running> {
    // Configuration first, as Spring does: a service that cannot read it does not register.
    let config_client = match config.config.clone() {
        Some(c) => Some(
            ConfigClient::start(c)
                .await
                .context("read configuration from the config centre")?,
        ),
        None => None,
    };
    let listener = keel_server::bind("demo-callee", config.bind).await?;
    let addr = listener.local_addr;
    let host = config
        .advertise_host
        .clone()
        .unwrap_or_else(|| advertised_ip(addr));
    let mut instance = InstanceConfig::new(config.app.clone(), &host, addr.port());
    instance.renewal_interval = config.renewal_interval;
    // Eureka's ratio (30 s renewals, 90 s leases), so short renewals mean short leases.
    instance.lease_duration = config.renewal_interval * 3;
    let instance_id = instance.instance_id.to_string();
    let agent = RegistrationAgent::start(RegistrationConfig::new(config.registries, instance))?;

    let mut prometheus = prometheus_client::registry::Registry::default();
    let common = Common {
        shutdown: Shutdown::new(keel_server::ShutdownConfig::default()),
        health: HealthRegistry::new(),
        http_metrics: HttpMetrics::new(&mut prometheus),
        metrics: MetricsRegistry::new(prometheus),
        limits: HttpLimits::default(),
    };
    let state = Greeter {
        instance_id: instance_id.clone(),
        config: config_client.as_ref().map(ConfigClient::subscribe),
    };
    let mut router = Router::new().route("/hello", get(hello)).with_state(state);
    if config.chaos {
        router = router.route("/chaos/allocate", axum::routing::post(allocate));
    }
    let app = keel_server::app("demo-callee", router, &common);
    let shutdown = common.shutdown.clone();
    let server = tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
    Ok(Running {
        addr,
        instance_id,
        agent,
        config: config_client,
        shutdown,
        server,
    })
}

#[derive(Clone)]
struct Greeter {
    instance_id: String,
    /// The latest configuration snapshot; reading it takes no lock held across requests.
    config: Option<tokio::sync::watch::Receiver<Arc<ConfigSnapshot>>>,
}

async fn hello(State(g): State<Greeter>) -> Json<serde_json::Value> {
    let (message, version) = match &g.config {
        Some(rx) => {
            let snapshot = rx.borrow();
            (
                snapshot
                    .get_str(GREETING_KEY)
                    .unwrap_or_else(|| DEFAULT_GREETING.to_owned()),
                snapshot.version.clone(),
            )
        }
        None => (DEFAULT_GREETING.to_owned(), None),
    };
    Json(serde_json::json!({
        "instance": g.instance_id,
        "message": message,
        "configVersion": version,
    }))
}

/// The IP to register when none is given.
pub fn advertised_ip(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    }
}

/// Allocates `mb` MiB, touches every page and never frees it, so a container's memory limit
/// is reached for real.
async fn allocate(
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Json<serde_json::Value> {
    static HELD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let mb: usize = q.get("mb").and_then(|v| v.parse().ok()).unwrap_or(1);
    for _ in 0..mb {
        let chunk = vec![0x5a_u8; 1 << 20];
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(chunk);
    }
    Json(serde_json::json!({ "allocated_mb": mb }))
}
