//! The shipped `post-receive` hook: a push to the bare repository notifies the config centre.

use std::path::Path;

use crate::sse;
use crate::support::{Repo, Server};

#[tokio::test]
async fn post_receive_hook_notifies_watchers_after_a_push() {
    let work = Repo::new();
    work.commit(&[("foo.yml", "foo: one\n")], "one");
    let bare_dir = tempfile::tempdir().unwrap();
    let bare = bare_dir.path().join("config.git");
    work.git(&["clone", "-q", "--bare", &work.uri(), bare.to_str().unwrap()]);
    let server = Server::git(&work, |c| {
        c.backend = keel_config::Backend::Git {
            uri: bare.display().to_string(),
            basedir: match &c.backend {
                keel_config::Backend::Git { basedir, .. } => basedir.clone(),
                keel_config::Backend::Native { .. } => unreachable!(),
            },
        };
        c.monitor_secret = Some("hook-secret".into());
    })
    .await;

    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/post-receive");
    std::fs::copy(&hook, bare.join("hooks/post-receive")).unwrap();
    let git_bare = |args: &[&str]| {
        let mut full = vec!["-C", bare.to_str().unwrap()];
        full.extend_from_slice(args);
        work.git(&full)
    };
    git_bare(&["config", "keel.url", &format!("http://{}", server.addr)]);
    git_bare(&["config", "keel.secret", "hook-secret"]);

    let mut watch = sse::Stream::open(server.addr, "/keel/v1/watch?application=foo", &[]).await;
    assert_eq!(watch.expect("snapshot").await.event, "snapshot");
    let pushed = work.commit(&[("foo.yml", "foo: \"two, with \\\"quotes\\\"\"\n")], "two");
    work.git(&["push", "-q", bare.to_str().unwrap(), "main"]);
    let e = watch.expect("the pushed commit").await;
    assert_eq!(
        (e.event.as_str(), e.id.as_str()),
        ("change", pushed.as_str())
    );
    assert!(e.data.contains("two, with"), "{}", e.data);
    server.stop().await;
}
