//! The NATS bus with two config servers: a webhook to one notifies a watcher on the other.
//! Uses Debian's real `nats-server` ($KEELTEST_NATS_SERVER, else the one on PATH).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_test_support::eventually;

use crate::sse;
use crate::support::{Repo, Server};

struct Nats {
    child: Child,
    url: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_server() -> PathBuf {
    if let Some(p) = std::env::var_os("KEELTEST_NATS_SERVER") {
        return p.into();
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(p) if !p.is_empty() => p.into(),
        _ => panic!(
            "nats-server not found: the bus test needs the real broker. Install it with \
             `apt-get install -y nats-server` (cargo xtask ci does) or set KEELTEST_NATS_SERVER"
        ),
    }
}

async fn start_nats() -> Nats {
    // Pick a free port, then hand it to nats-server (it cannot report an ephemeral port).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(nats_server())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    let nats = Nats {
        child,
        url: format!("nats://127.0.0.1:{port}"),
    };
    eventually(
        Duration::from_secs(20),
        "nats-server to accept connections",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    nats
}

#[tokio::test]
async fn a_webhook_to_one_server_notifies_watchers_of_the_other() {
    let nats = start_nats().await;
    let repo = Repo::new();
    repo.commit(&[("foo.yml", "foo: one\n")], "one");
    let a = Server::git(&repo, |c| c.bus = Some(nats.url.clone())).await;
    let b = Server::git(&repo, |c| c.bus = Some(nats.url.clone())).await;
    let mut watch = sse::Stream::open(b.addr, "/keel/v1/watch?application=foo", &[]).await;
    assert_eq!(watch.expect("snapshot from b").await.event, "snapshot");

    // Subscriptions are set up asynchronously: push until b hears one (each push is a new
    // commit, so a note lost before b subscribed only delays the test).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    let event = loop {
        round += 1;
        repo.commit(&[("foo.yml", &format!("foo: {round}\n"))], "change");
        a.webhook().await;
        match tokio::time::timeout(Duration::from_secs(3), watch.next()).await {
            Ok(Some(e)) => break e,
            Ok(None) => panic!("b's watch stream ended"),
            Err(_) if tokio::time::Instant::now() < deadline => continue,
            Err(_) => panic!("b's watcher never saw a's webhook"),
        }
    };
    assert_eq!(event.event, "change");
    let head = repo.git(&["rev-parse", "HEAD"]);
    // b fetched from git itself: it serves the pushed commit without any webhook of its own.
    eventually(
        Duration::from_secs(20),
        "b to serve the head commit",
        || async { (b.json("/foo/default").await["version"] == head).then_some(()) },
    )
    .await;
    a.stop().await;
    b.stop().await;
}
