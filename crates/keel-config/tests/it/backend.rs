//! Backends: the persistent git mirror (local standby), the timer, and the native directory.

use std::time::Duration;

use keel_config::{Backend, ConfigServerConfig};
use keel_test_support::eventually;

use crate::support::{Repo, Server, value};

#[tokio::test]
async fn the_mirror_survives_restarts_and_serves_when_the_remote_is_gone() {
    let repo = Repo::new();
    let c1 = repo.commit(&[("foo.yml", "foo: one\n")], "one");
    let basedir = tempfile::tempdir().unwrap();
    let config = |uri: String| {
        let mut c = ConfigServerConfig::new(Backend::Git {
            uri,
            basedir: basedir.path().to_owned(),
        });
        c.refresh_interval = Duration::ZERO;
        c
    };
    let keep = tempfile::tempdir().unwrap();
    let first = Server::start(config(repo.uri()), tempfile::tempdir().unwrap()).await;
    assert_eq!(first.json("/foo/default").await["version"], c1);
    first.stop().await;
    let mirrors: Vec<_> = std::fs::read_dir(basedir.path()).unwrap().collect();
    assert_eq!(mirrors.len(), 1, "one mirror per URI");

    // The remote disappears; the mirror in basedir is the standby.
    let uri = repo.uri();
    let moved = keep.path().join("moved");
    std::fs::rename(repo.path(), &moved).unwrap();
    let second = Server::start(config(uri.clone()), tempfile::tempdir().unwrap()).await;
    let env = second.json("/foo/default").await;
    assert_eq!(env["version"], c1);
    assert_eq!(value(&env, "foo"), Some(&serde_json::json!("one")));
    let status = second.json("/keel/v1/status").await;
    assert!(status["fetchError"].is_string(), "{status}");
    second.stop().await;
    std::fs::rename(&moved, repo.path()).unwrap();
}

#[tokio::test]
async fn file_urls_and_the_timer_fetch_without_webhooks() {
    let repo = Repo::new();
    repo.commit(&[("foo.yml", "foo: one\n")], "one");
    let server = Server::git(&repo, |c| {
        c.backend = Backend::Git {
            uri: format!("file://{}", repo.uri()),
            basedir: c_basedir(c),
        };
        c.refresh_interval = Duration::from_millis(200);
    })
    .await;
    let c2 = repo.commit(&[("foo.yml", "foo: two\n")], "two");
    eventually(Duration::from_secs(20), "the timer to fetch", || async {
        (server.json("/foo/default").await["version"] == c2).then_some(())
    })
    .await;
    server.stop().await;
}

fn c_basedir(c: &ConfigServerConfig) -> std::path::PathBuf {
    match &c.backend {
        Backend::Git { basedir, .. } => basedir.clone(),
        Backend::Native { .. } => unreachable!(),
    }
}

#[tokio::test]
async fn native_directories_refresh_on_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("foo.yml"), "foo: one\n").unwrap();
    std::fs::create_dir(dir.path().join("cfg")).unwrap();
    std::fs::write(dir.path().join("cfg/bar.yml"), "bar: nested\n").unwrap();
    let mut config = ConfigServerConfig::new(Backend::Native {
        dir: dir.path().to_owned(),
    });
    config.refresh_interval = Duration::ZERO;
    config.debounce = Duration::from_millis(10);
    config.search_paths = vec!["cfg".into()];
    let server = Server::start(config, tempfile::tempdir().unwrap()).await;
    let env = server.json("/foo/default/master").await;
    assert_eq!(value(&env, "foo"), Some(&serde_json::json!("one")));
    let name = env["propertySources"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("file:"), "{name}");
    assert_eq!(
        value(&server.json("/bar/default").await, "bar"),
        Some(&serde_json::json!("nested"))
    );
    std::fs::write(dir.path().join("foo.yml"), "foo: two\n").unwrap();
    server.webhook().await;
    eventually(Duration::from_secs(20), "the native change", || async {
        (value(&server.json("/foo/default").await, "foo") == Some(&serde_json::json!("two")))
            .then_some(())
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn the_standalone_sample_repository_serves_demo_service() {
    let data = tempfile::tempdir().unwrap();
    let bare = keel_config::ensure_sample_repo(&data.path().join("config-repo.git")).unwrap();
    let mut config = ConfigServerConfig::new(Backend::Git {
        uri: bare.display().to_string(),
        basedir: data.path().join("config-mirror"),
    });
    config.refresh_interval = Duration::ZERO;
    let server = Server::start(config, tempfile::tempdir().unwrap()).await;
    let env = server.json("/demo-service/default").await;
    assert_eq!(
        value(&env, "greeting"),
        Some(&serde_json::json!("hello from demo-service"))
    );
    assert_eq!(value(&env, "server.port"), Some(&serde_json::json!(9001)));
    let dev = server.json("/demo-service/dev/master").await;
    assert_eq!(
        value(&dev, "greeting"),
        Some(&serde_json::json!("hello from demo-service (dev profile)"))
    );
    server.stop().await;
}
