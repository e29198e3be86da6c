//! The demo callee reads its greeting from the config centre through the SDK's config client:
//! a commit plus the push webhook changes what `GET /hello` answers, with no restart.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, get, http};

use crate::sdk::start_demo;
use crate::{TempDir, keel};

fn git(dir: &Path, args: &[&str]) {
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

fn commit(dir: &Path, file: &str, content: &str) {
    std::fs::write(dir.join(file), content).unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "greeting"]);
}

async fn message(callee: SocketAddr) -> Option<String> {
    let r = get(callee, "/hello").await.ok()?;
    let json: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    json["message"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callee_greeting_follows_commits_to_the_config_repository() {
    let data = TempDir::new("demo-config");
    let repo = data.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Test"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    git(&repo, &["config", "commit.gpgsign", "false"]);
    commit(
        &repo,
        "demo-callee.yml",
        "demo:\n  greeting: hello from git\n",
    );

    let data_dir = data.str();
    let repo_uri = repo.display().to_string();
    let registry = KeelProcess::start(
        keel(),
        &["registry", "--bind", "127.0.0.1:0", "--data-dir", &data_dir],
        &[],
        &["registry"],
    );
    let config = KeelProcess::start(
        keel(),
        &[
            "config",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--git-uri",
            &repo_uri,
            "--refresh-interval",
            "0s",
        ],
        &[],
        &["config"],
    );
    let config_url = format!("http://{}", config.addr("config"));
    let cache = data.path().join("demo-cache").display().to_string();
    let callee = start_demo(
        "demo-callee",
        &format!("http://{}/eureka/", registry.addr("registry")),
        &["--config-url", &config_url, "--config-cache", &cache],
    );
    let addr = callee.addr("demo-callee");
    assert_eq!(message(addr).await.as_deref(), Some("hello from git"));

    commit(&repo, "demo-callee.yml", "demo:\n  greeting: hello again\n");
    let hook = http(
        config.addr("config"),
        "POST",
        "/monitor",
        &[("Content-Type", "application/json")],
        br#"{"path":"demo-callee.yml"}"#,
    )
    .await
    .unwrap();
    assert_eq!(hook.status, 200, "{}", hook.body);
    eventually(Duration::from_secs(20), "the new greeting", || async {
        (message(addr).await.as_deref() == Some("hello again")).then_some(())
    })
    .await;
    // The client wrote what it read to its disk cache.
    assert!(std::fs::read_dir(&cache).unwrap().next().is_some());
}
