//! A peer's sender task: takes coalesced batches from its queue, posts them on Eureka's
//! batch wire format, handles per-item 404 (re-register) and 409 (adopt the peer's newer
//! copy), and backs off while the peer is unreachable. It never blocks the request path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use keel_eureka::{
    InstanceStatus, ReplicationAction, ReplicationItem, ReplicationItemResponse,
    decode_replication_response, encode_replication_list,
};

use super::ClusterConfig;
use super::client::PeerClient;
use super::link::PeerLink;
use super::queue::{Key, Task};
use crate::engine::{LocalWrite, Origin, Record, Registry};

/// 508 Loop Detected: what a node answers a batch that it sent itself.
pub(crate) const LOOP_DETECTED: u16 = 508;

pub(crate) async fn run(
    link: Arc<PeerLink>,
    registry: Registry,
    mut client: PeerClient,
    config: Arc<ClusterConfig>,
) {
    let mut backoff = config.retry_backoff_min;
    loop {
        tokio::select! {
            () = link.stop.cancelled() => return,
            () = link.queue.ready() => {}
        }
        // Let writes arriving together travel together.
        if !config.batch_delay.is_zero() && !pause(&link, config.batch_delay).await {
            return;
        }
        loop {
            let batch = link.queue.take(config.batch_size);
            if batch.is_empty() {
                break;
            }
            match send(&link, &registry, &mut client, batch).await {
                Sent::Ok => backoff = config.retry_backoff_min,
                Sent::Retry(batch) => {
                    link.queue.requeue(batch);
                    if !pause(&link, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(config.retry_backoff_max);
                }
                Sent::Dropped => {
                    if !pause(&link, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(config.retry_backoff_max);
                }
                Sent::ToSelf => return,
            }
        }
    }
}

/// Sleeps unless stopped first; false when stopped.
async fn pause(link: &PeerLink, d: Duration) -> bool {
    tokio::select! {
        () = link.stop.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

enum Sent {
    Ok,
    /// Transient failure: put the batch back and retry after a back-off.
    Retry(Vec<(Key, Vec<Task>)>),
    /// The peer refused the batch as a whole (e.g. 401): retrying would not help.
    Dropped,
    ToSelf,
}

async fn send(
    link: &PeerLink,
    registry: &Registry,
    client: &mut PeerClient,
    batch: Vec<(Key, Vec<Task>)>,
) -> Sent {
    let mut items = Vec::new();
    let mut sent_tasks = Vec::new();
    for (_, tasks) in &batch {
        for task in tasks {
            if let Some(item) = item(registry, task) {
                items.push(item);
                sent_tasks.push(task);
            }
        }
    }
    if items.is_empty() {
        return Sent::Ok;
    }
    let mut body = Vec::with_capacity(items.len() * 256);
    encode_replication_list(&items, &mut body);
    let response = match client.post_batch(Bytes::from(body)).await {
        Ok(r) => r,
        Err(e) => {
            link.failed(e.to_string());
            return Sent::Retry(batch);
        }
    };
    match response.status {
        s if s.as_u16() == LOOP_DETECTED => {
            link.mark_self();
            return Sent::ToSelf;
        }
        StatusCode::OK => {}
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            link.failed(format!("peer answered {s}"));
            return Sent::Retry(batch);
        }
        s => {
            link.failed(format!("peer refused the batch with {s}"));
            return Sent::Dropped;
        }
    }
    let responses = match decode_replication_response(&response.body) {
        Ok(r) => r,
        Err(e) => {
            link.failed(format!("undecodable responseList: {e}"));
            return Sent::Dropped;
        }
    };
    link.succeeded(items.len());
    for ((task, item), resp) in sent_tasks.into_iter().zip(&items).zip(responses) {
        handle_response(link, registry, task, item, resp);
    }
    Sent::Ok
}

/// Reference §2.8: the sender of a replicated heartbeat re-registers on 404 and adopts the
/// peer's copy on 409.
fn handle_response(
    link: &PeerLink,
    registry: &Registry,
    task: &Task,
    item: &ReplicationItem,
    resp: ReplicationItemResponse,
) {
    match (resp.status_code, item.action) {
        (200, _) => {}
        (404, ReplicationAction::Heartbeat | ReplicationAction::StatusUpdate) => {
            link.queue.push(Task::Resync(task.key()));
        }
        (409, ReplicationAction::Heartbeat) => {
            if let Some(info) = resp.response_entity {
                tracing::debug!(peer = %link.url, app = %info.app, instance = %info.instance_id,
                    "peer holds a newer copy; adopting it");
                registry.register(info, Origin::Replicated);
            }
        }
        (code, action) => {
            tracing::debug!(peer = %link.url, app = %item.app_name, instance = %item.id,
                action = action.as_str(), code, "replicated item not applied");
        }
    }
}

/// The wire item for a task. Registrations and heartbeats are sent from our *current* state
/// and skipped once we no longer hold the instance (it expired here): a late, queued copy
/// must not resurrect a dead instance on a peer, and must not cancel one that now renews
/// there directly. Only a client's explicit cancel travels as a Cancel.
fn item(registry: &Registry, task: &Task) -> Option<ReplicationItem> {
    let item = match task {
        Task::Write(LocalWrite::Register(record)) => {
            let info = record.info();
            register_item(&*registry.instance(&info.app, &info.instance_id)?)
        }
        Task::Resync((app, id)) => register_item(&*registry.instance(app, id)?),
        Task::Write(LocalWrite::Heartbeat {
            app,
            id,
            status,
            last_dirty_timestamp,
            overridden_status,
        }) => {
            registry.instance(app, id)?;
            ReplicationItem {
                last_dirty_timestamp: Some(*last_dirty_timestamp),
                overridden_status: *overridden_status,
                status: Some(*status),
                ..bare(app, id, ReplicationAction::Heartbeat)
            }
        }
        Task::Write(LocalWrite::Cancel { app, id }) => bare(app, id, ReplicationAction::Cancel),
        Task::Write(LocalWrite::StatusUpdate {
            app,
            id,
            status,
            last_dirty_timestamp,
        }) => ReplicationItem {
            last_dirty_timestamp: Some(*last_dirty_timestamp),
            status: Some(*status),
            ..bare(app, id, ReplicationAction::StatusUpdate)
        },
        Task::Write(LocalWrite::DeleteStatusOverride {
            app,
            id,
            status,
            last_dirty_timestamp,
        }) => ReplicationItem {
            last_dirty_timestamp: Some(*last_dirty_timestamp),
            status: Some(*status),
            ..bare(app, id, ReplicationAction::DeleteStatusOverride)
        },
    };
    Some(item)
}

fn bare(
    app: &keel_eureka::AppName,
    id: &keel_eureka::InstanceId,
    action: ReplicationAction,
) -> ReplicationItem {
    ReplicationItem {
        app_name: app.clone(),
        id: id.clone(),
        last_dirty_timestamp: None,
        overridden_status: None,
        status: None,
        instance_info: None,
        action,
    }
}

fn register_item(record: &Record) -> ReplicationItem {
    let info = record.info();
    ReplicationItem {
        last_dirty_timestamp: Some(info.last_dirty_timestamp),
        overridden_status: Some(info.overridden_status).filter(|o| *o != InstanceStatus::Unknown),
        status: Some(info.status),
        instance_info: Some(info.clone()),
        ..bare(&info.app, &info.instance_id, ReplicationAction::Register)
    }
}
