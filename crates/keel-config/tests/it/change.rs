//! Change flows: commit → webhook → watch; last-known-good; resume; webhook signatures.

use std::time::Duration;

use keel_test_support::eventually;

use crate::sse;
use crate::support::{Repo, Server, value};

fn base_repo() -> Repo {
    let repo = Repo::new();
    repo.commit(
        &[
            ("application.yml", "shared: one\n"),
            ("foo.yml", "foo:\n  name: first\n"),
            ("other.yml", "other:\n  name: first\n"),
        ],
        "first",
    );
    repo
}

async fn served_version(server: &Server, path: &str) -> String {
    server.json(path).await["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn commit_webhook_and_watch_notify_exactly_the_changed_watchers() {
    let repo = base_repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    let server = Server::git(&repo, |_| {}).await;
    let mut foo = sse::Stream::open(
        server.addr,
        "/keel/v1/watch?application=foo&profile=default",
        &[],
    )
    .await;
    assert_eq!(foo.status, 200);
    let snap = foo.expect("foo snapshot").await;
    assert_eq!(
        (snap.event.as_str(), snap.id.as_str()),
        ("snapshot", first.as_str())
    );
    let env: serde_json::Value = serde_json::from_str(&snap.data).unwrap();
    assert_eq!(value(&env, "foo.name"), Some(&serde_json::json!("first")));
    let mut other = sse::Stream::open(server.addr, "/keel/v1/watch?application=other", &[]).await;
    assert_eq!(other.expect("other snapshot").await.event, "snapshot");

    let watchers = server.json("/keel/v1/watchers").await;
    assert_eq!(watchers.as_array().unwrap().len(), 2, "{watchers}");

    // Only foo's configuration changes.
    let second = repo.commit(&[("foo.yml", "foo:\n  name: second\n")], "foo changes");
    server.webhook().await;
    let change = foo.expect("foo change").await;
    assert_eq!(
        (change.event.as_str(), change.id.as_str()),
        ("change", second.as_str())
    );
    let env: serde_json::Value = serde_json::from_str(&change.data).unwrap();
    assert_eq!(value(&env, "foo.name"), Some(&serde_json::json!("second")));

    // Then other's: its watcher's first event is this commit, not the previous one.
    let third = repo.commit(&[("other.yml", "other:\n  name: third\n")], "other changes");
    server.webhook().await;
    let change = other.expect("other change").await;
    assert_eq!(
        (change.event.as_str(), change.id.as_str()),
        ("change", third.as_str())
    );

    // A shared file changes both.
    let fourth = repo.commit(&[("application.yml", "shared: two\n")], "shared changes");
    server.webhook().await;
    assert_eq!(foo.expect("foo shared change").await.id, fourth);
    assert_eq!(other.expect("other shared change").await.id, fourth);

    let watchers = server.json("/keel/v1/watchers").await;
    assert!(
        watchers
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["version"] == fourth),
        "{watchers}"
    );

    // Shutdown ends the streams.
    server.shutdown.begin().await;
    assert!(
        tokio::time::timeout(Duration::from_secs(10), foo.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn last_event_id_resumes_without_a_second_snapshot() {
    let repo = base_repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    let server = Server::git(&repo, |_| {}).await;
    let path = "/keel/v1/watch?application=foo&profile=default&label=main";
    // Up to date: nothing is sent until the next change.
    let mut current = sse::Stream::open(server.addr, path, &[("Last-Event-ID", &first)]).await;
    let second = repo.commit(&[("foo.yml", "foo:\n  name: second\n")], "second");
    server.webhook().await;
    let e = current.expect("change after resume").await;
    assert_eq!(
        (e.event.as_str(), e.id.as_str()),
        ("change", second.as_str())
    );
    // Behind: the missed version arrives at once as a change.
    let mut behind = sse::Stream::open(server.addr, path, &[("Last-Event-ID", &first)]).await;
    let e = behind.expect("catch-up change").await;
    assert_eq!(
        (e.event.as_str(), e.id.as_str()),
        ("change", second.as_str())
    );
    server.stop().await;
}

#[tokio::test]
async fn broken_commits_are_kept_out_and_the_last_good_version_is_served() {
    let repo = base_repo();
    let good = repo.git(&["rev-parse", "HEAD"]);
    let server = Server::git(&repo, |c| c.encrypt_key = Some("foo".into())).await;
    let mut watch = sse::Stream::open(server.addr, "/keel/v1/watch?application=foo", &[]).await;
    watch.expect("snapshot").await;

    let broken = repo.commit(&[("application.yml", "shared: [unclosed\n")], "broken yaml");
    server.webhook().await;
    let status = eventually(
        Duration::from_secs(20),
        "the broken commit to be rejected",
        || async {
            let s = server.json("/keel/v1/status").await;
            (s["labels"]["main"]["latest"] == broken).then_some(s)
        },
    )
    .await;
    assert_eq!(status["labels"]["main"]["served"], good);
    assert_eq!(
        status["labels"]["main"]["rejected"]["errors"][0]["file"],
        "application.yml"
    );
    // Every application keeps its last good configuration: no 500s.
    for app in ["foo", "other", "nobody"] {
        let env = server.json(&format!("/{app}/default")).await;
        assert_eq!(env["version"], good);
        assert_eq!(value(&env, "shared"), Some(&serde_json::json!("one")));
    }
    assert_eq!(server.get("/foo-default.yml").await.status, 200);
    let health = server.health.report(true);
    let details = &health.components["configServer"].details;
    assert!(
        details["rejected"].to_string().contains(&broken),
        "{details:?}"
    );

    // A {cipher} value that does not decrypt is kept out too.
    let bad_cipher = repo.commit(
        &[("application.yml", "shared: three\n"), ("foo.yml", "foo:\n  password: '{cipher}00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff'\n")],
        "undecryptable",
    );
    server.webhook().await;
    eventually(
        Duration::from_secs(20),
        "the bad cipher to be rejected",
        || async {
            let s = server.json("/keel/v1/status").await;
            (s["labels"]["main"]["latest"] == bad_cipher).then_some(())
        },
    )
    .await;
    assert_eq!(served_version(&server, "/foo/default").await, good);

    // A fix is served and pushed to watchers.
    let fixed = repo.commit(
        &[
            ("application.yml", "shared: fixed\n"),
            ("foo.yml", "foo:\n  name: fixed\n"),
        ],
        "fix",
    );
    server.webhook().await;
    let e = watch.expect("change to the fixed commit").await;
    assert_eq!(e.id, fixed);
    let env = server.json("/foo/default").await;
    assert_eq!(value(&env, "shared"), Some(&serde_json::json!("fixed")));
    let status = server.json("/keel/v1/status").await;
    assert!(status["labels"]["main"]["rejected"].is_null());
    server.stop().await;
}

#[tokio::test]
async fn webhooks_with_bad_signatures_get_401_and_change_nothing() {
    use hmac::Mac;
    let repo = base_repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    let server = Server::git(&repo, |c| c.monitor_secret = Some("s3cret".into())).await;
    let second = repo.commit(&[("foo.yml", "foo:\n  name: second\n")], "second");
    let body = br#"{"ref":"refs/heads/main","commits":[{"modified":["foo.yml"]}]}"#;
    for headers in [
        vec![
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        vec![("X-GitHub-Event", "push")],
        vec![("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "wrong")],
        vec![("X-Gitea-Event", "push"), ("X-Gitea-Signature", "abcd")],
        vec![("Content-Type", "application/json")],
    ] {
        let mut h = headers.clone();
        h.push(("Content-Type", "application/json"));
        let r = server.post("/monitor", &h, body).await;
        assert_eq!(r.status, 401, "{headers:?}: {}", r.body);
    }
    // Give a wrongly accepted hook every chance to show, then check nothing moved.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_version(&server, "/foo/default").await, first);

    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let r = server
        .post(
            "/monitor",
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &sig),
                ("Content-Type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap(),
        serde_json::json!(["foo"])
    );
    eventually(
        Duration::from_secs(20),
        "the signed push to be fetched",
        || async { (served_version(&server, "/foo/default").await == second).then_some(()) },
    )
    .await;
    let r = server
        .post(
            "/monitor",
            &[
                ("X-Gitlab-Event", "Push Hook"),
                ("X-Gitlab-Token", "s3cret"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn bursts_of_webhooks_are_debounced_into_one_fetch() {
    let repo = base_repo();
    let server = Server::git(&repo, |c| c.debounce = Duration::from_secs(1)).await;
    let before = server.json("/keel/v1/status").await["generation"]
        .as_u64()
        .unwrap();
    let last = repo.commit(&[("foo.yml", "foo:\n  name: burst\n")], "burst");
    for _ in 0..10 {
        server.webhook().await;
    }
    eventually(
        Duration::from_secs(20),
        "the burst to be fetched",
        || async { (served_version(&server, "/foo/default").await == last).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = server.json("/keel/v1/status").await["generation"]
        .as_u64()
        .unwrap();
    assert!(
        after - before <= 2,
        "{} reloads for one burst",
        after - before
    );
    server.stop().await;
}

#[tokio::test]
async fn cached_reads_and_renderings_follow_a_new_commit() {
    let repo = base_repo();
    let server = Server::git(&repo, |_| {}).await;
    for _ in 0..2 {
        let env = server.json("/foo/default").await;
        assert_eq!(value(&env, "foo.name"), Some(&serde_json::json!("first")));
        assert!(server.get("/foo-default.yml").await.body.contains("first"));
        assert!(
            server
                .get("/main/foo-default.properties")
                .await
                .body
                .contains("foo.name: first")
        );
    }
    let etag_before = server.get("/foo/default").await.head;
    repo.commit(&[("foo.yml", "foo:\n  name: second\n")], "second");
    server.webhook().await;
    eventually(Duration::from_secs(20), "the new value", || async {
        let env = server.json("/foo/default").await;
        (value(&env, "foo.name") == Some(&serde_json::json!("second"))).then_some(())
    })
    .await;
    assert!(server.get("/foo-default.yml").await.body.contains("second"));
    assert!(
        server
            .get("/main/foo-default.properties")
            .await
            .body
            .contains("foo.name: second")
    );
    let etag_after = server.get("/foo/default").await.head;
    let tag = |head: &str| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
            .map(str::to_owned)
    };
    assert_ne!(tag(&etag_before), tag(&etag_after));
    assert!(tag(&etag_after).is_some());
    server.stop().await;
}
