//! Clustering: replicate this node's client writes to every peer on Eureka's batch wire
//! format, sync the full registry from peers at start-up, and converge after partitions.
//!
//! Anti-entropy rides on renewals, as in Eureka but without its gaps: every client heartbeat
//! is replicated, a peer that lacks the instance (or holds an older copy) answers 404 and
//! gets our full copy back, and a peer holding a newer copy answers 409 and we adopt it. A
//! queue that could not reach a peer keeps only the newest task per instance, so after a
//! partition heals each peer gets one task per instance, and anything dropped on the way is
//! repaired by the instance's next heartbeat: an instance that keeps renewing is on every
//! node within one renewal interval plus the retry back-off.

mod client;
mod connector;
mod dns;
mod link;
mod peer_url;
mod queue;
mod sender;
mod sync;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use keel_server::{Health, HealthRegistry};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use client::{NODE_HEADER, PeerError, REPLICATION_HEADER};
pub use connector::{ConnectFuture, PeerConnector, PeerIo, TcpConnector};
pub use dns::{PeersDns, PeersDnsError};
pub use link::PeerStatus;
pub use peer_url::{PeerUrl, PeerUrlError};

use crate::engine::{LocalWrite, Registry, WriteObserver};
use client::PeerClient;
use link::PeerLink;
use queue::Task;

/// Replication settings. The defaults follow Eureka where Eureka is sane (batches of 250, a
/// 10k-instance queue) and not where it is not (200 ms read timeouts, 500 ms batching delay).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub peers: Vec<PeerUrl>,
    /// Items per batch (Eureka: 250).
    pub batch_size: usize,
    /// How long a sender waits after the first queued task so others can join its batch.
    pub batch_delay: Duration,
    pub connect_timeout: Duration,
    /// Per batch, and per `GET apps` during start-up sync.
    pub request_timeout: Duration,
    /// Instances with pending tasks, per peer; past it, tasks for new instances are dropped
    /// (and repaired by their next heartbeat).
    pub queue_capacity: usize,
    pub retry_backoff_min: Duration,
    pub retry_backoff_max: Duration,
    /// How long start-up waits for any peer to answer before serving without a sync.
    pub sync_wait: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            batch_size: 250,
            batch_delay: Duration::from_millis(5),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            queue_capacity: 200_000,
            retry_backoff_min: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(5),
            sync_wait: Duration::from_secs(30),
        }
    }
}

/// This node's side of the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("peers", &self.peers())
            .field("synced", &self.is_synced())
            .finish()
    }
}

pub(crate) struct ClusterInner {
    registry: Registry,
    config: Arc<ClusterConfig>,
    connector: Arc<dyn PeerConnector>,
    /// Read on every local write (renewals included), so lock-free.
    links: ArcSwap<Vec<Arc<PeerLink>>>,
    /// Serialises `set_peers`.
    membership: Mutex<()>,
    synced: AtomicBool,
    synced_notify: Notify,
    stop: CancellationToken,
}

impl ClusterInner {
    fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
        self.synced_notify.notify_waiters();
    }

    fn spawn_link(self: &Arc<Self>, url: PeerUrl) -> Arc<PeerLink> {
        let link = Arc::new(PeerLink::new(
            url.clone(),
            self.config.queue_capacity,
            self.stop.child_token(),
        ));
        let client = PeerClient::new(
            url,
            self.connector.clone(),
            self.registry.node_id().to_owned(),
            self.config.connect_timeout,
            self.config.request_timeout,
        );
        tokio::spawn(sender::run(
            link.clone(),
            self.registry.clone(),
            client,
            self.config.clone(),
        ));
        link
    }
}

/// Fans local writes out to every peer's queue; holds the cluster weakly so a dropped
/// cluster stops replicating instead of leaking through the registry.
struct Fanout(Weak<ClusterInner>);

impl WriteObserver for Fanout {
    fn on_local_write(&self, write: LocalWrite) {
        let Some(inner) = self.0.upgrade() else {
            return;
        };
        for link in inner.links.load().iter() {
            if !link.is_self() {
                link.queue.push(Task::Write(write.clone()));
            }
        }
    }
}

impl Cluster {
    /// Starts replicating `registry`'s client writes to `config.peers` and syncing from them,
    /// on the current tokio runtime. Installs the registry's write observer.
    pub fn start(
        registry: &Registry,
        config: ClusterConfig,
        connector: Arc<dyn PeerConnector>,
    ) -> Self {
        let peers = config.peers.clone();
        let inner = Arc::new(ClusterInner {
            registry: registry.clone(),
            config: Arc::new(config),
            connector,
            links: ArcSwap::from_pointee(Vec::new()),
            membership: Mutex::new(()),
            synced: AtomicBool::new(false),
            synced_notify: Notify::new(),
            stop: CancellationToken::new(),
        });
        registry.set_write_observer(Arc::new(Fanout(Arc::downgrade(&inner))));
        let cluster = Self { inner };
        cluster.set_peers(peers);
        tokio::spawn(sync::startup_sync(cluster.inner.clone()));
        cluster
    }

    /// Replaces the peer set (static `--peers`, or a DNS re-resolve). Peers kept keep their
    /// queues; removed peers' senders stop.
    pub fn set_peers(&self, peers: Vec<PeerUrl>) {
        let _guard = self
            .inner
            .membership
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let current = self.inner.links.load_full();
        let mut next = Vec::with_capacity(peers.len());
        for url in peers {
            if next.iter().any(|l: &Arc<PeerLink>| l.url == url) {
                continue;
            }
            match current.iter().find(|l| l.url == url) {
                Some(l) => next.push(l.clone()),
                None => next.push(self.inner.spawn_link(url)),
            }
        }
        for old in current.iter() {
            if !next.iter().any(|l| Arc::ptr_eq(l, old)) {
                old.stop.cancel();
            }
        }
        self.inner.links.store(Arc::new(next));
    }

    pub fn peers(&self) -> Vec<PeerStatus> {
        self.inner.links.load().iter().map(|l| l.status()).collect()
    }

    /// Whether start-up sync has finished (or given up after `sync_wait`).
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    pub async fn wait_synced(&self) {
        loop {
            let notified = self.inner.synced_notify.notified();
            if self.is_synced() {
                return;
            }
            notified.await;
        }
    }

    /// Registers the `cluster` health indicator: DOWN, and so not ready, until start-up sync
    /// is done; its details list each peer's replication state.
    pub fn observe(&self, health: &HealthRegistry) {
        let weak = Arc::downgrade(&self.inner);
        health.register(
            "cluster",
            move || {
                let Some(inner) = weak.upgrade() else {
                    return Health::down();
                };
                let cluster = Cluster { inner };
                let peers: Vec<serde_json::Value> = cluster
                    .peers()
                    .into_iter()
                    .map(|p| {
                        serde_json::json!({
                            "url": p.url, "state": p.state, "queued": p.queued,
                            "dropped": p.dropped, "sent": p.sent,
                            "failedBatches": p.failed_batches, "lastError": p.last_error,
                        })
                    })
                    .collect();
                let health = if cluster.is_synced() {
                    Health::up()
                } else {
                    Health::down()
                };
                health
                    .with_detail("synced", cluster.is_synced())
                    .with_detail("peers", peers)
            },
            true,
        );
    }

    /// Stops every sender and the start-up sync.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}
