//! The `/keel/v1/watch` SSE stream over a real socket: snapshot, upsert, delete, resume by
//! `Last-Event-ID`, filters, and the end of the stream at shutdown. The format is pinned.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keel_eureka::InstanceStatus;
use keel_registry::{Origin, RegistryConfig};

use crate::support::{EPOCH_MS, FixedClock, TestServer, app, id, instance};

/// Reads SSE blocks (separated by a blank line) from a streaming response.
struct Events {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Events {
    async fn open(s: &TestServer, query: &str, last_event_id: Option<u64>) -> Self {
        let mut req = crate::support::builder()
            .build()
            .unwrap()
            .get(s.url(&format!("/keel/v1/watch{query}")));
        if let Some(v) = last_event_id {
            req = req.header("last-event-id", v.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Self {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event block (comments skipped), or `None` when the stream ends.
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf[..end].to_owned();
                self.buf.drain(..end + 2);
                if block.lines().all(|l| l.starts_with(':')) {
                    continue;
                }
                return Some(block);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }
}

async fn server(config: RegistryConfig) -> TestServer {
    TestServer::start(config, Arc::new(FixedClock(EPOCH_MS))).await
}

#[tokio::test]
async fn snapshot_then_upserts_and_deletes_then_resume() {
    let s = server(RegistryConfig::default()).await;
    let r = &s.registry;
    r.register(instance("orders", "o-1", 30, 90), Origin::Client);
    let mut events = Events::open(&s, "", None).await;
    let snapshot = events.next().await.unwrap();
    r.register(instance("billing", "b-1", 30, 90), Origin::Client);
    r.set_status_override(
        &app("billing"),
        &id("b-1"),
        InstanceStatus::Down,
        None,
        Origin::Client,
    );
    r.cancel(&app("orders"), &id("o-1"), Origin::Client);
    let upsert = events.next().await.unwrap();
    let down = events.next().await.unwrap();
    let delete = events.next().await.unwrap();
    insta::assert_snapshot!("watch_snapshot", snapshot);
    insta::assert_snapshot!("watch_upsert", upsert);
    insta::assert_snapshot!("watch_upsert_down", down);
    insta::assert_snapshot!("watch_delete", delete);

    // Resuming after the upsert (id 2) replays exactly the two later events.
    let mut resumed = Events::open(&s, "", Some(2)).await;
    assert_eq!(resumed.next().await.unwrap(), down);
    assert_eq!(resumed.next().await.unwrap(), delete);
    // Up to date: nothing is replayed, new events follow.
    let mut current = Events::open(&s, "", Some(4)).await;
    r.cancel(&app("billing"), &id("b-1"), Origin::Client);
    assert!(
        current
            .next()
            .await
            .unwrap()
            .starts_with("event: delete\nid: 5\n")
    );
}

#[tokio::test]
async fn a_too_old_last_event_id_gets_a_fresh_snapshot() {
    let config = RegistryConfig {
        watch_history: 2,
        ..RegistryConfig::default()
    };
    let s = server(config).await;
    for i in 0..5 {
        s.registry.register(
            instance("orders", &format!("o-{i}"), 30, 90),
            Origin::Client,
        );
    }
    let mut events = Events::open(&s, "", Some(1)).await;
    let first = events.next().await.unwrap();
    assert!(first.starts_with("event: snapshot\nid: 5\n"), "{first}");
    assert_eq!(first.matches("\"instanceId\"").count(), 5);
}

#[tokio::test]
async fn filters_by_app_and_vip() {
    let s = server(RegistryConfig::default()).await;
    let r = &s.registry;
    r.register(instance("orders", "o-1", 30, 90), Origin::Client);
    r.register(instance("billing", "b-1", 30, 90), Origin::Client);
    let mut by_app = Events::open(&s, "?app=billing", None).await;
    let mut by_vip = Events::open(&s, "?vip=orders", None).await;
    let snap = by_app.next().await.unwrap();
    assert!(snap.contains("b-1") && !snap.contains("o-1"), "{snap}");
    let snap = by_vip.next().await.unwrap();
    assert!(snap.contains("o-1") && !snap.contains("b-1"), "{snap}");

    // The orders instance moves to another VIP: for the VIP watcher it is gone.
    let mut moved = instance("orders", "o-1", 30, 90);
    moved.vip_address = Some("elsewhere".into());
    moved.last_dirty_timestamp = 2000;
    r.register(moved, Origin::Client);
    r.cancel(&app("billing"), &id("b-1"), Origin::Client);
    let e = by_vip.next().await.unwrap();
    assert!(
        e.starts_with("event: delete\nid: 3\n") && e.contains("o-1"),
        "{e}"
    );
    let e = by_app.next().await.unwrap();
    assert!(
        e.starts_with("event: delete\nid: 4\n") && e.contains("b-1"),
        "{e}"
    );
}

#[tokio::test]
async fn streams_end_at_shutdown() {
    let s = server(RegistryConfig::default()).await;
    let mut events = Events::open(&s, "", None).await;
    assert!(events.next().await.unwrap().starts_with("event: snapshot"));
    s.shutdown.begin().await;
    assert_eq!(events.next().await, None);
}
