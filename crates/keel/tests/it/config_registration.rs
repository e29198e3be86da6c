//! The config server in the registry as `CONFIGSERVER`: with `--registry`, and in standalone
//! mode against the in-process registry; on SIGTERM it goes DOWN, then cancels.

use std::net::SocketAddr;
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TempDir, keel};

/// The CONFIGSERVER instances the registry lists, as (instanceId, port, status).
async fn configservers(registry: SocketAddr) -> Vec<(String, u64, String)> {
    let Ok(r) = http(
        registry,
        "GET",
        "/eureka/apps/CONFIGSERVER",
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
                i["instanceId"].as_str().unwrap_or_default().to_owned(),
                i["port"]["$"].as_u64().unwrap_or_default(),
                i["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keel_config_with_registry_registers_then_goes_down_and_cancels_on_sigterm() {
    let data = TempDir::new("cfg-reg");
    let data_dir = data.str();
    let registry = KeelProcess::start(
        keel(),
        &["registry", "--bind", "127.0.0.1:0", "--data-dir", &data_dir],
        &[],
        &["registry"],
    );
    let registry_addr = registry.addr("registry");
    let url = format!("http://{registry_addr}/eureka/");
    let mut config = KeelProcess::start(
        keel(),
        &[
            "config",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--registry",
            &url,
        ],
        &[],
        &["config"],
    );
    let port = u64::from(config.addr("config").port());
    let found = eventually(
        Duration::from_secs(30),
        "CONFIGSERVER in the registry",
        || async {
            let list = configservers(registry_addr).await;
            (!list.is_empty()).then_some(list)
        },
    )
    .await;
    assert_eq!(
        found,
        vec![(
            format!("127.0.0.1:configserver:{port}"),
            port,
            "UP".to_owned()
        )]
    );

    // Follow the registry's watch stream across the SIGTERM: DOWN comes before the delete.
    let mut watch = TcpStream::connect(registry_addr).await.unwrap();
    watch
        .write_all(b"GET /keel/v1/watch HTTP/1.1\r\nHost: r\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 8192];
    while !seen.contains("event: snapshot") && !seen.contains("event:snapshot") {
        let n = watch.read(&mut buf).await.unwrap();
        assert!(n > 0, "watch closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    seen.clear();
    config.sigterm();
    let events = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let n = watch.read(&mut buf).await.unwrap();
            assert!(n > 0, "watch closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("delete") {
                return seen.clone();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no delete event; saw {seen}\n{}", config.output()));
    let down = events
        .find(r#""status":"DOWN""#)
        .unwrap_or_else(|| panic!("no DOWN upsert before the delete: {events}"));
    assert!(down < events.find("delete").unwrap(), "{events}");
    assert!(configservers(registry_addr).await.is_empty());
    let status = config
        .wait_timeout(Duration::from_secs(30))
        .expect("config did not exit after SIGTERM");
    assert!(status.success(), "{status}\n{}", config.output());
}

#[tokio::test]
async fn standalone_registers_its_config_server_in_its_own_registry() {
    let data = TempDir::new("cfg-reg-standalone");
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
    let port = u64::from(keel.addr("config").port());
    let found = eventually(
        Duration::from_secs(30),
        "CONFIGSERVER in the in-process registry",
        || async {
            let list = configservers(keel.addr("registry")).await;
            (!list.is_empty()).then_some(list)
        },
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].1, found[0].2.as_str()), (port, "UP"));
}

/// Bound to the unspecified address without a reachable `config.url` (its default is
/// 127.0.0.1), the config server advertises the IP it reaches the registry from, as the SDK's
/// services do: in a container, its address on the registry's network. Here the registry
/// listens on IPv6 loopback only, so that IP is `::1`, never the default's 127.0.0.1.
#[tokio::test]
async fn config_bound_to_any_address_advertises_the_ip_it_reaches_the_registry_from() {
    let data = TempDir::new("cfg-reg-any");
    let data_dir = data.str();
    let registry = KeelProcess::start(
        keel(),
        &["registry", "--bind", "[::1]:0", "--data-dir", &data_dir],
        &[],
        &["registry"],
    );
    let registry_addr = registry.addr("registry");
    let url = format!("http://{registry_addr}/eureka/");
    let config = KeelProcess::start(
        keel(),
        &[
            "config",
            "--bind",
            "[::]:0",
            "--data-dir",
            &data_dir,
            "--registry",
            &url,
        ],
        &[],
        &["config"],
    );
    let port = u64::from(config.addr("config").port());
    let found = eventually(
        Duration::from_secs(30),
        "CONFIGSERVER in the registry",
        || async {
            let list = configservers(registry_addr).await;
            (!list.is_empty()).then_some(list)
        },
    )
    .await;
    assert_eq!(
        found,
        vec![(format!("::1:configserver:{port}"), port, "UP".to_owned())],
        "{}",
        config.output()
    );
}
