//! Start-up sync: before a node reports ready it copies the full registry of every peer it
//! can reach (`GET {peer}apps`), so a node that starts or rejoins serves the cluster's view.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use http::StatusCode;
use keel_eureka::{Format, decode_applications};

use super::client::PeerClient;
use super::link::PeerLink;
use super::sender::LOOP_DETECTED;
use super::{ClusterConfig, ClusterInner};
use crate::engine::Origin;

/// What one peer contributed.
enum Fetched {
    Instances(usize),
    ItIsMe,
    Failed(String),
}

/// Syncs from all reachable peers (their union; `lastDirtyTimestamp` decides between
/// copies). Retries with back-off until at least one peer answered or `sync_wait` passed:
/// a cluster starting cold has nobody to copy from, and must still become ready.
pub(crate) async fn startup_sync(inner: Arc<ClusterInner>) {
    let config = inner.config.clone();
    let deadline = tokio::time::Instant::now() + config.sync_wait;
    let mut backoff = config.retry_backoff_min;
    loop {
        let links: Vec<Arc<PeerLink>> = inner
            .links
            .load()
            .iter()
            .filter(|l| !l.is_self())
            .cloned()
            .collect();
        if links.is_empty() {
            break;
        }
        let results = join_all(links.iter().map(|l| fetch(&inner, l, &config))).await;
        let mut synced = 0;
        let mut instances = 0;
        for (link, result) in links.iter().zip(results) {
            match result {
                Fetched::Instances(n) => {
                    synced += 1;
                    instances += n;
                }
                Fetched::ItIsMe => link.mark_self(),
                Fetched::Failed(e) => {
                    tracing::debug!(peer = %link.url, error = %e, "start-up sync from peer failed");
                }
            }
        }
        if synced > 0 {
            tracing::info!(peers = synced, instances, "start-up sync done");
            break;
        }
        if links.iter().all(|l| l.is_self()) {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(wait = ?config.sync_wait, "no peer reachable for start-up sync; serving what this node has");
            break;
        }
        tokio::select! {
            () = inner.stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(config.retry_backoff_max);
    }
    inner.mark_synced();
}

async fn fetch(inner: &ClusterInner, link: &PeerLink, config: &ClusterConfig) -> Fetched {
    let mut client = PeerClient::new(
        link.url.clone(),
        inner.connector.clone(),
        inner.registry.node_id().to_owned(),
        config.connect_timeout,
        config.request_timeout,
    );
    // An empty batch first: it tells us whether the URL is this node (508) before we copy
    // our own empty registry and call that a sync.
    match client
        .post_batch(Bytes::from_static(b"{\"replicationList\":[]}"))
        .await
    {
        Ok(r) if r.status.as_u16() == LOOP_DETECTED => return Fetched::ItIsMe,
        Ok(_) => {}
        Err(e) => return Fetched::Failed(e.to_string()),
    }
    let response = match client.get_apps().await {
        Ok(r) if r.status == StatusCode::OK => r,
        Ok(r) => return Fetched::Failed(format!("GET apps answered {}", r.status)),
        Err(e) => return Fetched::Failed(e.to_string()),
    };
    let apps = match decode_applications(Format::Json, &response.body) {
        Ok(a) => a,
        Err(e) => return Fetched::Failed(format!("GET apps: {e}")),
    };
    let mut n = 0;
    for app in apps.applications {
        for info in app.instances {
            inner.registry.register(info, Origin::Replicated);
            n += 1;
        }
    }
    Fetched::Instances(n)
}
