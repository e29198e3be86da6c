//! Who may call the admin API, seen from a non-loopback address of this machine: refused without
//! `admin_token` (loopback still answered), and with a token only the right bearer token passes.
//! The gateway binds 0.0.0.0:0 and the client connects to one of this machine's own non-loopback
//! addresses (found with `ip -4 addr`), so the kernel delivers locally and the gateway sees that
//! address as the peer; without such an address the test says so and skips.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use keel_gateway::GatewayConfig;

use crate::support::{Serving, TestGateway};

/// A non-loopback IPv4 address assigned to this machine, if it has one.
fn local_non_loopback() -> Option<Ipv4Addr> {
    let from = |cmd: &str| -> Vec<Ipv4Addr> {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|w| w.split('/').next()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = from("ip -4 -o addr show");
    if found.is_empty() {
        found = from("hostname -I");
    }
    found
        .into_iter()
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified() && !ip.is_broadcast())
}

/// A client that never goes through a proxy: these requests must reach this machine directly.
fn direct() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn start(config: GatewayConfig) -> Option<(TestGateway, SocketAddr)> {
    let Some(ip) = local_non_loopback() else {
        eprintln!(
            "SKIPPED: this machine has no non-loopback IPv4 address (`ip -4 addr`), so no client \
             can reach the gateway from one"
        );
        return None;
    };
    let serving = Serving {
        bind: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
        ..Serving::default()
    };
    let g = TestGateway::start_with(config, "", serving).await;
    let outside = SocketAddr::new(IpAddr::V4(ip), g.addr.port());
    Some((g, outside))
}

#[tokio::test]
async fn without_a_token_the_admin_api_refuses_non_loopback_clients() {
    let Some((g, outside)) = start(GatewayConfig::default()).await else {
        return;
    };
    let c = direct();
    let r = c
        .get(format!("http://{outside}/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a client at {} was let in", outside.ip());
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("loopback"),
        "{body}"
    );
    // Writes are refused too, and change nothing.
    let r = c
        .post(format!("http://{outside}/keel/v1/gateway/routes/sneaky"))
        .body(r#"{"uri":"http://127.0.0.1:1","predicates":["Path=/s/**"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(g.gw.route_definitions().is_empty());
    // The same listener still answers a loopback client.
    let loopback = SocketAddr::from(([127, 0, 0, 1], g.addr.port()));
    let r = c
        .get(format!("http://{loopback}/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn with_a_token_only_the_right_bearer_token_passes() {
    let config = GatewayConfig {
        admin_token: Some("s3cret-admin".into()),
        ..GatewayConfig::default()
    };
    let Some((g, outside)) = start(config).await else {
        return;
    };
    let c = direct();
    let url = format!("http://{outside}/keel/v1/gateway/routes");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    for wrong in ["s3cret", "s3cret-admin2", "S3CRET-ADMIN"] {
        let r = c.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(r.status(), 401, "token {wrong:?}");
    }
    // Right token, wrong scheme.
    let r = c
        .get(&url)
        .basic_auth("admin", Some("s3cret-admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(&url)
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("http://{outside}/keel/v1/gateway/routes/ok"))
        .bearer_auth("s3cret-admin")
        .body(r#"{"uri":"http://127.0.0.1:1","predicates":["Path=/ok/**"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(g.gw.route_definitions().len(), 1);
    // With a token set, loopback clients need it too.
    let loopback = format!("http://127.0.0.1:{}/keel/v1/gateway/routes", g.addr.port());
    assert_eq!(c.get(&loopback).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_method_an_admin_path_does_not_take_gets_405_saying_what_it_takes() {
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    let c = direct();
    // Creating at the list's path, as with SCG's actuator: refused, pointing at the per-id path.
    let r = c
        .post(g.url("/keel/v1/gateway/routes"))
        .body(r#"{"uri":"http://127.0.0.1:1","predicates":["Path=/ok/**"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let body: serde_json::Value = r.json().await.unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("POST is not allowed") && msg.contains("/keel/v1/gateway/routes/{id}"),
        "{msg}"
    );
    let r = c
        .get(g.url("/keel/v1/gateway/validate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = c
        .patch(g.url("/keel/v1/gateway/routes/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(g.gw.route_definitions().is_empty(), "nothing was created");
    // The methods it does take still work.
    let r = c
        .get(g.url("/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
