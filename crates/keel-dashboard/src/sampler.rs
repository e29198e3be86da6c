//! The sampling loop: every tick it reads each view, finds peer components through the
//! registry, follows services' hystrix streams, and publishes one [`Frame`] to open pages.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config_view::{ConfigClient, ConfigView};
use crate::gateway_view::{GatewayClient, GatewayView};
use crate::registry_view::{InstanceView, RegistryState};
use crate::transport::{Credentials, Transport};
use crate::turbine::{BreakerView, HttpHystrixSource, HystrixSource};
use crate::{CONFIG_SERVER_APP, GATEWAY_APP, Inner, Peer};

/// Everything open pages show, one JSON value per view (each pushed only when it changed).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Frame {
    pub seq: u64,
    pub registry: Value,
    pub traffic: Value,
    pub config: Value,
    pub health: Value,
}

impl Frame {
    pub fn parts(&self) -> [(&'static str, &Value); 4] {
        [
            ("registry", &self.registry),
            ("traffic", &self.traffic),
            ("config", &self.config),
            ("health", &self.health),
        ]
    }
}

/// Views of components found in the registry, keyed by their base URL.
#[derive(Default)]
pub(crate) struct Discovered {
    config: Option<(String, Arc<ConfigClient>)>,
    gateway: Option<(String, Arc<GatewayClient>)>,
}

/// `http://host:port` of an instance: its home page's origin, else its IP and port.
pub(crate) fn origin_of(instance: &InstanceView) -> String {
    if let Some(url) = &instance.home_page_url
        && let Some((scheme, rest)) = url.split_once("://")
        && scheme == "http"
    {
        let authority = rest.split('/').next().unwrap_or(rest);
        if !authority.is_empty() {
            return format!("http://{authority}");
        }
    }
    let host = if instance.ip.is_empty() {
        &instance.host
    } else {
        &instance.ip
    };
    format!("http://{host}:{}", instance.port)
}

fn first_up<'a>(state: &'a RegistryState, app: &str) -> Option<&'a InstanceView> {
    state
        .apps
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(app))?
        .instances
        .iter()
        .find(|i| i.status == "UP")
}

fn error(e: impl std::fmt::Display) -> Value {
    json!({"available": false, "error": e.to_string()})
}

pub(crate) async fn run(inner: Arc<Inner>) {
    let end = inner.streams_end.get().cloned().unwrap_or_default();
    let mut ticker = tokio::time::interval(inner.config.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            () = end.cancelled() => return,
            _ = ticker.tick() => {}
        }
        seq += 1;
        let frame = sample(&inner, seq).await;
        inner.frames.send_replace(Arc::new(frame));
    }
}

async fn sample(inner: &Inner, seq: u64) -> Frame {
    let registry = inner.registry.state().await;
    let (config, gateway) = peers(inner, registry.as_ref().ok());
    if let Ok(state) = &registry {
        follow_services(inner, state);
    }
    let traffic = traffic(inner, gateway.as_deref()).await;
    let config = config_part(config.as_deref(), registry.as_ref().ok()).await;
    let mut health = serde_json::Map::new();
    for watched in &inner.components {
        let value = match watched.health.health().await {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(e) => json!({"status": "DOWN", "error": e.to_string()}),
        };
        health.insert(watched.name.clone(), value);
    }
    Frame {
        seq,
        registry: match registry {
            Ok(state) => serde_json::to_value(state).unwrap_or_default(),
            Err(e) => error(e),
        },
        traffic,
        config,
        health: Value::Object(health),
    }
}

type Views = (Option<Arc<dyn ConfigView>>, Option<Arc<dyn GatewayView>>);

/// The config centre and gateway: given ones, or the first UP instance registered under
/// their application names.
fn peers(inner: &Inner, state: Option<&RegistryState>) -> Views {
    let mut found = inner.discovered.lock().unwrap_or_else(|e| e.into_inner());
    let config: Option<Arc<dyn ConfigView>> = match &inner.config_server {
        Peer::Given(v) => Some(v.clone()),
        Peer::Discover => {
            let base = state
                .and_then(|s| first_up(s, CONFIG_SERVER_APP))
                .map(origin_of);
            match base {
                None => found.config = None,
                Some(base) if found.config.as_ref().is_some_and(|(b, _)| *b == base) => {}
                Some(base) => {
                    found.config =
                        Transport::http(&base, Credentials::default(), inner.config.tick * 5)
                            .ok()
                            .map(|t| (base, Arc::new(ConfigClient::new(t))));
                }
            }
            found
                .config
                .as_ref()
                .map(|(_, c)| c.clone() as Arc<dyn ConfigView>)
        }
    };
    let gateway: Option<Arc<dyn GatewayView>> = match &inner.gateway {
        Peer::Given(v) => Some(v.clone()),
        Peer::Discover => {
            let base = state.and_then(|s| first_up(s, GATEWAY_APP)).map(origin_of);
            match base {
                None => found.gateway = None,
                Some(base) if found.gateway.as_ref().is_some_and(|(b, _)| *b == base) => {}
                Some(base) => {
                    found.gateway =
                        Transport::http(&base, Credentials::default(), inner.config.tick * 5)
                            .ok()
                            .map(|t| (base, Arc::new(GatewayClient::new(t))));
                }
            }
            found
                .gateway
                .as_ref()
                .map(|(_, g)| g.clone() as Arc<dyn GatewayView>)
        }
    };
    (config, gateway)
}

/// Every service instance gets a hystrix stream reader (Turbine's discovery); components
/// that have no stream answer 404 once and are left alone.
fn follow_services(inner: &Inner, state: &RegistryState) {
    let targets: Vec<(String, Arc<dyn HystrixSource>)> = state
        .apps
        .iter()
        .filter(|a| {
            !a.name.eq_ignore_ascii_case(CONFIG_SERVER_APP)
                && !a.name.eq_ignore_ascii_case(GATEWAY_APP)
        })
        .flat_map(|a| a.instances.iter())
        .filter(|i| i.status == "UP" || i.status == "OUT_OF_SERVICE")
        .map(|i| {
            let path = i
                .metadata
                .get("management.hystrix-stream")
                .map_or("/hystrix.stream", String::as_str);
            let url = if path.starts_with("http://") {
                path.to_owned()
            } else {
                format!("{}{path}", origin_of(i))
            };
            let source: Arc<dyn HystrixSource> = Arc::new(HttpHystrixSource::new(url));
            (format!("{}/{}", i.app, i.id), source)
        })
        .collect();
    inner.turbine.follow(targets);
}

fn gateway_breaker(service: &Value) -> BreakerView {
    let b = &service["breaker"];
    let state = match b["state"].as_str().unwrap_or("Closed") {
        "Open" => "OPEN",
        "HalfOpen" => "HALF_OPEN",
        _ => "CLOSED",
    };
    BreakerView {
        name: service["service"].as_str().unwrap_or_default().to_owned(),
        group: "gateway".to_owned(),
        source: "gateway".to_owned(),
        state: state.to_owned(),
        error_percentage: b["errorPercentage"].as_f64().unwrap_or(0.0),
        request_count: b["total"].as_u64().unwrap_or(0),
        error_count: b["errors"].as_u64().unwrap_or(0),
        short_circuited: 0,
        rejected: 0,
        latency_p50_ms: 0,
        latency_p99_ms: 0,
        reporting_hosts: 1,
        hosts: vec!["gateway".to_owned()],
    }
}

async fn traffic(inner: &Inner, gateway: Option<&dyn GatewayView>) -> Value {
    let mut breakers = inner.turbine.breakers();
    let streaming = inner.turbine.streaming_hosts();
    let Some(gateway) = gateway else {
        return json!({"available": false, "error": "no gateway (none registered as KEEL-GATEWAY)",
            "breakers": breakers, "streamingHosts": streaming});
    };
    let (routes, services, metrics) =
        tokio::join!(gateway.routes(), gateway.services(), gateway.metrics());
    let now = crate::registry_view::now_millis();
    let mut traffic = inner.traffic.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(text) = &metrics {
        traffic.record(now, crate::traffic::parse(text));
    }
    let services = services.unwrap_or_default();
    breakers.extend(
        services["services"]
            .as_array()
            .into_iter()
            .flatten()
            .map(gateway_breaker),
    );
    let routes = match routes {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let mut list: Vec<Value> = Vec::new();
    let defined = routes["routes"].as_array().into_iter().flatten();
    let discovered = routes["discovery"]["routes"]
        .as_array()
        .into_iter()
        .flatten();
    for r in defined.chain(discovered) {
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        let series: Vec<_> = traffic
            .routes
            .get(&id)
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let totals = traffic.totals.get(&id);
        list.push(json!({
            "id": id,
            "uri": r["uri"],
            "predicates": r["predicates"],
            "source": r["source"],
            "series": series,
            "requests": totals.map_or(0.0, |t| t.requests),
            "errors": totals.map_or(0.0, |t| t.errors),
            "rateLimited": totals.map_or(0.0, |t| t.rate_limited),
        }));
    }
    json!({
        "available": true,
        "routes": list,
        "services": services["services"],
        "breakers": breakers,
        "streamingHosts": streaming,
        "metricsError": metrics.err().map(|e| e.to_string()),
    })
}

async fn config_part(config: Option<&dyn ConfigView>, registry: Option<&RegistryState>) -> Value {
    let Some(config) = config else {
        return error("no config centre (none registered as CONFIGSERVER)");
    };
    let (status, watchers) = tokio::join!(config.status(), config.watchers());
    let status = match status {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let watchers = watchers.unwrap_or_else(|_| json!([]));
    let mut apps: BTreeSet<String> = BTreeSet::new();
    let mut profiles: BTreeSet<String> = BTreeSet::from(["default".to_owned()]);
    for w in watchers.as_array().into_iter().flatten() {
        if let Some(a) = w["application"].as_str() {
            apps.insert(a.to_owned());
        }
        for p in w["profile"].as_str().unwrap_or_default().split(',') {
            if !p.is_empty() {
                profiles.insert(p.to_owned());
            }
        }
    }
    for app in registry.into_iter().flat_map(|r| r.apps.iter()) {
        if !app.name.eq_ignore_ascii_case(CONFIG_SERVER_APP)
            && !app.name.eq_ignore_ascii_case(GATEWAY_APP)
        {
            apps.insert(app.name.to_lowercase());
        }
    }
    apps.insert("application".to_owned());
    let labels: Vec<&String> = status["labels"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    json!({
        "available": true,
        "apps": apps,
        "profiles": profiles,
        "labels": labels,
        "status": status,
        "watchers": watchers,
    })
}

/// The config centre found in the registry at the last tick, if any.
pub(crate) fn discovered_config(inner: &Inner) -> Option<Arc<dyn ConfigView>> {
    let found = inner.discovered.lock().unwrap_or_else(|e| e.into_inner());
    found
        .config
        .as_ref()
        .map(|(_, c)| c.clone() as Arc<dyn ConfigView>)
}
