//! Path traversal (the CVE-2020-5410 family): nothing outside the repository is ever served.

use std::time::Duration;

use keel_config::{Backend, ConfigServerConfig};

use crate::support::{Repo, Server};

const MARKER: &str = "TOP-SECRET-OUTSIDE-THE-REPO";

fn payloads(outside: &str) -> Vec<String> {
    let enc = outside.replace('/', "%2F");
    let dots = "..%2F".repeat(12);
    vec![
        format!("/foo/default/main/{dots}{}", enc.trim_start_matches("%2F")),
        format!("/foo/default/main/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        "/foo/default/main/..%252F..%252F..%252F..%252Fetc%252Fpasswd".into(),
        "/foo/default/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".into(),
        "/foo/default/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".into(),
        "/foo/default/main/../../../../etc/passwd".into(),
        "/foo/default/main/..\\..\\..\\etc\\passwd".into(),
        "/foo/default/main//etc/passwd".into(),
        format!("/foo/default/main/{enc}"),
        "/foo/default/main/%2Fetc%2Fpasswd".into(),
        "/foo/default/main/link.txt".into(),
        "/foo/default/main/dirlink/secret.txt".into(),
        format!("/foo/default/{dots}etc/passwd"),
        "/foo/default/..%2F..%2F..%2Fetc/passwd".into(),
        "/foo/default/%2e%2e(_)%2e%2e(_)etc/passwd".into(),
        "/foo/default/(_)etc/passwd".into(),
        format!("/foo/default/{enc}"),
        "/..%2F..%2F..%2Fetc/foo-default.yml".into(),
        "/%2e%2e(_)%2e%2e/foo-default.properties".into(),
        "/..%252F..%252Fetc%252Fpasswd/default".into(),
        format!("/{enc}/default"),
        "/foo/default/main/link.txt?useDefaultLabel".into(),
        "/foo/default/dirlink/secret.txt?useDefaultLabel".into(),
    ]
}

fn outside_dir() -> tempfile::TempDir {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), MARKER).unwrap();
    std::fs::write(
        outside.path().join("secret.yml"),
        format!("leak: {MARKER}\n"),
    )
    .unwrap();
    outside
}

async fn assert_refused(server: &Server, outside: &str) {
    for path in payloads(outside) {
        let r = server.get(&path).await;
        assert!(
            !r.body.contains(MARKER) && !r.body.contains("root:"),
            "{path} leaked: {} {}",
            r.status,
            r.body
        );
        assert!(
            matches!(r.status, 400 | 404),
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test]
async fn git_backend_refuses_traversal_payloads_and_symlinks() {
    let outside = outside_dir();
    let secret = outside.path().join("secret.txt");
    let repo = Repo::new();
    repo.write("foo.yml", "foo: bar\n");
    std::os::unix::fs::symlink(&secret, repo.path().join("link.txt")).unwrap();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("dirlink")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yml"),
        repo.path().join("application.yml"),
    )
    .unwrap();
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "symlinks"]);
    let server = Server::git(&repo, |_| {}).await;
    assert_eq!(server.get("/foo/default/main/foo.yml").await.status, 200);
    assert_refused(&server, &outside.path().display().to_string()).await;
    // A symlinked config file is not configuration either.
    let env = server.json("/foo/default").await;
    assert!(!env.to_string().contains(MARKER), "{env}");
    server.stop().await;
}

#[tokio::test]
async fn native_backend_refuses_traversal_payloads_and_symlinks() {
    let outside = outside_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("foo.yml"), "foo: bar\n").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        dir.path().join("link.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.yml"),
        dir.path().join("application.yml"),
    )
    .unwrap();
    let mut config = ConfigServerConfig::new(Backend::Native {
        dir: dir.path().to_owned(),
    });
    config.refresh_interval = Duration::ZERO;
    let server = Server::start(config, tempfile::tempdir().unwrap()).await;
    let env = server.json("/foo/default").await;
    assert_eq!(env["version"], serde_json::Value::Null);
    assert!(!env.to_string().contains(MARKER), "{env}");
    assert_eq!(server.get("/foo/default/main/foo.yml").await.status, 200);
    assert_refused(&server, &outside.path().display().to_string()).await;
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let repo = Repo::new();
    repo.commit(&[("foo.yml", "foo: bar\n")], "one");
    let server = Server::git(&repo, |c| c.encrypt_key = Some("k".into())).await;
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = server
        .post("/encrypt", &[("Content-Type", "text/plain")], &big)
        .await;
    assert_eq!(r.status, 413);
    server.stop().await;
}
