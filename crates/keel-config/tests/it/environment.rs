//! The Environment API over HTTP: golden bodies, precedence, labels, unknowns, media types, ETags.

use crate::fixture;
use crate::support::{Server, insta_settings, value};

fn with_key(c: &mut keel_config::ConfigServerConfig) {
    c.encrypt_key = Some("foo".into());
    c.search_paths = vec!["services/{application}".into()];
}

#[tokio::test]
async fn environment_json_matches_golden_bodies() {
    let repo = fixture::repo();
    let server = Server::git(&repo, with_key).await;
    let settings = insta_settings(&repo, server.basedir.path());
    for (name, path) in [
        ("env_foo_default", "/foo/default"),
        ("env_foo_dev_db", "/foo/dev,db"),
        ("env_foo_prod_main", "/foo/prod/main"),
        ("env_bar_search_path", "/bar/default"),
        ("env_secret_decrypted", "/secret/default"),
    ] {
        let body = server.json(path).await;
        settings.bind(|| insta::assert_json_snapshot!(name, body));
    }
    server.stop().await;
}

#[tokio::test]
async fn precedence_and_yaml11_booleans() {
    let repo = fixture::repo();
    let server = Server::git(&repo, with_key).await;
    // Jackson's field order, which the golden snapshots (sorted JSON) do not pin.
    let raw = server.get("/foo/dev").await.body;
    let head = r#"{"name":"foo","profiles":["dev"],"label":"main","version":""#;
    assert!(raw.starts_with(head), "{raw}");
    assert!(
        raw.contains(r#","state":null,"propertySources":[{"name":"#),
        "{raw}"
    );
    let env = server.json("/foo/dev").await;
    assert_eq!(env["name"], "foo");
    assert_eq!(env["profiles"], serde_json::json!(["dev"]));
    assert_eq!(env["label"], "main");
    assert_eq!(env["version"], repo.git(&["rev-parse", "HEAD"]));
    // .properties beats .yml for the same profile; the profile beats the default.
    assert_eq!(value(&env, "foo.count"), Some(&serde_json::json!("5")));
    assert_eq!(value(&env, "foo.name"), Some(&serde_json::json!("Foo Dev")));
    // YAML 1.1: yes/on/no are booleans.
    assert_eq!(value(&env, "foo.answer"), Some(&serde_json::json!(true)));
    assert_eq!(
        value(&env, "feature.enabled"),
        Some(&serde_json::json!(true))
    );
    assert_eq!(
        value(&env, "feature.legacy"),
        Some(&serde_json::json!(false))
    );
    // Multi-document: the prod document only applies to prod.
    let prod = server.json("/foo/prod").await;
    assert_eq!(
        value(&prod, "feature.enabled"),
        Some(&serde_json::json!(false))
    );
    assert_eq!(
        value(&prod, "servers[0]"),
        Some(&serde_json::json!("prod.example.com"))
    );
    // {cipher} is served decrypted.
    let secret = server.json("/secret/default").await;
    assert_eq!(
        value(&secret, "secret.password"),
        Some(&serde_json::json!("foo"))
    );
    server.stop().await;
}

#[tokio::test]
async fn labels_resolve_branches_tags_commits_and_master_fallback() {
    let repo = fixture::repo();
    let first = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["tag", "v1"]);
    repo.git(&["checkout", "-q", "-b", "feature/x"]);
    let feature = repo.commit(&[("foo.yml", "foo:\n  name: Feature\n")], "feature");
    repo.git(&["checkout", "-q", "main"]);
    let second = repo.commit(&[("foo.yml", "foo:\n  name: Second\n")], "second");
    let server = Server::git(&repo, |_| {}).await;

    let name = |env: &serde_json::Value| value(env, "foo.name").cloned();
    let main = server.json("/foo/default").await;
    assert_eq!(
        (main["version"].as_str(), name(&main)),
        (Some(second.as_str()), Some("Second".into()))
    );
    // The Python client always asks for master; the repository only has main.
    let master = server.json("/foo/default/master").await;
    assert_eq!(master["version"], second);
    assert_eq!(master["label"], "master");
    let tag = server.json("/foo/default/v1").await;
    assert_eq!(tag["version"], first);
    assert_eq!(name(&tag), Some("Foo".into()));
    let branch = server.json("/foo/default/feature(_)x").await;
    assert_eq!(branch["version"], feature);
    assert_eq!(branch["label"], "feature/x");
    let by_commit = server.json(&format!("/foo/default/{first}")).await;
    assert_eq!(by_commit["version"], first);
    let short = server.json(&format!("/foo/default/{}", &first[..10])).await;
    assert_eq!(short["version"], first);

    let missing = server.get("/foo/default/nope").await;
    assert_eq!(missing.status, 404);
    let err: serde_json::Value = serde_json::from_str(&missing.body).unwrap();
    assert_eq!(err["status"], 404);
    assert_eq!(err["error"], "Not Found");
    assert_eq!(err["path"], "/foo/default/nope");
    assert!(err["timestamp"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn master_repositories_answer_main() {
    let repo = crate::support::Repo::new();
    repo.git(&["checkout", "-q", "-b", "master"]);
    repo.commit(&[("application.yml", "a: 1\n")], "on master");
    let server = Server::git(&repo, |_| {}).await;
    let env = server.json("/any/default").await;
    assert_eq!(value(&env, "a"), Some(&serde_json::json!(1)));
    assert_eq!(env["label"], "main");
    server.stop().await;
}

#[tokio::test]
async fn unknown_applications_get_shared_sources_unless_accept_empty_is_off() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |_| {}).await;
    let env = server.json("/nobody/default").await;
    let names: Vec<&str> = env["propertySources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ps| ps["name"].as_str().unwrap())
        .collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.contains("application")), "{names:?}");
    server.stop().await;

    let empty = crate::support::Repo::new();
    empty.commit(&[("foo.yml", "a: 1\n")], "only foo");
    let strict = Server::git(&empty, |c| c.accept_empty = false).await;
    assert_eq!(strict.get("/nobody/default").await.status, 404);
    assert_eq!(strict.get("/foo/default").await.status, 200);
    strict.stop().await;
}

#[tokio::test]
async fn media_types_and_etags() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |_| {}).await;
    let v2 = "application/vnd.spring-cloud.config-server.v2+json";
    let r = server.get_with("/foo/default", &[("Accept", v2)]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains(&format!("content-type: {v2}")),
        "{}",
        r.head
    );
    let plain = server
        .get_with("/foo/default", &[("Accept", "application/json")])
        .await;
    assert!(
        plain
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(plain.body, r.body);
    let any = server.get_with("/foo/default", &[("Accept", "*/*")]).await;
    assert_eq!(any.body, r.body);

    let etag = header(&r.head, "etag").expect("etag");
    let again = server
        .get_with("/foo/default", &[("If-None-Match", &etag)])
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let other = server
        .get_with("/foo/default", &[("If-None-Match", "\"nope\"")])
        .await;
    assert_eq!(other.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn bad_profiles_are_refused() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |_| {}).await;
    assert_eq!(server.get("/foo/-dev").await.status, 400);
    assert_eq!(server.get("/foo/de%20v").await.status, 400);
    server.stop().await;
}

pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
