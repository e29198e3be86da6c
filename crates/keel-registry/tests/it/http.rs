//! Eureka's REST API over a real socket: status codes, paths, content negotiation, gzip,
//! bad input refused without any state change, and optional auth.

use std::sync::Arc;

use keel_eureka::{Format, InstanceStatus, decode_applications};
use keel_registry::{AuthConfig, RegistryConfig, SystemClock};
use reqwest::StatusCode;

use crate::support::{TestServer, client, gunzip};

const INSTANCE_JSON: &str = r#"{"instance":{
  "instanceId":"10.0.0.5:orders:8080","hostName":"10.0.0.5","app":"ORDERS","ipAddr":"10.0.0.5",
  "status":"UP","overriddenstatus":"UNKNOWN","port":{"$":8080,"@enabled":"true"},
  "securePort":{"$":443,"@enabled":"false"},"countryId":1,
  "dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
  "leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90},
  "metadata":{"management.port":"8080"},"vipAddress":"orders","secureVipAddress":"orders-s",
  "lastUpdatedTimestamp":"1700000000000","lastDirtyTimestamp":"1700000000000"}}"#;

const INSTANCE_XML: &str = r#"<instance><instanceId>b-1</instanceId><hostName>h</hostName>
<app>BILLING</app><ipAddr>10.0.0.6</ipAddr><status>UP</status>
<port enabled="true">9090</port><securePort enabled="false">443</securePort>
<dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"><name>MyOwn</name></dataCenterInfo>
<vipAddress>billing</vipAddress></instance>"#;

async fn server() -> TestServer {
    TestServer::start(RegistryConfig::default(), Arc::new(SystemClock)).await
}

async fn register_orders(s: &TestServer, prefix: &str) -> StatusCode {
    client()
        .post(s.url(&format!("{prefix}/apps/orders")))
        .header("content-type", "application/json")
        .body(INSTANCE_JSON)
        .send()
        .await
        .unwrap()
        .status()
}

/// Registers BILLING's instance as XML.
async fn register_billing(s: &TestServer) -> StatusCode {
    client()
        .post(s.url("/eureka/apps/BILLING/"))
        .header("content-type", "application/xml")
        .body(INSTANCE_XML)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn lifecycle_status_codes() {
    let s = server().await;
    let c = client();
    assert_eq!(register_orders(&s, "/eureka").await, StatusCode::NO_CONTENT);
    let renew = s
        .url("/eureka/apps/ORDERS/10.0.0.5:orders:8080?status=UP&lastDirtyTimestamp=1700000000000");
    assert_eq!(c.put(&renew).send().await.unwrap().status(), StatusCode::OK);
    let newer = s
        .url("/eureka/apps/ORDERS/10.0.0.5:orders:8080?status=UP&lastDirtyTimestamp=1800000000000");
    assert_eq!(
        c.put(&newer).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // A peer renewing with an older timestamp gets 409 and our copy.
    let older =
        s.url("/eureka/v2/apps/orders/10.0.0.5:orders:8080/?lastDirtyTimestamp=1600000000000");
    let conflict = c
        .put(&older)
        .header("x-netflix-discovery-replication", "true")
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = conflict.json().await.unwrap();
    assert_eq!(body["instance"]["lastDirtyTimestamp"], "1700000000000");
    let unknown = s.url("/eureka/apps/ORDERS/nope");
    assert_eq!(
        c.put(&unknown).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let status = s.url("/eureka/apps/ORDERS/10.0.0.5:orders:8080/status?value=OUT_OF_SERVICE");
    assert_eq!(
        c.put(&status).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(s.registry.snapshot().hashcode(), "OUT_OF_SERVICE_1_");
    let bad = s.url("/eureka/apps/ORDERS/10.0.0.5:orders:8080/status?value=SIDEWAYS");
    assert_eq!(
        c.put(&bad).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let clear = s.url("/eureka/apps/ORDERS/10.0.0.5:orders:8080/status?value=UP");
    assert_eq!(
        c.delete(&clear).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(s.registry.snapshot().hashcode(), "UP_1_");

    let meta = s.url("/eureka/apps/ORDERS/10.0.0.5:orders:8080/metadata?zone=z1&weight=3");
    assert_eq!(c.put(&meta).send().await.unwrap().status(), StatusCode::OK);
    let snap = s.registry.snapshot();
    let md = &snap.instances().next().unwrap().info().metadata;
    assert_eq!((md["zone"].as_str(), md["weight"].as_str()), ("z1", "3"));
    let missing_meta = s.url("/eureka/apps/ORDERS/nope/metadata?zone=z1");
    assert_eq!(
        c.put(&missing_meta).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let cancel = s.url("/eureka/apps/ORDERS/10.0.0.5:orders:8080");
    assert_eq!(
        c.delete(&cancel).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        c.delete(&cancel).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.registry.snapshot().instance_count(), 0);
}

#[tokio::test]
async fn every_path_spelling_and_format() {
    let s = server().await;
    let c = client();
    assert_eq!(
        register_orders(&s, "/eureka/v2").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(register_billing(&s).await, StatusCode::NO_CONTENT);

    for path in [
        "/eureka/apps",
        "/eureka/apps/",
        "/eureka/v2/apps",
        "/eureka/v2/apps/",
        "/eureka/apps/delta",
        "/eureka/v2/apps/delta/",
    ] {
        // No Accept header (py-eureka-client): XML.
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-type"], "application/xml", "{path}");
        let apps = decode_applications(Format::Xml, &r.bytes().await.unwrap()).unwrap();
        assert_eq!(apps.apps_hashcode, "UP_2_", "{path}");
        // Accept mentioning JSON: JSON.
        let r = c
            .get(s.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "application/json", "{path}");
        let apps = decode_applications(Format::Json, &r.bytes().await.unwrap()).unwrap();
        assert_eq!(apps.applications.len(), 2, "{path}");
    }
    let get = async |path: &str| {
        let r = c
            .get(s.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status();
        (
            status,
            r.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    };
    let (st, app) = get("/eureka/apps/orders").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(app["application"]["name"], "ORDERS");
    let (st, inst) = get("/eureka/v2/apps/ORDERS/10.0.0.5:orders:8080/").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(inst["instance"]["port"]["$"], 8080);
    let (st, inst) = get("/eureka/instances/b-1").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(inst["instance"]["app"], "BILLING");
    assert_eq!(get("/eureka/apps/NOPE").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get("/eureka/apps/ORDERS/nope").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get("/eureka/instances/nope").await.0, StatusCode::NOT_FOUND);
    let (st, vip) = get("/eureka/vips/orders").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        vip["applications"]["application"][0]["instance"][0]["vipAddress"],
        "orders"
    );
    assert_eq!(
        vip["applications"]["application"].as_array().unwrap().len(),
        1
    );
    let (_, svip) = get("/eureka/svips/orders-s").await;
    assert_eq!(
        svip["applications"]["application"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (st, none) = get("/eureka/vips/nothing").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(none["applications"]["application"], serde_json::json!([]));

    // gzip when asked.
    let r = c
        .get(s.url("/eureka/apps/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
}

/// Gzipped documents are the plain ones compressed (for `/apps`, `/apps/delta` and one
/// application, in JSON and XML; the second answer comes from the cache), a client refusing gzip
/// gets the plain one, and a write moves the gzipped copy on with the plain one.
#[tokio::test]
async fn gzipped_documents_match_the_plain_ones_and_follow_writes() {
    let s = server().await;
    let c = client();
    assert_eq!(register_orders(&s, "/eureka").await, StatusCode::NO_CONTENT);
    let fetch = async |path: &str, accept: &str, encoding: &str| {
        let mut req = c.get(s.url(path)).header("accept", accept);
        if !encoding.is_empty() {
            req = req.header("accept-encoding", encoding);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let headers = r.headers().clone();
        (headers, r.bytes().await.unwrap().to_vec())
    };
    for accept in ["application/json", "application/xml"] {
        for path in ["/eureka/apps/", "/eureka/apps/delta", "/eureka/apps/ORDERS"] {
            let (h, plain) = fetch(path, accept, "").await;
            assert!(h.get("content-encoding").is_none(), "{path}");
            assert!(!plain.is_empty());
            for _ in 0..2 {
                let (h, gz) = fetch(path, accept, "gzip, deflate").await;
                assert_eq!(h["content-encoding"], "gzip", "{path} {accept}");
                assert_eq!(h["vary"], "accept-encoding", "{path} {accept}");
                assert_eq!(h["content-type"].to_str().unwrap(), accept);
                assert!(gz.len() < plain.len(), "{path} {accept}");
                assert_eq!(gunzip(&gz), plain, "{path} {accept}");
            }
            let (h, body) = fetch(path, accept, "gzip;q=0").await;
            assert!(h.get("content-encoding").is_none(), "{path} {accept}");
            assert_eq!(body, plain, "{path} {accept}");
        }
    }
    // A write publishes a new version: its gzipped `/apps` has the new application.
    let (_, gz) = fetch("/eureka/apps/", "application/json", "gzip").await;
    let before = decode_applications(Format::Json, &gunzip(&gz)).unwrap();
    assert_eq!(before.applications.len(), 1);
    assert_eq!(register_billing(&s).await, StatusCode::NO_CONTENT);
    let (_, gz) = fetch("/eureka/apps/", "application/json", "gzip").await;
    let after = decode_applications(Format::Json, &gunzip(&gz)).unwrap();
    assert_eq!(after.applications.len(), 2);
    assert_eq!(after.apps_hashcode, "UP_2_");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let s = server().await;
    let c = client();
    assert_eq!(register_orders(&s, "/eureka").await, StatusCode::NO_CONTENT);
    let before = s.registry.version();
    let post = async |path: &str, content_type: &str, body: Vec<u8>| {
        let r = c
            .post(s.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap_or_default())
    };
    let (st, msg) = post(
        "/eureka/apps/orders",
        "application/json",
        b"{\"instance\":{".to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.contains("malformed JSON"), "{msg}");
    let (st, msg) = post(
        "/eureka/apps/orders",
        "application/json",
        br#"{"instance":{"hostName":"h","ipAddr":"1"}}"#.to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.contains("app"), "{msg}");
    let (st, msg) = post(
        "/eureka/apps/billing",
        "application/json",
        INSTANCE_JSON.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(msg.contains("Mismatched appName"), "{msg}");
    let dtd = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><instance><app>&e;</app></instance>"#;
    let (st, msg) = post("/eureka/apps/orders", "application/xml", dtd.to_vec()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        msg.contains("refused") || msg.contains("DTD") || msg.contains("DOCTYPE"),
        "{msg}"
    );
    let (st, _) = post(
        "/eureka/apps/orders",
        "application/xml",
        b"<instance><app>".to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let mut big = INSTANCE_JSON.as_bytes().to_vec();
    big.extend(std::iter::repeat_n(b' ', 1024 * 1024 + 1));
    let (st, _) = post("/eureka/apps/orders", "application/json", big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    let long_id = "x".repeat(257);
    let r = c
        .put(s.url(&format!("/eureka/apps/orders/{long_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .delete(s.url("/eureka/apps/or%07ders/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .put(s.url("/eureka/apps/orders/10.0.0.5:orders:8080?lastDirtyTimestamp=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        s.registry.version(),
        before,
        "no bad request changed the registry"
    );
    assert_eq!(
        s.registry
            .snapshot()
            .instances()
            .next()
            .unwrap()
            .info()
            .status,
        InstanceStatus::Up
    );
}

#[tokio::test]
async fn writes_need_credentials_when_configured() {
    let config = RegistryConfig {
        auth: AuthConfig {
            tokens: vec!["t0ken".into()],
            users: vec![("svc".into(), "pw".into())],
            protect_reads: false,
        },
        ..RegistryConfig::default()
    };
    let s = TestServer::start(config, Arc::new(SystemClock)).await;
    let c = client();
    let reg = |auth: Option<&str>| {
        let mut r = c
            .post(s.url("/eureka/apps/orders"))
            .header("content-type", "application/json")
            .body(INSTANCE_JSON);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    assert_eq!(reg(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        reg(Some("Bearer wrong")).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.registry.version(), 0);
    assert_eq!(
        reg(Some("Bearer t0ken")).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let basic = c
        .delete(s.url("/eureka/apps/orders/10.0.0.5:orders:8080"))
        .basic_auth("svc", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    // Reads stay open unless protect_reads is set.
    assert_eq!(
        c.get(s.url("/eureka/apps")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_and_metrics_show_the_registry() {
    let s = server().await;
    register_orders(&s, "/eureka").await;
    let health: serde_json::Value = client()
        .get(s.url("/actuator/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reg = &health["components"]["registry"];
    assert_eq!(reg["status"], "UP");
    assert_eq!(reg["details"]["instances"], 1);
    assert_eq!(reg["details"]["selfPreservation"]["engaged"], false);
    let metrics = client()
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keel_registry_instances 1"), "{metrics}");
    assert!(
        metrics.contains("keel_registry_self_preservation_engaged"),
        "{metrics}"
    );
}

#[tokio::test]
async fn peer_replication_batch() {
    let s = server().await;
    let instance: serde_json::Value = serde_json::from_str(INSTANCE_JSON).unwrap();
    let batch = serde_json::json!({"replicationList": [
        {"appName": "ORDERS", "id": "10.0.0.5:orders:8080", "action": "Register",
         "lastDirtyTimestamp": 1700000000000_i64, "status": "UP", "instanceInfo": instance["instance"]},
        {"appName": "ORDERS", "id": "10.0.0.5:orders:8080", "action": "Heartbeat",
         "lastDirtyTimestamp": 1600000000000_i64, "status": "UP"},
        {"appName": "ORDERS", "id": "nope", "action": "Heartbeat", "status": "UP"},
        {"appName": "ORDERS", "id": "10.0.0.5:orders:8080", "action": "StatusUpdate",
         "lastDirtyTimestamp": 1700000000000_i64, "status": "DOWN"}
    ]});
    let r = client()
        .post(s.url("/eureka/peerreplication/batch/"))
        .header("x-netflix-discovery-replication", "true")
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let codes: Vec<_> = body["responseList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [200, 409, 404, 200]);
    assert_eq!(
        body["responseList"][1]["responseEntity"]["lastDirtyTimestamp"],
        "1700000000000"
    );
    assert_eq!(s.registry.snapshot().hashcode(), "DOWN_1_");
    let bad = client()
        .post(s.url("/eureka/v2/peerreplication/batch"))
        .body("{\"replicationList\":")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
