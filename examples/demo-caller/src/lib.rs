//! demo-caller: registers itself and answers `GET /call` by calling demo-callee through
//! `lb://demo-callee/hello`, with a fallback answer when no callee can answer.
//!
//! Also serves `GET /stats` (calls and retries to the callee), `GET /discovery` (the cache's
//! state and the callee instances it holds) and `/hystrix.stream`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use keel_client::discovery::DiscoveryConfig;
use keel_client::{
    Discovery, InstanceConfig, LbClient, LbClientConfig, RegistrationAgent, RegistrationConfig,
    RegistryDiscovery, RegistryUrls,
};
use keel_eureka::AppName;
use keel_server::{Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown};
use serde_json::json;

/// How to run the caller.
#[derive(Debug, Clone)]
pub struct CallerConfig {
    pub bind: SocketAddr,
    pub registries: RegistryUrls,
    pub app: AppName,
    /// The service `/call` calls.
    pub callee: AppName,
    pub advertise_host: Option<String>,
    pub renewal_interval: Duration,
    /// Delta polling interval, used only against registries without a watch stream.
    pub poll_interval: Duration,
}

#[derive(Clone)]
struct AppState {
    client: LbClient,
    discovery: RegistryDiscovery,
    callee: AppName,
    url: Arc<str>,
}

/// The running caller.
pub struct Running {
    pub addr: SocketAddr,
    agent: RegistrationAgent,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn registered(&self) {
        self.agent.registered().await;
    }

    /// Deregisters, then stops serving after in-flight requests finish.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deregistered = self.agent.deregister().await;
        self.shutdown.begin().await;
        let _ = self.server.await;
        deregistered.context("deregister")
    }
}

pub async fn start(config: CallerConfig) -> anyhow::Result<Running> {
    let listener = keel_server::bind("demo-caller", config.bind).await?;
    let addr = listener.local_addr;
    let host = config.advertise_host.clone().unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            "127.0.0.1".into()
        } else {
            addr.ip().to_string()
        }
    });

    let mut discovery_config = DiscoveryConfig::new(config.registries.clone());
    discovery_config.poll_interval = config.poll_interval;
    let discovery = RegistryDiscovery::start(discovery_config)?;
    let client = LbClient::new(Arc::new(discovery.clone()), LbClientConfig::default())?;

    let mut instance = InstanceConfig::new(config.app.clone(), &host, addr.port());
    instance.renewal_interval = config.renewal_interval;
    // Eureka's ratio (30 s renewals, 90 s leases), so short renewals mean short leases.
    instance.lease_duration = config.renewal_interval * 3;
    let agent = RegistrationAgent::start(RegistrationConfig::new(config.registries, instance))?;

    let mut prometheus = prometheus_client::registry::Registry::default();
    let common = Common {
        shutdown: Shutdown::new(keel_server::ShutdownConfig::default()),
        health: HealthRegistry::new(),
        http_metrics: HttpMetrics::new(&mut prometheus),
        metrics: MetricsRegistry::new(prometheus),
        limits: HttpLimits::default(),
    };
    let state = AppState {
        url: format!("lb://{}/hello", config.callee.as_str().to_lowercase()).into(),
        client: client.clone(),
        discovery,
        callee: config.callee,
    };
    let router = Router::new()
        .route("/call", get(call))
        .route("/stats", get(stats))
        .route("/discovery", get(discovery_view))
        .with_state(state)
        .merge(keel_client::management::router(client.commands().clone()));
    let app = keel_server::app("demo-caller", router, &common);
    let shutdown = common.shutdown.clone();
    let server = tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
    Ok(Running {
        addr,
        agent,
        shutdown,
        server,
    })
}

async fn call(State(s): State<AppState>) -> Json<serde_json::Value> {
    let request = match keel_client::http::LbRequest::new(http::Method::GET, &s.url) {
        Ok(r) => r,
        Err(e) => return Json(json!({ "fallback": true, "reason": e.to_string() })),
    };
    let response = s
        .client
        .send_or(request, |e| async move {
            // The fallback: a degraded but well-formed answer.
            let body = json!({ "fallback": true, "reason": e.to_string() }).to_string();
            http::Response::new(Bytes::from(body))
        })
        .await;
    let body: serde_json::Value = serde_json::from_slice(response.body())
        .unwrap_or_else(|_| json!({ "raw": String::from_utf8_lossy(response.body()) }));
    if body.get("fallback").is_some() {
        return Json(body);
    }
    Json(json!({ "fallback": false, "status": response.status().as_u16(), "callee": body }))
}

async fn stats(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(match s.client.stats(&s.callee) {
        Some(st) => json!({
            "calls": st.calls,
            "retries": st.retries,
            "budget_window_calls": st.budget_window.0,
            "budget_window_retries": st.budget_window.1,
            "instances": st.instances,
        }),
        None => json!({ "calls": 0, "retries": 0 }),
    })
}

async fn discovery_view(State(s): State<AppState>) -> Json<serde_json::Value> {
    let status = s.discovery.status();
    let instances: Vec<String> = s
        .discovery
        .instances(&s.callee)
        .iter()
        .map(|i| i.id.to_string())
        .collect();
    Json(json!({
        "feed": format!("{:?}", status.feed),
        "registry": status.registry,
        "version": status.version,
        "ready": status.ready,
        "updates": status.updates,
        "instances": instances,
    }))
}
