//! Test backends (stand-ins for services) and a gateway served the way `keel gateway` serves it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_gateway::{Gateway, GatewayConfig};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};

/// A backend that echoes what it received as JSON and records each request line.
pub struct Backend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn serve_one(
    name: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    seen.lock()
        .unwrap()
        .push(format!("{} {path}", parts.method));
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if let Some(code) = parts.uri.path().strip_prefix("/status/") {
        let mut r = Response::new(Full::new(Bytes::from(format!("{name} {code}"))));
        *r.status_mut() = code
            .parse::<u16>()
            .ok()
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .unwrap_or_default();
        return r;
    }
    if parts.uri.path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into()))
        .collect();
    let json = serde_json::json!({"backend": name, "method": parts.method.as_str(), "path": path,
        "headers": headers, "body": String::from_utf8_lossy(&body)});
    let mut r = Response::new(Full::new(Bytes::from(json.to_string())));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("x-backend-header", "present".parse().unwrap());
    r.headers_mut()
        .insert("set-cookie", "session=abc".parse().unwrap());
    r
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every open connection too.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = s.clone();
                        async move { Ok::<_, Infallible>(serve_one(name, s, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Backend { addr, seen, task }
    }

    /// Stops listening and drops every open connection, as a crashed process would.
    pub fn kill(&self) {
        self.task.abort();
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn saw(&self, needle: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

/// A gateway on 127.0.0.1:0 with the shared scaffolding (limits, actuator) around its router.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gw: Gateway,
    pub routes: PathBuf,
    _dir: tempfile::TempDir,
}

/// How the gateway's listener is served: limits, TLS when given, and the address (127.0.0.1:0
/// unless given).
#[derive(Default)]
pub struct Serving {
    pub limits: Option<HttpLimits>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub bind: Option<SocketAddr>,
}

impl TestGateway {
    pub async fn start(config: GatewayConfig, routes_yaml: &str) -> TestGateway {
        Self::start_with(config, routes_yaml, Serving::default()).await
    }

    pub async fn start_with(
        mut config: GatewayConfig,
        routes_yaml: &str,
        serving: Serving,
    ) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let routes = dir.path().join("routes.yml");
        std::fs::write(&routes, routes_yaml).unwrap();
        config.routes_file = Some(routes.clone());
        config.watch_interval = Duration::from_millis(50);
        let health = HealthRegistry::new();
        let gw = Gateway::new(config, &health).unwrap();
        gw.spawn_route_watch();
        let mut registry = prometheus_client::registry::Registry::with_prefix("keel");
        let http_metrics = HttpMetrics::new(&mut registry);
        gw.register_metrics(&mut registry);
        let metrics = MetricsRegistry::new(registry);
        let common = Common {
            shutdown: Shutdown::new(ShutdownConfig::default()),
            health,
            metrics,
            http_metrics,
            limits: serving.limits.unwrap_or(HttpLimits {
                max_body_bytes: 1024 * 1024,
                max_header_bytes: 8 * 1024,
                ..HttpLimits::default()
            }),
        };
        let app = keel_server::app("gateway", keel_gateway::router(gw.clone()), &common);
        let bind = serving
            .bind
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = keel_server::bind("gateway", bind).await.unwrap();
        let addr = listener.local_addr;
        // Served as `keel gateway` serves it: proxied requests through the Front (and, on plain
        // TCP, Keel's own HTTP/1.1 connection code), everything else through the router.
        let front = keel_gateway::Front::new(gw.clone(), app);
        tokio::spawn(async move {
            keel_server::serve_handler(listener, front, &common, serving.tls).await
        });
        TestGateway {
            addr,
            gw,
            routes,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn backends(&self, service: &str, backends: &[&Backend]) {
        self.gw.set_instances(
            service,
            backends
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("{service}-{i}"), b.addr)),
        );
    }
}

pub fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; the tests speak plain HTTP but it still wants one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The access log's lines at `path` once `done` holds for them (waited for up to 20 s: the log is
/// written off the request path). Panics with `what` otherwise.
pub async fn access_log_until(
    path: &std::path::Path,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let done = &done;
    keel_test_support::eventually(Duration::from_secs(20), what, || async move {
        let text = std::fs::read_to_string(path).ok()?;
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        done(&lines).then_some(lines)
    })
    .await
}

/// The body of a GET of `url`, as text.
pub async fn text(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.unwrap()
}

/// Runs `workers` loops of GETs until `stop`; returns (ok, failures with reasons).
pub fn load_loop(
    url: String,
    workers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (url, stop) = (url.clone(), stop.clone());
            set.spawn(async move {
                let c = client();
                let (mut ok, mut bad) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match c.get(&url).send().await {
                        Ok(r) if r.status() == 200 => ok += 1,
                        Ok(r) => bad.push(format!(
                            "{} {}",
                            r.status(),
                            r.text().await.unwrap_or_default()
                        )),
                        Err(e) => bad.push(e.to_string()),
                    }
                }
                (ok, bad)
            });
        }
        let (mut ok, mut bad) = (0, Vec::new());
        while let Some(Ok((o, b))) = set.join_next().await {
            ok += o;
            bad.extend(b);
        }
        (ok, bad)
    })
}

/// Echoes every text or binary WebSocket message on `stream` until the client leaves.
pub async fn ws_echo<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// Opens a WebSocket at `url` (an echo behind the gateway) and checks that messages come back.
pub async fn ws_round_trip(url: &str) {
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "again"] {
        ws.send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.close(None).await.unwrap();
}

/// Dry-runs a JSON route (`{"id": …, "uri": …}`) through the admin API: the status and the body.
pub async fn validate(g: &TestGateway, route: &str) -> (reqwest::StatusCode, String) {
    let r = client()
        .post(g.url("/keel/v1/gateway/validate"))
        .header("content-type", "application/json")
        .body(route.to_owned())
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}
