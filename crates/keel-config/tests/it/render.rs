//! Merged renderings and plain-text resources over HTTP.

use crate::fixture;
use crate::support::{Server, insta_settings};

#[tokio::test]
async fn renderings_match_golden_bodies() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |c| {
        c.encrypt_key = Some("foo".into());
        c.search_paths = vec!["services/{application}".into()];
    })
    .await;
    let settings = insta_settings(&repo, server.basedir.path());
    for (name, path) in [
        ("render_foo_dev_yml", "/foo-dev.yml"),
        ("render_foo_dev_yaml_labelled", "/main/foo-dev.yaml"),
        ("render_foo_dev_properties", "/foo-dev.properties"),
        ("render_foo_prod_json", "/foo-prod.json"),
        ("render_bar_default_properties", "/bar-default.properties"),
        (
            "render_foo_default_unresolved_properties",
            "/foo-default.properties?resolvePlaceholders=false",
        ),
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        let body = r.body;
        settings.bind(|| insta::assert_snapshot!(name, body));
    }
    // A name with hyphens: the profile is after the last one.
    let r = server.get("/foo-dev-dev.properties").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("shared.from: properties"), "{}", r.body);
    assert_eq!(server.get("/nolabel/foo-dev.yml").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn plain_text_resources_use_profiles_and_placeholders() {
    let repo = fixture::repo();
    let server = Server::git(&repo, |_| {}).await;
    let r = server.get("/foo/default/main/nginx.conf").await;
    assert_eq!((r.status, r.body.as_str()), (200, "server_name Foo;\n"));
    let r = server.get("/foo/dev/main/nginx.conf").await;
    assert_eq!((r.status, r.body.as_str()), (200, "server_name dev;\n"));
    let r = server
        .get("/foo/default/main/nginx.conf?resolvePlaceholders=false")
        .await;
    assert_eq!(r.body, fixture::NGINX_CONF);
    let r = server.get("/foo/default/nginx.conf?useDefaultLabel").await;
    assert_eq!((r.status, r.body.as_str()), (200, "server_name Foo;\n"));
    // The Python client asks for master.
    let r = server.get("/foo/default/master/README.md").await;
    assert_eq!((r.status, r.body.as_str()), (200, "not configuration\n"));
    assert_eq!(
        server.get("/foo/default/main/missing.txt").await.status,
        404
    );
    server.stop().await;
}
