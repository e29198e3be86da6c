//! The gateway in the registry as `KEEL-GATEWAY` (with `--registry`, and in standalone mode in the
//! in-process registry), gone after SIGTERM; and in standalone mode, routing from the config
//! centre's `keel-gateway` application in the sample repository.

use std::net::SocketAddr;
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, get, http};

use crate::{TempDir, keel};

/// The KEEL-GATEWAY instances the registry lists, as (port, status).
async fn gateways(registry: SocketAddr) -> Vec<(u64, String)> {
    let Ok(r) = http(
        registry,
        "GET",
        "/eureka/apps/KEEL-GATEWAY",
        &[("Accept", "application/json")],
        b"",
    )
    .await
    else {
        return Vec::new();
    };
    if r.status != 200 {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let instances = match &json["application"]["instance"] {
        serde_json::Value::Array(a) => a.clone(),
        one @ serde_json::Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    instances
        .iter()
        .map(|i| {
            (
                i["port"]["$"].as_u64().unwrap_or_default(),
                i["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keel_gateway_with_registry_registers_and_deregisters_on_sigterm() {
    let data = TempDir::new("gw-reg");
    let data_dir = data.str();
    let registry = KeelProcess::start(
        keel(),
        &["registry", "--bind", "127.0.0.1:0", "--data-dir", &data_dir],
        &[],
        &["registry"],
    );
    let registry_addr = registry.addr("registry");
    let url = format!("http://{registry_addr}/eureka/");
    let mut gateway = KeelProcess::start(
        keel(),
        &[
            "gateway",
            "--bind",
            "127.0.0.1:0",
            "--registry-url",
            &format!("http://{registry_addr}"),
            "--registry",
            &url,
        ],
        &[],
        &["gateway"],
    );
    let port = u64::from(gateway.addr("gateway").port());
    let found = eventually(
        Duration::from_secs(30),
        "KEEL-GATEWAY registered",
        || async {
            let list = gateways(registry_addr).await;
            (!list.is_empty()).then_some(list)
        },
    )
    .await;
    assert_eq!(found, vec![(port, "UP".to_owned())]);

    gateway.sigterm();
    eventually(
        Duration::from_secs(30),
        "KEEL-GATEWAY deregistered",
        || async { gateways(registry_addr).await.is_empty().then_some(()) },
    )
    .await;
    let status = gateway
        .wait_timeout(Duration::from_secs(30))
        .expect("gateway did not exit after SIGTERM");
    assert!(status.success(), "{status}\n{}", gateway.output());
}

#[tokio::test]
async fn standalone_gateway_registers_and_routes_from_the_config_centre() {
    let data = TempDir::new("gw-standalone");
    let data_dir = data.str();
    let keel = KeelProcess::start(
        keel(),
        &[
            "standalone",
            "--registry-bind",
            "127.0.0.1:0",
            "--config-bind",
            "127.0.0.1:0",
            "--gateway-bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
        ],
        &[],
        &["registry", "config", "gateway"],
    );
    let port = u64::from(keel.addr("gateway").port());
    let found = eventually(
        Duration::from_secs(30),
        "KEEL-GATEWAY registered",
        || async {
            let list = gateways(keel.addr("registry")).await;
            (!list.is_empty()).then_some(list)
        },
    )
    .await;
    assert_eq!(found, vec![(port, "UP".to_owned())]);
    // The sample repository's keel-gateway.yml declares the `demo` route.
    let gateway = keel.addr("gateway");
    let routes = eventually(
        Duration::from_secs(30),
        "the sample's config route",
        || async {
            let r = get(gateway, "/keel/v1/gateway/routes").await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            let demo = v["routes"]
                .as_array()?
                .iter()
                .find(|r| r["id"] == "demo")?
                .clone();
            Some(demo)
        },
    )
    .await;
    assert_eq!(routes["source"], "config", "{routes}");
}
