//! /encrypt, /decrypt, history, diff and auth over HTTP.

use keel_config::Credentials;

use crate::fixture::SPRING_CIPHER;
use crate::support::{Repo, Server, value};

#[tokio::test]
async fn encrypt_and_decrypt_follow_spring() {
    let repo = Repo::new();
    repo.commit(&[("foo.yml", "a: 1\n")], "one");
    let server = Server::git(&repo, |c| c.encrypt_key = Some("foo".into())).await;
    let text = [("Content-Type", "text/plain")];
    let r = server
        .post("/decrypt", &text, SPRING_CIPHER.as_bytes())
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "foo"));
    let r = server.post("/encrypt", &text, "s3cret".as_bytes()).await;
    assert_eq!(r.status, 200);
    let ct = r.body;
    assert_ne!(ct, "s3cret");
    let r = server.post("/decrypt", &text, ct.as_bytes()).await;
    assert_eq!(r.body, "s3cret");
    // curl -d sends a form body ending in `=`.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = server.post("/encrypt", &form, b"mysecret=").await;
    let r = server.post("/decrypt", &text, r.body.as_bytes()).await;
    assert_eq!(r.body, "mysecret");
    let r = server
        .post(
            "/decrypt",
            &text,
            b"00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff",
        )
        .await;
    assert_eq!(r.status, 400);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["status"], "INVALID");
    assert_eq!(server.json("/encrypt/status").await["status"], "OK");
    server.stop().await;

    let repo = Repo::new();
    repo.commit(
        &[(
            "foo.yml",
            format!("secret: '{{cipher}}{SPRING_CIPHER}'\n").as_str(),
        )],
        "cipher",
    );
    let keyless = Server::git(&repo, |_| {}).await;
    let r = keyless.post("/encrypt", &text, b"x").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("NO_KEY"), "{}", r.body);
    // Without a key, Spring serves invalid.<key> = <n/a>.
    let env = keyless.json("/foo/default").await;
    assert_eq!(
        value(&env, "invalid.secret"),
        Some(&serde_json::json!("<n/a>"))
    );
    assert_eq!(value(&env, "secret"), None);
    keyless.stop().await;
}

#[tokio::test]
async fn history_and_diff_describe_changes() {
    let repo = Repo::new();
    let c1 = repo.commit(
        &[
            ("foo.yml", "foo:\n  a: 1\n  b: 1\n"),
            ("bar.yml", "bar: 1\n"),
        ],
        "first",
    );
    let c2 = repo.commit(&[("bar.yml", "bar: 2\n")], "bar only");
    let c3 = repo.commit(&[("foo-dev.yml", "foo:\n  a: 2\n  c: 3\n")], "foo dev");
    let c4 = repo.commit(&[("application.yml", "shared: x\n")], "shared");
    let server = Server::git(&repo, |_| {}).await;
    let h = server.json("/keel/v1/history/foo").await;
    let commits: Vec<&str> = h["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit"].as_str().unwrap())
        .collect();
    assert_eq!(commits, [c4.as_str(), c3.as_str(), c1.as_str()], "{h}");
    assert_eq!(h["commits"][1]["files"], serde_json::json!(["foo-dev.yml"]));
    assert_eq!(h["commits"][1]["message"], "foo dev");
    assert_eq!(h["commits"][1]["author"], "Test");
    let limited = server.json("/keel/v1/history/bar?limit=1").await;
    assert_eq!(limited["commits"].as_array().unwrap().len(), 1);
    assert_eq!(limited["commits"][0]["commit"], c4);

    let d = server
        .json(&format!(
            "/keel/v1/diff/{c2}/{c3}?application=foo&profile=dev"
        ))
        .await;
    assert_eq!(d["from"], c2);
    assert_eq!(d["to"], c3);
    assert_eq!(d["added"], serde_json::json!({"foo.c": 3}));
    assert_eq!(
        d["changed"],
        serde_json::json!({"foo.a": {"old": 1, "new": 2}})
    );
    assert_eq!(d["removed"], serde_json::json!({}));
    let same = server
        .json(&format!("/keel/v1/diff/{c2}/{c3}?application=foo"))
        .await;
    assert_eq!(same["changed"], serde_json::json!({}));
    let by_label = server
        .json(&format!(
            "/keel/v1/diff/{c1}/main?application=foo&profile=dev"
        ))
        .await;
    assert_eq!(by_label["to"], c4);
    assert_eq!(
        server
            .get(&format!("/keel/v1/diff/{c1}/nope?application=foo"))
            .await
            .status,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn read_and_admin_auth_are_separate() {
    let repo = Repo::new();
    repo.commit(&[("foo.yml", "a: 1\n")], "one");
    let server = Server::git(&repo, |c| {
        c.read_auth = Some(Credentials::parse("basic:reader:pw").unwrap());
        c.admin_auth = Some(Credentials::parse("bearer:admintoken").unwrap());
        c.encrypt_key = Some("k".into());
    })
    .await;
    let r = server.get("/foo/default").await;
    assert_eq!(r.status, 401);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("www-authenticate: basic")
    );
    // reader:pw
    let basic = [("Authorization", "Basic cmVhZGVyOnB3")];
    assert_eq!(server.get_with("/foo/default", &basic).await.status, 200);
    assert_eq!(
        server
            .get_with("/foo/default", &[("Authorization", "Basic cmVhZGVyOnd4")])
            .await
            .status,
        401
    );
    assert_eq!(server.get("/keel/v1/watchers").await.status, 401);
    assert_eq!(
        server.get_with("/keel/v1/watchers", &basic).await.status,
        200
    );
    // Admin endpoints take the admin credentials, not the reader's.
    assert_eq!(server.post("/encrypt", &basic, b"x").await.status, 401);
    let admin = [("Authorization", "Bearer admintoken")];
    assert_eq!(server.post("/encrypt", &admin, b"x").await.status, 200);
    assert_eq!(server.post("/monitor", &[], b"{}").await.status, 401);
    // Health stays open for probes.
    assert_eq!(server.get("/actuator/health").await.status, 200);
    server.stop().await;
}
