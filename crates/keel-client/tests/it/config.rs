//! ConfigClient against the real keel config server: failover, the disk cache, commit + webhook
//! reaching the receiver over the watch stream and over ETag polling, resume after a cut.

use std::sync::Arc;
use std::time::Duration;

use keel_client::config::{ConfigFeed, ConfigSnapshot, SnapshotSource};
use keel_client::{ConfigClient, ConfigClientConfig, ConfigServerUrls};
use tokio::sync::watch;

use crate::config_support::{ConfigNode, Proxy, Repo};
use crate::support::{dead_url, eventually};

fn repo() -> Repo {
    let repo = Repo::new();
    repo.commit(&[
        ("application.yml", "greeting: hello\npool:\n  size: 4\n"),
        (
            "orders.yml",
            "greeting: hello orders\npool:\n  size: \"8\"\n  hosts:\n    - a\n    - b\n",
        ),
        ("orders-dev.properties", "pool.enabled=on\n"),
    ]);
    repo
}

fn config(servers: &[&str]) -> ConfigClientConfig {
    let mut c = ConfigClientConfig::new(
        ConfigServerUrls::parse_list(&servers.join(",")).unwrap(),
        "orders",
    );
    c.profile = "dev".into();
    c.start_attempts = 2;
    c.retry_base = Duration::from_millis(10);
    c.retry_max = Duration::from_millis(20);
    c.reconnect_base = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct Pool {
    size: u32,
    enabled: bool,
    hosts: Vec<String>,
}

/// Waits until the receiver holds a snapshot for which `check` holds.
async fn wait_for(
    rx: &mut watch::Receiver<Arc<ConfigSnapshot>>,
    what: &str,
    check: impl Fn(&ConfigSnapshot) -> bool,
) -> Arc<ConfigSnapshot> {
    let found = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| check(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("client dropped");
    found.clone()
}

#[tokio::test]
async fn typed_snapshot_and_a_commit_with_webhook_reach_the_receiver() {
    let repo = repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    let node = ConfigNode::start(&repo).await;
    let client = ConfigClient::start(config(&[&node.url()])).await.unwrap();
    let snap = client.current();
    assert_eq!(snap.version.as_deref(), Some(first.as_str()));
    assert_eq!(snap.source, SnapshotSource::Server(node.url() + "/"));
    assert_eq!(
        snap.get::<String>("greeting").unwrap().as_deref(),
        Some("hello orders")
    );
    assert_eq!(
        snap.bind::<Pool>("pool").unwrap(),
        Pool {
            size: 8,
            enabled: true,
            hosts: vec!["a".into(), "b".into()],
        }
    );
    let mut rx = client.subscribe();
    eventually("the watch stream", || {
        client.status().feed == ConfigFeed::Watch
    })
    .await;

    let second = repo.commit(&[("orders.yml", "greeting: hi orders\n")]);
    node.webhook().await;
    let changed = wait_for(&mut rx, "the new greeting", |s| {
        s.get_str("greeting").as_deref() == Some("hi orders")
    })
    .await;
    assert_eq!(changed.version.as_deref(), Some(second.as_str()));
    // The shared file still supplies what orders.yml no longer says.
    assert_eq!(changed.get::<u32>("pool.size").unwrap(), Some(4));
    assert_eq!(client.status().updates, 1);

    // A commit that leaves orders' configuration alone wakes nobody.
    repo.commit(&[("other.yml", "x: 1\n")]);
    let third = repo.commit(&[("orders.yml", "greeting: third\n")]);
    node.webhook().await;
    let changed = wait_for(&mut rx, "the third greeting", |s| {
        s.get_str("greeting").as_deref() == Some("third")
    })
    .await;
    assert_eq!(changed.version.as_deref(), Some(third.as_str()));
    assert_eq!(client.status().updates, 2);
    node.stop().await;
}

#[tokio::test]
async fn fails_over_at_start_and_when_the_server_in_use_dies() {
    let repo = repo();
    let a = ConfigNode::start(&repo).await;
    let b = ConfigNode::start(&repo).await;
    let dead = dead_url().await;
    // The first URL is dead at start; the client settles on a.
    let client = ConfigClient::start(config(&[&dead, &a.url(), &b.url()]))
        .await
        .unwrap();
    assert_eq!(
        client.current().source,
        SnapshotSource::Server(a.url() + "/")
    );
    eventually("watching a", || {
        let s = client.status();
        s.feed == ConfigFeed::Watch && s.server == a.url() + "/"
    })
    .await;

    a.stop().await;
    eventually("watching b", || {
        let s = client.status();
        s.feed == ConfigFeed::Watch && s.server == b.url() + "/"
    })
    .await;
    let mut rx = client.subscribe();
    repo.commit(&[("orders.yml", "greeting: via b\n")]);
    b.webhook().await;
    wait_for(&mut rx, "the change through b", |s| {
        s.get_str("greeting").as_deref() == Some("via b")
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn starts_from_the_disk_cache_when_every_server_is_down() {
    let repo = repo();
    let cache = tempfile::tempdir().unwrap();
    let node = ConfigNode::start(&repo).await;
    let mut with_cache = config(&[&node.url()]);
    with_cache.cache_dir = Some(cache.path().to_owned());
    let online = ConfigClient::start(with_cache).await.unwrap();
    let served = online.current();
    drop(online);
    node.stop().await;

    let (dead1, dead2) = (dead_url().await, dead_url().await);
    let mut offline = config(&[&dead1, &dead2]);
    offline.cache_dir = Some(cache.path().to_owned());
    let client = ConfigClient::start(offline.clone()).await.unwrap();
    let snap = client.current();
    assert!(
        matches!(&snap.source, SnapshotSource::Cache(p) if p.starts_with(cache.path())),
        "{:?}",
        snap.source
    );
    assert!(snap.same_configuration(&served));
    assert_eq!(snap.version, served.version);
    assert_eq!(snap.get::<u32>("pool.size").unwrap(), Some(8));

    // Another profile has no cached copy: the start fails, naming the last error.
    let mut other = offline;
    other.profile = "prod".into();
    let err = ConfigClient::start(other).await.unwrap_err();
    assert!(
        matches!(
            err,
            keel_client::config::ConfigError::Unavailable { attempts: 2, .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn polls_with_etag_when_not_watching() {
    let repo = repo();
    let node = ConfigNode::start(&repo).await;
    let mut polling = config(&[&node.url()]);
    polling.watch = false;
    polling.poll_interval = Duration::from_millis(50);
    let client = ConfigClient::start(polling).await.unwrap();
    eventually("polling", || client.status().feed == ConfigFeed::Poll).await;
    let mut rx = client.subscribe();
    repo.commit(&[("orders.yml", "greeting: polled\n")]);
    node.webhook().await;
    wait_for(&mut rx, "the polled change", |s| {
        s.get_str("greeting").as_deref() == Some("polled")
    })
    .await;
    assert_eq!(client.status().updates, 1);
    node.stop().await;
}

#[tokio::test]
async fn a_change_made_while_cut_off_arrives_on_resume() {
    let repo = repo();
    let node = ConfigNode::start(&repo).await;
    let proxy = Proxy::start(node.addr).await;
    let client = ConfigClient::start(config(&[&proxy.url()])).await.unwrap();
    eventually("watching", || client.status().feed == ConfigFeed::Watch).await;
    let mut rx = client.subscribe();

    proxy.cut();
    eventually("the cut noticed", || {
        client.status().feed != ConfigFeed::Watch
    })
    .await;
    let during = repo.commit(&[("orders.yml", "greeting: while away\n")]);
    node.webhook().await;
    // The server has the commit before the client can reconnect.
    let served = async {
        loop {
            let r = keel_test_support::get(node.addr, "/orders/dev")
                .await
                .unwrap();
            if r.body.contains(&during) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), served)
        .await
        .expect("the server fetched the commit");
    proxy.restore();
    let changed = wait_for(&mut rx, "the change made while cut off", |s| {
        s.get_str("greeting").as_deref() == Some("while away")
    })
    .await;
    assert_eq!(changed.version.as_deref(), Some(during.as_str()));
    node.stop().await;
}
