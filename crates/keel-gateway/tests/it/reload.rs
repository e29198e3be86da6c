//! Route changes by file and by admin API while a load loop runs: nothing fails, bad tables are refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_gateway::GatewayConfig;
use keel_test_support::eventually;

use crate::support::{Backend, TestGateway, client, json, load_loop};

fn route_to(addr: std::net::SocketAddr) -> String {
    format!(
        "spring.cloud.gateway.routes:\n  - id: live\n    uri: http://{addr}\n    predicates: [Path=/live/**]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_file_changes_under_load_drop_nothing() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let g = TestGateway::start(GatewayConfig::default(), &route_to(a.addr)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(g.url("/live/x"), 4, stop.clone());
    eventually(Duration::from_secs(10), "load reaches a", || async {
        (a.count() > 20).then_some(())
    })
    .await;
    std::fs::write(&g.routes, route_to(b.addr)).unwrap();
    eventually(Duration::from_secs(10), "load moves to b", || async {
        (b.count() > 20).then_some(())
    })
    .await;
    // An invalid file is refused: b keeps serving.
    std::fs::write(
        &g.routes,
        "spring.cloud.gateway.routes:\n  - id: broken\n    uri: lb://x\n    predicates: [Nope=1]\n",
    )
    .unwrap();
    let before = b.count();
    eventually(Duration::from_secs(10), "b still serving", || async {
        (b.count() > before + 50).then_some(())
    })
    .await;
    std::fs::write(&g.routes, route_to(a.addr)).unwrap();
    let back = a.count();
    eventually(Duration::from_secs(10), "load back on a", || async {
        (a.count() > back + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 100, "only {ok} requests");
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_validates_and_deletes_routes_under_load() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let g = TestGateway::start(GatewayConfig::default(), &route_to(a.addr)).await;
    let c = client();
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(g.url("/live/x"), 3, stop.clone());

    let bad = serde_json::json!({"uri": "lb://svc", "predicates": ["Path=/n/**"], "filters": ["StripPrefix=x"]});
    let r = c
        .post(g.url("/keel/v1/gateway/validate"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        json(r).await["error"]
            .as_str()
            .unwrap()
            .contains("StripPrefix")
    );
    let r = c
        .post(g.url("/keel/v1/gateway/routes/new"))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let good = serde_json::json!({"uri": format!("http://{}", b.addr), "order": -1,
        "predicates": [{"name": "Path", "args": {"_genkey_0": "/live/**"}}]});
    let r = c
        .post(g.url("/keel/v1/gateway/validate"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.post(g.url("/keel/v1/gateway/routes/canary"))
            .json(&good)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    eventually(Duration::from_secs(10), "load moves to b", || async {
        (b.count() > 20).then_some(())
    })
    .await;

    let list = json(
        c.get(g.url("/keel/v1/gateway/routes"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ids: Vec<&str> = list["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["canary", "live"]);
    assert_eq!(list["routes"][0]["source"], "api");

    assert_eq!(
        c.delete(g.url("/keel/v1/gateway/routes/live"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "file routes stay"
    );
    assert_eq!(
        c.delete(g.url("/keel/v1/gateway/routes/canary"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let back = a.count();
    eventually(Duration::from_secs(10), "load back on a", || async {
        (a.count() > back + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 50);
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}
