//! The lb:// client over real sockets with fixed discovery: retries go to another instance for
//! idempotent calls only, within the budget; the breaker opens on a failing service; fallbacks.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use http::StatusCode;
use keel_client::http::CallError;
use keel_client::{FixedDiscovery, LbClient, LbClientConfig};
use keel_eureka::{InstanceId, InstanceInfo, Port};

use crate::support::{app, dead_url};

async fn backend(name: &'static str, status: StatusCode) -> SocketAddr {
    let router = axum::Router::new().route(
        "/hello",
        get(move || async move { (status, name) }).post(move || async move { (status, name) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn info(app_name: &str, addr: SocketAddr) -> InstanceInfo {
    let mut i = InstanceInfo::new(
        app(app_name),
        InstanceId::parse(&format!("{addr}")).unwrap(),
        "127.0.0.1",
        "127.0.0.1",
    );
    i.port = Port::new(addr.port(), true);
    i
}

fn client(discovery: &Arc<FixedDiscovery>) -> LbClient {
    LbClient::new(discovery.clone(), LbClientConfig::default()).unwrap()
}

#[tokio::test]
async fn idempotent_calls_survive_a_dead_and_a_failing_instance() {
    let good = backend("good", StatusCode::OK).await;
    let failing = backend("failing", StatusCode::SERVICE_UNAVAILABLE).await;
    let dead: SocketAddr = dead_url()
        .await
        .trim_start_matches("http://")
        .trim_end_matches("/eureka/")
        .parse()
        .unwrap();
    let discovery = Arc::new(FixedDiscovery::new());
    let svc = app("svc");
    discovery.set(
        &svc,
        &[info("svc", good), info("svc", failing), info("svc", dead)],
    );
    let client = client(&discovery);

    for _ in 0..60 {
        let response = client.get("lb://svc/hello").send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body().as_ref(), b"good");
    }
    let stats = client.stats(&svc).unwrap();
    assert_eq!(stats.calls, 60);
    assert!(stats.retries > 0, "{stats:?}");
    // Default budget: 20 % of calls plus 10/s over 10 s.
    assert!(stats.retries <= 60 / 5 + 100, "{stats:?}");
    assert_eq!(stats.instances, 3);
    // The service's command saw every call, with latencies for the percentiles in /hystrix.stream.
    let command = client.commands().get(svc.as_str()).unwrap().snapshot();
    assert_eq!(command.count(keel_resilience::Event::Success), 60);
    assert_eq!(command.latency_execute.count, 60);
    assert_eq!(command.latency_total.count, 60);
}

#[tokio::test]
async fn unsafe_calls_are_not_retried_unless_marked_safe() {
    let failing = backend("failing", StatusCode::SERVICE_UNAVAILABLE).await;
    let good = backend("good", StatusCode::OK).await;
    let discovery = Arc::new(FixedDiscovery::new());
    let only_failing = app("posts");
    discovery.set(&only_failing, &[info("posts", failing)]);
    let client = client(&discovery);

    let err = client
        .post("lb://posts/hello")
        .body("x")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CallError::Status { response, .. } if response.status() == 503),
        "{err}"
    );
    assert_eq!(client.stats(&only_failing).unwrap().retries, 0);

    // Marked safe, a POST may go to another instance.
    let mixed = app("mixed");
    discovery.set(&mixed, &[info("mixed", failing), info("mixed", good)]);
    for _ in 0..20 {
        let response = client
            .post("lb://mixed/hello")
            .retry_safe()
            .send()
            .await
            .unwrap();
        assert_eq!(response.body().as_ref(), b"good");
    }
}

#[tokio::test]
async fn the_breaker_opens_on_a_failing_service_and_fallbacks_answer() {
    let failing = backend("failing", StatusCode::BAD_GATEWAY).await;
    let discovery = Arc::new(FixedDiscovery::new());
    let svc = app("broken");
    discovery.set(&svc, &[info("broken", failing)]);
    let client = client(&discovery);

    let mut short_circuited = false;
    for _ in 0..40 {
        match client.get("lb://broken/hello").send().await {
            Err(CallError::ShortCircuited { .. }) => {
                short_circuited = true;
                break;
            }
            Err(CallError::Status { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(short_circuited, "the breaker never opened");

    let request =
        keel_client::http::LbRequest::new(http::Method::GET, "lb://broken/hello").unwrap();
    let response = client
        .send_or(request, |e| async move {
            assert!(matches!(e, CallError::ShortCircuited { .. }));
            http::Response::new(bytes::Bytes::from_static(b"fallback"))
        })
        .await;
    assert_eq!(response.body().as_ref(), b"fallback");
    let command = client.commands().get(svc.as_str()).unwrap().snapshot();
    assert_eq!(command.count(keel_resilience::Event::FallbackSuccess), 1);
    assert_eq!(
        command.count(keel_resilience::Event::FallbackMissing),
        command.count(keel_resilience::Event::ExceptionThrown),
        "plain sends have no fallback; the send_or call's fallback answered"
    );

    let missing = client.get("lb://nobody/hello").send().await.unwrap_err();
    assert!(
        matches!(missing, CallError::NoInstances { .. }),
        "{missing}"
    );
    assert!(matches!(
        client.get("http://x/").send().await.unwrap_err(),
        CallError::BadUrl { .. }
    ));
}
