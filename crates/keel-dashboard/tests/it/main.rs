//! Each dashboard view's in-process and HTTP implementations against the same real component:
//! they must tell the same story.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures_util::StreamExt;
use keel_dashboard::{
    ConfigClient, ConfigView, Credentials, GatewayClient, GatewayView, HttpHystrixSource,
    HttpRegistry, HystrixSource, LocalHystrixSource, LocalRegistry, RegistryView, SourceError,
    Transport,
};
use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus};

/// Serves `router` on 127.0.0.1:0 and returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn http(base: &str) -> Transport {
    Transport::http(base, Credentials::default(), Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn registry_views_agree_and_both_override_status() {
    let registry = keel_registry::Registry::new(
        keel_registry::RegistryConfig::default(),
        Arc::new(keel_registry::SystemClock),
    );
    let app = AppName::parse("DEMO").unwrap();
    for n in 1..=2 {
        let id = InstanceId::parse(&format!("demo-{n}")).unwrap();
        let mut info = InstanceInfo::new(app.clone(), id, "localhost", "127.0.0.1");
        info.metadata.insert("zone".into(), "z1".into());
        registry.register(info, keel_registry::Origin::Client);
    }
    let base = serve(keel_registry::router(registry.clone())).await;
    let local = LocalRegistry::new(registry.clone(), None);
    let remote = HttpRegistry::new(http(&base));

    let (l, r) = (local.state().await.unwrap(), remote.state().await.unwrap());
    assert_eq!(l.apps.len(), 1);
    assert_eq!(l.apps[0].instances.len(), 2);
    let strip = |mut s: keel_dashboard::RegistryState| {
        for i in s.apps.iter_mut().flat_map(|a| a.instances.iter_mut()) {
            i.lease.last_renewal = None;
            i.lease.expires_at = None;
        }
        s.apps
    };
    // Only in-process knows the lease's live timing.
    let li = &l.apps[0].instances[0];
    assert!(li.lease.expires_at.unwrap() > li.lease.last_renewal.unwrap());
    assert_eq!(l.self_preservation["enabled"], true);
    assert_eq!(
        r.self_preservation,
        serde_json::Value::Null,
        "no health route here"
    );
    assert_eq!(li.zone.as_deref(), Some("z1"));
    assert_eq!(strip(l), strip(r));

    let id1 = InstanceId::parse("demo-1").unwrap();
    let id2 = InstanceId::parse("demo-2").unwrap();
    local
        .set_status(&app, &id1, InstanceStatus::OutOfService)
        .await
        .unwrap();
    remote
        .set_status(&app, &id2, InstanceStatus::OutOfService)
        .await
        .unwrap();
    let statuses = |s: keel_dashboard::RegistryState| {
        s.apps[0]
            .instances
            .iter()
            .map(|i| i.status.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(remote.state().await.unwrap()),
        ["OUT_OF_SERVICE", "OUT_OF_SERVICE"]
    );
    remote
        .set_status(&app, &id1, InstanceStatus::Up)
        .await
        .unwrap();
    local
        .set_status(&app, &id2, InstanceStatus::Up)
        .await
        .unwrap();
    assert_eq!(statuses(local.state().await.unwrap()), ["UP", "UP"]);

    let missing = InstanceId::parse("nope").unwrap();
    for view in [&local as &dyn RegistryView, &remote] {
        let e = view
            .set_status(&app, &missing, InstanceStatus::OutOfService)
            .await
            .unwrap_err();
        assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
        assert_eq!(e.exit_code(), 5);
    }
}

#[tokio::test]
async fn config_views_agree_on_the_merged_configuration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("application.yml"),
        "shared: a\nwho: everyone\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("orders.yml"), "who: orders\nport: 8081\n").unwrap();
    let health = keel_server::HealthRegistry::new();
    let shutdown = keel_server::Shutdown::new(keel_server::ShutdownConfig::default());
    let server = keel_config::ConfigServer::start(
        keel_config::ConfigServerConfig::new(keel_config::Backend::Native {
            dir: dir.path().to_path_buf(),
        }),
        &health,
        &shutdown,
    )
    .await
    .unwrap();
    let router = keel_config::router(server);
    let base = serve(router.clone()).await;
    let local = ConfigClient::new(Transport::local(router));
    let remote = ConfigClient::new(http(&base));

    let (l, r) = (
        local.merged("orders", "default", None).await.unwrap(),
        remote.merged("orders", "default", None).await.unwrap(),
    );
    assert_eq!(l, r);
    let who = l.entries.iter().find(|e| e.key == "who").unwrap();
    assert_eq!(who.value, "orders");
    assert!(who.source.ends_with("orders.yml"), "{who:?}");
    assert_eq!(who.shadowed.len(), 1, "application.yml's value is shadowed");
    assert!(l.entries.iter().any(|e| e.key == "shared"));
    assert_eq!(
        local.watchers().await.unwrap(),
        remote.watchers().await.unwrap()
    );
    assert!(local.status().await.unwrap()["labels"].is_object());
    // A native backend has no history: both say so the same way.
    let (le, re) = (
        local.history("orders").await.unwrap_err(),
        remote.history("orders").await.unwrap_err(),
    );
    assert_eq!(le.exit_code(), re.exit_code());
}

#[tokio::test]
async fn gateway_views_agree_and_apply_routes() {
    let health = keel_server::HealthRegistry::new();
    let gateway =
        keel_gateway::Gateway::new(keel_gateway::GatewayConfig::default(), &health).unwrap();
    let router = keel_gateway::router(gateway);
    let base = serve(router.clone()).await;
    let local = GatewayClient::new(Transport::local(router));
    let remote = GatewayClient::new(http(&base));

    let doc = "spring:\n  cloud:\n    gateway:\n      routes:\n        - id: orders\n          uri: http://127.0.0.1:9/\n          predicates:\n            - Path=/orders/**\n";
    assert_eq!(local.validate(doc, false).await.unwrap(), 1);
    assert_eq!(remote.validate(doc, false).await.unwrap(), 1);
    let bad = remote
        .validate(&doc.replace("Path=/orders/**", "NoSuchPredicate=1"), false)
        .await
        .unwrap_err();
    assert_eq!(bad.exit_code(), 2, "{bad}");

    let route =
        serde_json::json!({"uri": "http://127.0.0.1:9/", "predicates": ["Path=/orders/**"]});
    remote.put_route("orders", &route).await.unwrap();
    let (l, r) = (
        local.routes().await.unwrap(),
        remote.routes().await.unwrap(),
    );
    assert_eq!(l, r);
    assert_eq!(l["routes"][0]["id"], "orders");
    assert_eq!(
        local.services().await.unwrap(),
        remote.services().await.unwrap()
    );
}

#[tokio::test]
async fn hystrix_sources_deliver_the_same_commands() {
    let commands = keel_resilience::CommandRegistry::new();
    let _cmd = commands.command("orders-get", keel_resilience::CommandConfig::default());
    let base = serve(keel_resilience::hystrix::hystrix_stream_router(
        commands.clone(),
    ))
    .await;
    let first = |source: Arc<dyn HystrixSource>| async move {
        let mut events = source.events();
        loop {
            let v = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if v["type"] == "HystrixCommand" {
                return v;
            }
        }
    };
    let local = first(Arc::new(LocalHystrixSource::new(
        commands,
        Duration::from_millis(100),
    )))
    .await;
    let remote = first(Arc::new(HttpHystrixSource::new(format!(
        "{base}/hystrix.stream?delay=100"
    ))))
    .await;
    assert_eq!(local["name"], "orders-get");
    assert_eq!(remote["name"], "orders-get");
    assert_eq!(
        local["isCircuitBreakerOpen"],
        remote["isCircuitBreakerOpen"]
    );

    let missing = HttpHystrixSource::new(format!("{base}/nothing"));
    let e = missing.events().next().await.unwrap().unwrap_err();
    assert!(matches!(e, SourceError::NotFound { .. }), "{e}");
}
