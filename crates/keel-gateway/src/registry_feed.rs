//! Instances from a Keel registry over HTTP: the `/keel/v1/watch` SSE stream (snapshot, upsert, delete).
//!
//! Until the SDK's `Discovery` trait lands this is the gateway's own source; it keeps only `UP`
//! instances and pushes each changed service's list into [`Services`](crate::Services).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Uri, header};
use http_body_util::BodyExt;
use keel_balance::InstanceSpec;
use serde_json::Value;

use crate::Gateway;
use crate::upstream::Endpoint;

/// Follows a registry's watch stream and keeps the gateway's services current.
#[derive(Debug, Clone)]
pub struct RegistryFeed {
    /// The registry's base URL, e.g. `http://127.0.0.1:8761`.
    pub url: String,
}

type Known = HashMap<String, BTreeMap<String, Endpoint>>;

fn endpoint_of(inst: &Value) -> Option<(String, String, Option<Endpoint>)> {
    let app = inst.get("app")?.as_str()?.to_ascii_lowercase();
    let id = inst
        .get("instanceId")
        .and_then(Value::as_str)
        .or_else(|| inst.get("hostName").and_then(Value::as_str))?
        .to_owned();
    let up = inst.get("status").and_then(Value::as_str) == Some("UP");
    let host = inst.get("ipAddr").and_then(Value::as_str).or_else(|| inst.get("hostName").and_then(Value::as_str))?;
    let port = inst.get("port").and_then(|p| p.get("$").or(Some(p))).and_then(|p| {
        p.as_u64().or_else(|| p.as_str().and_then(|s| s.parse().ok()))
    })?;
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let endpoint = up
        .then(|| authority.parse().ok().map(|authority| Endpoint { scheme: http::uri::Scheme::HTTP, authority }))
        .flatten();
    Some((app, id, endpoint))
}

fn instances(doc: &Value) -> Vec<&Value> {
    let apps = doc.pointer("/applications/application");
    let list = match apps {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    list.into_iter()
        .flat_map(|app| match app.get("instance") {
            Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
            Some(v @ Value::Object(_)) => vec![v],
            _ => Vec::new(),
        })
        .collect()
}

fn publish(gw: &Gateway, known: &Known, service: &str) {
    let list = known
        .get(service)
        .map(|m| m.iter().map(|(id, e)| InstanceSpec::new(id.as_str(), e.clone())).collect())
        .unwrap_or_default();
    gw.services.set_instances(service, list);
}

fn apply(gw: &Gateway, known: &mut Known, event: &str, data: &str) {
    let Ok(doc) = serde_json::from_str::<Value>(data) else {
        tracing::warn!(event, "registry watch: undecodable event");
        return;
    };
    match event {
        "snapshot" => {
            let mut next: Known = HashMap::new();
            for inst in instances(&doc) {
                if let Some((app, id, Some(e))) = endpoint_of(inst) {
                    next.entry(app).or_default().insert(id, e);
                }
            }
            let mut services: Vec<String> = known.keys().chain(next.keys()).cloned().collect();
            services.sort();
            services.dedup();
            *known = next;
            for s in services {
                publish(gw, known, &s);
            }
        }
        "upsert" | "delete" => {
            let Some((app, id, endpoint)) = doc.get("instance").and_then(endpoint_of) else { return };
            let entry = known.entry(app.clone()).or_default();
            match endpoint.filter(|_| event == "upsert") {
                Some(e) => {
                    entry.insert(id, e);
                }
                None => {
                    entry.remove(&id);
                }
            }
            publish(gw, known, &app);
        }
        _ => {}
    }
}

impl RegistryFeed {
    /// Follows the stream until the gateway is dropped, reconnecting (resuming by event id) on errors.
    pub fn spawn(self, gw: &Gateway) -> tokio::task::JoinHandle<()> {
        let weak = std::sync::Arc::downgrade(&gw.0);
        tokio::spawn(async move {
            let mut known = Known::new();
            let mut last_id: Option<String> = None;
            let mut backoff = Duration::from_millis(100);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let gw = Gateway(inner);
                match self.follow(&gw, &mut known, &mut last_id).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(registry = %self.url, error = %e, "registry watch interrupted; reconnecting");
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                drop(gw);
                tokio::time::sleep(backoff).await;
            }
        })
    }

    async fn follow(&self, gw: &Gateway, known: &mut Known, last_id: &mut Option<String>) -> Result<(), String> {
        let uri: Uri = format!("{}/keel/v1/watch", self.url.trim_end_matches('/')).parse().map_err(|e| format!("{e}"))?;
        let mut req = Request::get(uri).header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_id.as_deref() {
            req = req.header("last-event-id", id);
        }
        let req = req.body(Body::empty()).map_err(|e| e.to_string())?;
        let client = crate::client::upstream(gw.config.connect_timeout);
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("watch answered {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut buf = String::new();
        let (mut event, mut data, mut id) = (String::new(), String::new(), None::<String>);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            let Ok(chunk) = frame.into_data() else { continue };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(nl) = buf.find('\n') {
                let line: String = buf.drain(..=nl).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !data.is_empty() {
                        apply(gw, known, if event.is_empty() { "message" } else { &event }, &data);
                        if let Some(i) = id.take() {
                            *last_id = Some(i);
                        }
                    }
                    event.clear();
                    data.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                } else if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().to_owned());
                }
            }
        }
        Ok(())
    }
}
