//! Routes from the config centre: a commit to the gateway's application in a real git repository,
//! announced by webhook to a real config server, moves traffic while a load loop runs; nothing fails,
//! and an invalid table is refused while the old one keeps serving.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_config::{Backend as ConfigBackend, ConfigServer, ConfigServerConfig};
use keel_gateway::{ConfigRoutes, GatewayConfig};
use keel_server::{
    Common, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown, ShutdownConfig,
};
use keel_test_support::eventually;

use crate::support::{Backend, TestGateway, client, load_loop};

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn commit(dir: &std::path::Path, yaml: &str, message: &str) {
    std::fs::write(dir.join("keel-gateway.yml"), yaml).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}

fn routes_to(addr: std::net::SocketAddr) -> String {
    format!(
        "spring:\n  cloud:\n    gateway:\n      routes:\n        - id: live\n          uri: http://{addr}\n          \
         predicates:\n            - Path=/live/**\n"
    )
}

/// A config server over `repo` on 127.0.0.1:0, refreshed only by webhook.
async fn config_server(repo: &std::path::Path, basedir: &std::path::Path) -> std::net::SocketAddr {
    let mut config = ConfigServerConfig::new(ConfigBackend::Git {
        uri: repo.display().to_string(),
        basedir: basedir.to_owned(),
    });
    config.refresh_interval = Duration::ZERO;
    config.debounce = Duration::from_millis(20);
    let shutdown = Shutdown::new(ShutdownConfig::default());
    let health = HealthRegistry::new();
    let server = ConfigServer::start(config, &health, &shutdown)
        .await
        .unwrap();
    let mut prometheus = prometheus_client::registry::Registry::default();
    let common = Common {
        shutdown,
        health,
        metrics: MetricsRegistry::new(prometheus_client::registry::Registry::default()),
        http_metrics: HttpMetrics::new(&mut prometheus),
        limits: HttpLimits::default(),
    };
    let listener = keel_server::bind("config", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr;
    let app = keel_server::app("config", keel_config::router(server), &common);
    tokio::spawn(async move { keel_server::serve(listener, app, &common).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_commit_moves_a_route_under_load_and_a_bad_one_is_refused() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let repo = tempfile::tempdir().unwrap();
    let basedir = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["config", "user.name", "Test"]);
    git(repo.path(), &["config", "user.email", "test@example.com"]);
    commit(repo.path(), &routes_to(a.addr), "route to a");
    let config = config_server(repo.path(), basedir.path()).await;

    let g = TestGateway::start(GatewayConfig::default(), "").await;
    let follower =
        g.gw.follow_config(ConfigRoutes::new(format!("http://{config}")));
    let c = client();
    let probe = g.url("/live/x");
    eventually(Duration::from_secs(20), "the config route serves", || {
        let (c, probe) = (c.clone(), probe.clone());
        async move {
            let r = c.get(&probe).send().await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;
    let route_source = |g: &TestGateway| {
        g.gw.route_definitions()
            .into_iter()
            .find(|(d, _)| d.id == "live")
            .map(|(_, s)| s)
    };
    assert_eq!(route_source(&g), Some("config"));

    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(probe.clone(), 4, stop.clone());
    eventually(Duration::from_secs(10), "load reaches a", || async {
        (a.count() > 20).then_some(())
    })
    .await;

    let webhook = || async {
        let r = keel_test_support::http(
            config,
            "POST",
            "/monitor",
            &[("Content-Type", "application/json")],
            br#"{"path":"keel-gateway.yml"}"#,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    };
    commit(repo.path(), &routes_to(b.addr), "route to b");
    webhook().await;
    eventually(Duration::from_secs(20), "load moves to b", || async {
        (b.count() > 20).then_some(())
    })
    .await;

    // A table that does not compile is refused; b keeps serving.
    commit(
        repo.path(),
        "spring.cloud.gateway.routes:\n  - id: live\n    uri: http://127.0.0.1:1\n    predicates: [Nope=1]\n",
        "broken route",
    );
    webhook().await;
    let refused = eventually(
        Duration::from_secs(20),
        "the broken table is refused",
        || async { follower.status().rejected },
    )
    .await;
    assert!(refused.1.contains("Nope"), "{refused:?}");
    let before = b.count();
    eventually(Duration::from_secs(10), "b still serving", || async {
        (b.count() > before + 50).then_some(())
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
    assert!(
        g.gw.route_definitions()
            .iter()
            .any(|(d, _)| d.uri.ends_with(&b.addr.to_string()))
    );
}
