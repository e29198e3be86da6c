//! The gateway's own body limit: served as `keel gateway` serves it (no process-wide body cap),
//! bodies past `http.max-body-bytes` still reach the backend, and `max_body_bytes` answers 413.

use keel_gateway::GatewayConfig;
use keel_server::HttpLimits;

use crate::support::{Backend, Serving, TestGateway, client, json};

fn routes(addr: std::net::SocketAddr) -> String {
    format!(
        "spring.cloud.gateway.routes:\n  - id: up\n    uri: http://{addr}\n    predicates: [Path=/up/**]\n"
    )
}

/// Limits as the keel binary gives the gateway's listener: the body cap is the gateway's own.
fn gateway_serving() -> Serving {
    Serving {
        limits: Some(HttpLimits {
            max_body_bytes: usize::MAX,
            ..HttpLimits::default()
        }),
        ..Serving::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_the_process_wide_limit_are_proxied() {
    let backend = Backend::start("a").await;
    let g = TestGateway::start_with(
        GatewayConfig::default(),
        &routes(backend.addr),
        gateway_serving(),
    )
    .await;
    // Twice the 1 MiB default of http.max-body-bytes, streamed (over the 64 KiB replay buffer).
    let body = vec![b'x'; 2 * 1024 * 1024];
    let r = client()
        .post(g.url("/up/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed = json(r).await;
    assert_eq!(echoed["body"].as_str().map(str::len), Some(2 * 1024 * 1024));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_limit_answers_413_before_the_backend() {
    let backend = Backend::start("a").await;
    let config = GatewayConfig {
        max_body_bytes: Some(100 * 1024),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start_with(config, &routes(backend.addr), gateway_serving()).await;
    let r = client()
        .post(g.url("/up/upload"))
        .body(vec![b'x'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await["reason"], "request_too_large");
    assert!(
        !backend.saw("/upload"),
        "the backend saw the oversized body"
    );
    // Under the limit still passes.
    let r = client()
        .post(g.url("/up/small"))
        .body(vec![b'x'; 50 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
