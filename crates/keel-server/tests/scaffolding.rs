//! The shared scaffolding over real sockets: health shape, limits, metrics and graceful drain.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use keel_server::{
    Common, Health, HealthRegistry, HealthSource, HttpHealthSource, HttpLimits, HttpMetrics,
    LocalHealthSource, MetricsRegistry, Shutdown, ShutdownConfig, Status,
};
use keel_test_support::{eventually, get, http, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

struct Server {
    addr: std::net::SocketAddr,
    common: Common,
    task: tokio::task::JoinHandle<()>,
}

async fn start(health: HealthRegistry, config: ShutdownConfig) -> Server {
    let mut registry = prometheus_client::registry::Registry::with_prefix("keel");
    let http_metrics = HttpMetrics::new(&mut registry);
    let common = Common {
        shutdown: Shutdown::new(config),
        health,
        metrics: MetricsRegistry::new(registry),
        http_metrics,
        limits: HttpLimits {
            max_body_bytes: 64 * 1024,
            max_header_bytes: 8 * 1024,
            ..HttpLimits::default()
        },
    };
    // Echoes the body length, so a request is in flight until its whole body has arrived.
    let router = Router::new().route(
        "/echo",
        post(|body: Bytes| async move { body.len().to_string() }),
    );
    let app = keel_server::app("test", router, &common);
    let listener = keel_server::bind("test", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr;
    let serve_common = common.clone();
    let task = tokio::spawn(async move { keel_server::serve(listener, app, &serve_common).await });
    Server { addr, common, task }
}

#[tokio::test]
async fn health_has_spring_boots_shape_and_turns_down() {
    let health = HealthRegistry::new();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = healthy.clone();
    health.register(
        "backend",
        move || {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                Health::up()
            } else {
                Health::down()
            }
        },
        true,
    );
    let server = start(health, ShutdownConfig::default()).await;
    let r = get(server.addr, "/actuator/health").await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(json["status"], "UP");
    assert_eq!(json["components"]["backend"]["status"], "UP");
    assert_eq!(
        get(server.addr, "/actuator/health/liveness")
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        get(server.addr, "/actuator/health/readiness")
            .await
            .unwrap()
            .status,
        200
    );

    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    let r = get(server.addr, "/actuator/health").await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.body.contains(r#""status":"DOWN""#), "{}", r.body);
    assert_eq!(
        get(server.addr, "/actuator/health/readiness")
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        get(server.addr, "/actuator/health/liveness")
            .await
            .unwrap()
            .status,
        200
    );
    server.task.abort();
}

#[tokio::test]
async fn both_health_sources_read_the_same_component() {
    let health = HealthRegistry::new();
    health.register(
        "backend",
        || Health::up().with_detail("version", "abc"),
        false,
    );
    let server = start(health.clone(), ShutdownConfig::default()).await;
    let local = LocalHealthSource::new(health, server.common.shutdown.clone());
    let remote = HttpHealthSource::new(
        &format!("http://{}/actuator/health", server.addr),
        Duration::from_secs(5),
    )
    .unwrap();
    let (a, b) = (
        local.health().await.unwrap(),
        remote.health().await.unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(b.components["backend"].details["version"], "abc");

    // A DOWN component is a readable report, not an error.
    server.common.shutdown.begin().await;
    assert_eq!(local.health().await.unwrap().status, Status::Down);
    server.task.await.unwrap();
    // Once the listener is gone the HTTP source reports the failure.
    let err = remote.health().await.unwrap_err();
    assert!(err.to_string().contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_oversized_heads_get_431() {
    let server = start(HealthRegistry::new(), ShutdownConfig::default()).await;
    let ok = http(server.addr, "POST", "/echo", &[], &[b'x'; 1000])
        .await
        .unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "1000"));
    let big = vec![b'x'; 65 * 1024];
    let r = http(server.addr, "POST", "/echo", &[], &big).await.unwrap();
    assert_eq!(r.status, 413, "{r:?}");

    // A chunked body has no Content-Length to check up front; the limit still holds.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..70 {
        let chunk = [b'y'; 1024];
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let r = read_response(&mut stream).await.unwrap();
    assert_eq!(r.status, 413, "{r:?}");

    let huge = "a".repeat(20 * 1024);
    let r = http(
        server.addr,
        "GET",
        "/actuator/health",
        &[("X-Huge", &huge)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    server.task.abort();
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_at_both_paths() {
    let server = start(HealthRegistry::new(), ShutdownConfig::default()).await;
    get(server.addr, "/actuator/health").await.unwrap();
    for path in ["/metrics", "/actuator/prometheus"] {
        let r = get(server.addr, path).await.unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.body
                .contains(r#"keel_http_requests_total{component="test",status="2xx"}"#),
            "{path}: {}",
            r.body
        );
        assert!(
            r.body
                .contains("# TYPE keel_http_request_duration_seconds histogram")
        );
    }
    server.task.abort();
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_upload_finish_and_refuses_new_connections() {
    let server = start(
        HealthRegistry::new(),
        ShutdownConfig {
            drain_timeout: Duration::from_secs(30),
            readiness_delay: Duration::from_millis(500),
        },
    )
    .await;
    let body = vec![b'z'; 32 * 1024];
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream.write_all(&body[..1024]).await.unwrap();
    // Make sure the server has started on this request before shutdown begins.
    eventually(
        Duration::from_secs(10),
        "the upload to be accepted",
        || async {
            let m = get(server.addr, "/metrics").await.ok()?;
            // Two in flight: the upload and this scrape.
            m.body
                .contains(r#"keel_http_requests_in_flight{component="test"} 2"#)
                .then_some(())
        },
    )
    .await;

    let shutdown = server.common.shutdown.clone();
    let begin = tokio::spawn(async move { shutdown.begin().await });
    eventually(Duration::from_secs(10), "readiness DOWN", || async {
        let r = get(server.addr, "/actuator/health/readiness").await.ok()?;
        (r.status == 503).then_some(())
    })
    .await;
    begin.await.unwrap();
    // Listeners are closed now; the upload is still in flight and completes.
    for piece in body[1024..].chunks(4096) {
        stream.write_all(piece).await.unwrap();
    }
    let r = read_response(&mut stream).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "32768"));
    server.task.await.unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener still accepting"
    );
}
