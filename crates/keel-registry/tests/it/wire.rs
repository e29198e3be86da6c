//! What our server puts on the wire for `/apps`, `/apps/{APP}` and `/apps/delta`, in both
//! formats, pinned (the codec crate pins single documents; this pins the registry's output).

use std::sync::Arc;

use keel_eureka::InstanceStatus;
use keel_registry::{Origin, RegistryConfig};

use crate::support::{EPOCH_MS, FixedClock, TestServer, app, client, id, instance};

async fn fetch(s: &TestServer, path: &str, accept: Option<&str>) -> String {
    let mut req = client().get(s.url(path));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn full_registry_application_and_delta() {
    let s = TestServer::start(RegistryConfig::default(), Arc::new(FixedClock(EPOCH_MS))).await;
    let r = &s.registry;
    let mut o1 = instance("orders", "o-1", 30, 90);
    o1.metadata.insert("zone".into(), "z1".into());
    r.register(o1, Origin::Client);
    r.register(instance("orders", "o-2", 30, 90), Origin::Client);
    r.register(instance("billing", "b-1", 30, 90), Origin::Client);
    r.set_status_override(
        &app("orders"),
        &id("o-2"),
        InstanceStatus::OutOfService,
        None,
        Origin::Client,
    );
    r.cancel(&app("billing"), &id("b-1"), Origin::Client);

    insta::assert_snapshot!("apps_xml", fetch(&s, "/eureka/apps/", None).await);
    insta::assert_snapshot!(
        "apps_json",
        fetch(&s, "/eureka/apps/", Some("application/json")).await
    );
    insta::assert_snapshot!("app_xml", fetch(&s, "/eureka/apps/ORDERS", None).await);
    insta::assert_snapshot!("delta_xml", fetch(&s, "/eureka/apps/delta", None).await);
    insta::assert_snapshot!(
        "delta_json",
        fetch(&s, "/eureka/apps/delta", Some("application/json")).await
    );
}
