//! Instances from a real `keel` registry over its watch stream: registration routes, deregistration stops.

use std::sync::Arc;
use std::time::Duration;

use keel_gateway::GatewayConfig;
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};
use keel_test_support::eventually;

use crate::support::{Backend, TestGateway, client, text};

pub(crate) async fn registry() -> std::net::SocketAddr {
    let reg = keel_registry::Registry::new(
        keel_registry::RegistryConfig::default(),
        Arc::new(keel_registry::SystemClock),
    );
    let mut prom = prometheus_client::registry::Registry::default();
    let common = Common {
        shutdown: Shutdown::new(ShutdownConfig::default()),
        health: HealthRegistry::new(),
        http_metrics: HttpMetrics::new(&mut prom),
        metrics: MetricsRegistry::new(prom),
        limits: HttpLimits::default(),
    };
    let app = keel_server::app("registry", keel_registry::router(reg), &common);
    let listener = keel_server::bind("registry", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr;
    tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
    addr
}

pub(crate) fn instance(id: &str, port: u16) -> serde_json::Value {
    serde_json::json!({"instance": {
        "instanceId": id, "hostName": "127.0.0.1", "app": "ORDERS", "ipAddr": "127.0.0.1", "status": "UP",
        "port": {"$": port, "@enabled": "true"}, "vipAddress": "orders",
        "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}
    }})
}

/// Registers an instance (`{"instance": …}`) of `app` through Eureka's REST API.
pub(crate) async fn post_instance(
    c: &reqwest::Client,
    reg: std::net::SocketAddr,
    app: &str,
    body: &serde_json::Value,
) {
    let r = c
        .post(format!("http://{reg}/eureka/apps/{app}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Registers `app`'s instance `id` at `port` on 127.0.0.1.
async fn register(c: &reqwest::Client, reg: std::net::SocketAddr, app: &str, id: &str, port: u16) {
    let mut body = instance(id, port);
    body["instance"]["app"] = app.into();
    body["instance"]["vipAddress"] = app.to_lowercase().into();
    post_instance(c, reg, app, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_changes_reach_the_gateway_through_the_watch_stream() {
    let reg = registry().await;
    let b = Backend::start("orders").await;
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    g.gw.follow_registry(&format!("http://{reg}/eureka"))
        .unwrap();
    let c = client();
    register(&c, reg, "ORDERS", "orders-1", b.addr.port()).await;
    eventually(
        Duration::from_secs(10),
        "gateway routes /orders/**",
        || async {
            let r = c.get(g.url("/orders/list")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(b.saw("GET /list"));

    let start = std::time::Instant::now();
    let r = c
        .delete(format!("http://{reg}/eureka/apps/ORDERS/orders-1"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    eventually(
        Duration::from_secs(10),
        "deregistered instance gets no requests",
        || async {
            let r = c.get(g.url("/orders/list")).send().await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    // A figure for the report, not an assertion: time from DELETE to the first 503.
    eprintln!(
        "deregistration reached the gateway within {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_registered_with_protocol_h2c_is_called_over_h2c() {
    let reg = registry().await;
    let backend = crate::protocols::h2c_backend().await;
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    g.gw.follow_registry(&format!("http://{reg}/eureka"))
        .unwrap();
    let c = client();
    let mut body = instance("orders-h2c", backend.port());
    body["instance"]["metadata"] = serde_json::json!({"protocol": "h2c"});
    post_instance(&c, reg, "ORDERS", &body).await;
    // The client speaks HTTP/1.1 to the gateway; the backend only answers HTTP/2 without TLS.
    let version = eventually(
        Duration::from_secs(10),
        "gateway routes /orders/** to the h2c instance",
        || async {
            let r = c
                .post(g.url("/orders/svc/Unary"))
                .body("ping")
                .send()
                .await
                .ok()?;
            (r.status() == 200).then(|| r.headers().get("x-backend-version").cloned())?
        },
    )
    .await;
    assert_eq!(
        version, "HTTP/2.0",
        "instance metadata protocol: h2c ignored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keel_components_are_not_routed_to_by_discovery_unless_included_by_name() {
    let reg = registry().await;
    let b = Backend::start("orders").await;
    for (routes, routed) in [
        ("", false),
        (
            "spring.cloud.gateway.discovery.locator.include: [orders, keel-gateway, configserver]\n",
            true,
        ),
    ] {
        let g = TestGateway::start(GatewayConfig::default(), routes).await;
        g.gw.follow_registry(&format!("http://{reg}/eureka"))
            .unwrap();
        let c = client();
        // The gateway registers itself, as `--registry` does; an ordinary service beside it.
        register(
            &c,
            reg,
            "KEEL-GATEWAY",
            &format!("gw-{}", g.addr.port()),
            g.addr.port(),
        )
        .await;
        register(&c, reg, "CONFIGSERVER", "config-1", b.addr.port()).await;
        register(&c, reg, "ORDERS", "orders-1", b.addr.port()).await;
        eventually(Duration::from_secs(10), "/orders/** routed", || async {
            let r = c.get(g.url("/orders/list")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        eventually(
            Duration::from_secs(10),
            "the gateway's own instance known",
            || async {
                let n = |s: &str| g.gw.services().get(s).map_or(0, |s| s.instance_count());
                (n("keel-gateway") == 1 && n("configserver") == 1).then_some(())
            },
        )
        .await;
        let deep = "/keel-gateway".repeat(50) + "/actuator/health";
        let status = eventually(
            Duration::from_secs(10),
            "the self route settles",
            || async {
                let r = c
                    .get(g.url("/keel-gateway/actuator/health"))
                    .send()
                    .await
                    .ok()?;
                (!routed || r.status() == 200).then_some(r.status())
            },
        )
        .await;
        let config = c
            .get(g.url("/configserver/orders/default"))
            .send()
            .await
            .unwrap();
        if routed {
            assert_eq!(
                status, 200,
                "an include pattern naming keel-gateway routes to it"
            );
            assert_eq!(config.status(), 200, "and one naming configserver to that");
        } else {
            assert_eq!(
                config.status(),
                404,
                "configuration is not published at the edge"
            );
            assert_eq!(status, 404, "no discovery route to the gateway itself");
            let r = c.get(g.url(&deep)).send().await.unwrap();
            assert_eq!(r.status(), 404);
            let listed = text(&c, g.url("/keel/v1/gateway/routes")).await;
            assert!(!listed.contains("discovery_keel-gateway"), "{listed}");
            assert!(listed.contains("discovery_orders"), "{listed}");
        }
        let r = c
            .delete(format!(
                "http://{reg}/eureka/apps/KEEL-GATEWAY/gw-{}",
                g.addr.port()
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}
