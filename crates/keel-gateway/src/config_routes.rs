//! Routes from the config centre: the `spring.cloud.gateway.*` keys of the gateway's application
//! in the config repository. Keel's config server pushes every change on its watch stream
//! (`/keel/v1/watch`, an SSE stream of Environment JSON); a server without one (Spring's) is polled.
//! A table that does not compile is logged and refused, and the previous table keeps serving.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::definition::RouteDocument;
use crate::{Gateway, GatewayError};

/// Where the gateway's routes live in the config centre.
#[derive(Debug, Clone)]
pub struct ConfigRoutes {
    /// The config server's base URL, e.g. `http://127.0.0.1:8888`.
    pub url: String,
    /// The application whose configuration carries the routes (`keel-gateway`).
    pub application: String,
    pub profile: String,
    /// A branch, tag or commit; `None` is the server's default label.
    pub label: Option<String>,
    /// How often a server without a watch stream is polled.
    pub poll_interval: Duration,
}

impl ConfigRoutes {
    /// `keel-gateway`, profile `default`, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        ConfigRoutes {
            url: url.into(),
            application: "keel-gateway".into(),
            profile: "default".into(),
            label: None,
            poll_interval: Duration::from_secs(30),
        }
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }

    fn watch_uri(&self) -> Result<Uri, http::uri::InvalidUri> {
        let mut uri = format!(
            "{}/keel/v1/watch?application={}&profile={}",
            self.base(),
            self.application,
            self.profile
        );
        if let Some(l) = &self.label {
            uri.push_str("&label=");
            uri.push_str(l);
        }
        uri.parse()
    }

    fn environment_uri(&self) -> Result<Uri, http::uri::InvalidUri> {
        let mut uri = format!("{}/{}/{}", self.base(), self.application, self.profile);
        if let Some(l) = &self.label {
            uri.push('/');
            uri.push_str(l);
        }
        uri.parse()
    }
}

/// What the follower last did, for tests and operators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigRoutesStatus {
    /// The version (commit) of the last table applied.
    pub applied: Option<String>,
    /// The version and reason of the last table refused (cleared by the next applied one).
    pub rejected: Option<(String, String)>,
}

/// A running follower; dropping it does not stop it (it stops with the gateway).
#[derive(Debug)]
pub struct ConfigFollower {
    pub task: tokio::task::JoinHandle<()>,
    status: Arc<Mutex<ConfigRoutesStatus>>,
}

impl ConfigFollower {
    pub fn status(&self) -> ConfigRoutesStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

type Status = Arc<Mutex<ConfigRoutesStatus>>;

/// The gateway's keys of a Spring Environment (`propertySources` highest precedence first): the
/// first source that has a key wins, as Spring's client merges them.
fn gateway_document(env: &serde_json::Value) -> Result<RouteDocument, GatewayError> {
    let sources = env
        .get("propertySources")
        .and_then(|s| s.as_array())
        .ok_or_else(|| {
            GatewayError::ConfigRoutes("no propertySources in the Environment".into())
        })?;
    let mut merged: Vec<(String, String)> = Vec::new();
    for source in sources {
        let Some(map) = source.get("source").and_then(|s| s.as_object()) else {
            continue;
        };
        for (k, v) in map {
            if !(k.starts_with("spring.cloud.gateway.") || k.starts_with("zuul.")) {
                continue;
            }
            if merged.iter().any(|(m, _)| m == k) {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            merged.push((k.clone(), v));
        }
    }
    Ok(RouteDocument::from_flat(
        merged.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?)
}

impl Gateway {
    /// Replaces the config-centre routes with those of one Environment JSON document.
    pub fn apply_environment(&self, env: &serde_json::Value) -> Result<(), GatewayError> {
        self.set_config_routes(gateway_document(env)?)
    }

    fn apply_environment_text(&self, text: &str, version: &str, status: &Status) {
        let result = serde_json::from_str::<serde_json::Value>(text)
            .map_err(|e| GatewayError::ConfigRoutes(format!("Environment JSON: {e}")))
            .and_then(|env| self.apply_environment(&env));
        let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                tracing::info!(
                    version,
                    routes = self.table.load().routes.len(),
                    "routes from the config centre applied"
                );
                status.applied = Some(version.to_owned());
                status.rejected = None;
            }
            Err(e) => {
                tracing::warn!(
                    version,
                    error = %e,
                    "routes from the config centre rejected; the previous routes keep serving"
                );
                status.rejected = Some((version.to_owned(), e.to_string()));
            }
        }
    }

    /// Follows the config centre until the gateway is dropped: the watch stream where the server
    /// has one, else polling every `poll_interval`. Connection failures back off up to 30 s.
    pub fn follow_config(&self, source: ConfigRoutes) -> ConfigFollower {
        let weak = Arc::downgrade(&self.0);
        let status = Status::default();
        let shared = status.clone();
        let task = tokio::spawn(async move {
            let status = shared;
            let mut connector = HttpConnector::new();
            connector.set_connect_timeout(Some(Duration::from_secs(5)));
            let client: Client<_, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build(connector);
            let mut backoff = Duration::from_millis(250);
            let mut last_version: Option<String> = None;
            let mut polling = false;
            loop {
                let outcome = if polling {
                    poll_once(&client, &source, &weak, &mut last_version, &status).await
                } else {
                    watch(&client, &source, &weak, &mut last_version, &status).await
                };
                match outcome {
                    Follow::Stop => return,
                    Follow::NoWatchStream => {
                        tracing::info!(url = %source.url, "config server has no watch stream; polling for routes");
                        polling = true;
                        continue;
                    }
                    Follow::Polled => {
                        backoff = Duration::from_millis(250);
                        tokio::time::sleep(source.poll_interval).await;
                    }
                    Follow::Ended => backoff = Duration::from_millis(250),
                    Follow::Failed(e) => {
                        tracing::debug!(url = %source.url, error = %e, "config centre unreachable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        ConfigFollower { task, status }
    }
}

enum Follow {
    /// The gateway is gone.
    Stop,
    NoWatchStream,
    Polled,
    /// The stream ended cleanly (server shutdown or restart): reconnect.
    Ended,
    Failed(String),
}

type Weak = std::sync::Weak<crate::Inner>;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn gateway(weak: &Weak) -> Option<Gateway> {
    weak.upgrade().map(Gateway)
}

async fn poll_once(
    client: &HttpClient,
    source: &ConfigRoutes,
    weak: &Weak,
    last_version: &mut Option<String>,
    status: &Status,
) -> Follow {
    let uri = match source.environment_uri() {
        Ok(u) => u,
        Err(e) => return Follow::Failed(e.to_string()),
    };
    let resp = match client.get(uri).await {
        Ok(r) => r,
        Err(e) => return Follow::Failed(e.to_string()),
    };
    if resp.status() != StatusCode::OK {
        return Follow::Failed(format!("GET environment answered {}", resp.status()));
    }
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Follow::Failed(e.to_string()),
    };
    let Some(gw) = gateway(weak) else {
        return Follow::Stop;
    };
    let text = String::from_utf8_lossy(&body);
    // Spring's Environment carries the commit as `version`; unchanged means nothing to do.
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
    if version.is_none() || version != *last_version {
        gw.apply_environment_text(&text, version.as_deref().unwrap_or(""), status);
        *last_version = version;
    }
    Follow::Polled
}

async fn watch(
    client: &HttpClient,
    source: &ConfigRoutes,
    weak: &Weak,
    last_version: &mut Option<String>,
    status: &Status,
) -> Follow {
    let uri = match source.watch_uri() {
        Ok(u) => u,
        Err(e) => return Follow::Failed(e.to_string()),
    };
    let mut req = http::Request::get(uri).header(header::ACCEPT, "text/event-stream");
    if let Some(id) = last_version.as_deref() {
        req = req.header("last-event-id", id);
    }
    let Ok(req) = req.body(Empty::new()) else {
        return Follow::Failed("cannot build the watch request".into());
    };
    let resp = match client.request(req).await {
        Ok(r) => r,
        Err(e) => return Follow::Failed(e.to_string()),
    };
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => return Follow::NoWatchStream,
        s => return Follow::Failed(format!("watch answered {s}")),
    }
    let mut body = resp.into_body();
    let mut events = SseParser::default();
    loop {
        let frame = match body.frame().await {
            None => return Follow::Ended,
            Some(Err(e)) => return Follow::Failed(e.to_string()),
            Some(Ok(f)) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for event in events.push(&data) {
            if !matches!(event.kind.as_str(), "snapshot" | "change") {
                continue;
            }
            let Some(gw) = gateway(weak) else {
                return Follow::Stop;
            };
            gw.apply_environment_text(&event.data, &event.id, status);
            *last_version = Some(event.id);
        }
    }
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent {
    kind: String,
    id: String,
    data: String,
}

/// Splits a byte stream into events (blank-line separated; `data:` lines joined by `\n`).
#[derive(Debug, Default)]
struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_data {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.kind = value.to_owned(),
                "id" => self.current.id = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": keep-alive\n\nevent: snap").is_empty());
        let events = p.push(b"shot\nid: abc\ndata: {\"a\":\ndata: 1}\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                kind: "snapshot".into(),
                id: "abc".into(),
                data: "{\"a\":\n1}".into()
            }]
        );
    }

    #[test]
    fn higher_precedence_sources_win() {
        let env = serde_json::json!({"propertySources": [
            {"name": "keel-gateway.yml", "source": {
                "spring.cloud.gateway.routes[0].id": "a",
                "spring.cloud.gateway.routes[0].uri": "lb://first",
                "spring.cloud.gateway.routes[0].predicates[0]": "Path=/a/**",
                "server.port": 1}},
            {"name": "application.yml", "source": {
                "spring.cloud.gateway.routes[0].uri": "lb://second"}}
        ]});
        let doc = gateway_document(&env).unwrap();
        assert_eq!(doc.routes.len(), 1);
        assert_eq!(doc.routes[0].uri, "lb://first");
    }
}
