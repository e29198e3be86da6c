//! The registry engine: leases, expiry, self-preservation, snapshots, delta and change events.
//! No HTTP here; `http` adapts it to Eureka's REST API and the watch stream.

mod events;
mod expiry;
mod lease;
mod lease_times;
mod metrics;
mod ops;
mod preservation;
mod record;
mod replicated;
mod rules;
mod snapshot;
mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwap;
use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus, StatusCounts};
use keel_server::{Health, HealthRegistry};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use events::{Change, ChangeEvent, LocalWrite, Origin, WriteObserver};
pub use lease_times::LeaseTimes;
pub use preservation::PreservationStatus;
pub use record::Record;
pub use snapshot::{AppSnapshot, Delta, Snapshot};

use crate::clock::Clock;
use crate::config::RegistryConfig;
use expiry::Expiry;
use lease::LeaseIndex;
use metrics::RegistryMetrics;
use preservation::Preservation;
use state::State;

/// What a renewal gets back (Eureka's 200 / 404 / 409).
#[derive(Clone, Debug)]
pub enum RenewOutcome {
    Renewed,
    /// Unknown lease, status UNKNOWN, or a newer `lastDirtyTimestamp` than ours: re-register.
    NotFound,
    /// Replicated call only: our copy is newer; here it is.
    Conflict(Arc<Record>),
}

/// Where a watcher starts: a full snapshot, or the events it missed since `Last-Event-ID`.
#[derive(Debug)]
pub enum WatchStart {
    Snapshot(Arc<Snapshot>),
    Replay(Vec<ChangeEvent>),
}

/// A subscription taken atomically with its starting point: no event is missed or repeated.
#[derive(Debug)]
pub struct Watch {
    pub start: WatchStart,
    pub events: broadcast::Receiver<ChangeEvent>,
}

/// One registry node. Cheap to clone; every clone is the same registry.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: RegistryConfig,
    clock: Arc<dyn Clock>,
    epoch: tokio::time::Instant,
    index: LeaseIndex,
    state: Mutex<State>,
    /// Mirrors `State::version` so readers can tell, lock-free, whether `published` is current.
    version: AtomicU64,
    published: ArcSwap<Snapshot>,
    events: broadcast::Sender<ChangeEvent>,
    expiry: Expiry,
    preservation: Preservation,
    metrics: RegistryMetrics,
    observer: OnceLock<Arc<dyn WriteObserver>>,
    streams_end: OnceLock<CancellationToken>,
    /// Random per process; a replication batch carrying it came from this very node.
    node_id: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("version", &self.version.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Builds the engine and starts its expiry task on the current tokio runtime.
    pub fn new(config: RegistryConfig, clock: Arc<dyn Clock>) -> Self {
        let (events, _) = broadcast::channel(config.watch_history.max(16));
        let inner = Arc::new(Inner {
            preservation: Preservation::new(&config.self_preservation),
            config,
            clock,
            epoch: tokio::time::Instant::now(),
            index: LeaseIndex::new(),
            state: Mutex::new(State::default()),
            version: AtomicU64::new(0),
            published: ArcSwap::from_pointee(Snapshot::new(0, Vec::new(), StatusCounts::new())),
            events,
            expiry: Expiry::new(),
            metrics: RegistryMetrics::default(),
            observer: OnceLock::new(),
            streams_end: OnceLock::new(),
            node_id: format!(
                "{:016x}",
                std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    0u8
                )
            ),
        });
        expiry::spawn_driver(&inner);
        Self { inner }
    }

    /// Registers the `registry` health indicator (instances, self-preservation) and the
    /// registry's metrics into the process's Prometheus registry.
    pub fn observe(
        &self,
        health: &HealthRegistry,
        metrics: &mut prometheus_client::registry::Registry,
    ) {
        self.inner.metrics.register(metrics);
        let weak = Arc::downgrade(&self.inner);
        health.register(
            "registry",
            move || match weak.upgrade() {
                Some(inner) => {
                    let p = inner.preservation.status();
                    Health::up()
                        .with_detail("instances", inner.snapshot().instance_count())
                        .with_detail("version", inner.version.load(Ordering::Acquire))
                        .with_detail("selfPreservation", p.to_json())
                }
                None => Health::down(),
            },
            false,
        );
    }

    /// Watch streams end when this token is cancelled (pass `Shutdown::streams_token()`).
    pub fn end_streams_on(&self, token: CancellationToken) {
        let _ = self.inner.streams_end.set(token);
    }

    pub(crate) fn streams_end(&self) -> CancellationToken {
        self.inner.streams_end.get().cloned().unwrap_or_default()
    }

    /// Installs the replicator's hook for local writes. Only the first call takes effect.
    pub fn set_write_observer(&self, observer: Arc<dyn WriteObserver>) {
        let _ = self.inner.observer.set(observer);
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Wall-clock epoch milliseconds from the injected clock.
    pub fn now_millis(&self) -> i64 {
        self.inner.clock.now_millis()
    }

    // ---- writes ----

    /// Registers (or re-registers) an instance; Eureka answers 204.
    pub fn register(&self, info: InstanceInfo, origin: Origin) -> Arc<Record> {
        self.inner.register(info, origin)
    }

    /// Renews a lease: the hot path. Takes no registry-wide lock unless the status changes.
    pub fn renew(
        &self,
        app: &AppName,
        id: &InstanceId,
        last_dirty_timestamp: Option<i64>,
        overridden_status: Option<InstanceStatus>,
        origin: Origin,
    ) -> RenewOutcome {
        self.inner
            .renew(app, id, last_dirty_timestamp, overridden_status, origin)
    }

    /// Removes an instance; false if it was not registered.
    pub fn cancel(&self, app: &AppName, id: &InstanceId, origin: Origin) -> bool {
        self.inner.cancel(app, id, origin)
    }

    /// `PUT …/status?value=X`; false if the instance is not registered.
    pub fn set_status_override(
        &self,
        app: &AppName,
        id: &InstanceId,
        status: InstanceStatus,
        last_dirty_timestamp: Option<i64>,
        origin: Origin,
    ) -> bool {
        self.inner
            .set_status_override(app, id, status, last_dirty_timestamp, origin)
    }

    /// `DELETE …/status[?value=X]`: the status becomes `status` (UNKNOWN by default, which
    /// makes the next heartbeat re-register); false if the instance is not registered.
    pub fn delete_status_override(
        &self,
        app: &AppName,
        id: &InstanceId,
        status: Option<InstanceStatus>,
        last_dirty_timestamp: Option<i64>,
        origin: Origin,
    ) -> bool {
        self.inner
            .delete_status_override(app, id, status, last_dirty_timestamp, origin)
    }

    /// `PUT …/metadata?k=v`: upserts entries; false if the instance is not registered.
    pub fn update_metadata(
        &self,
        app: &AppName,
        id: &InstanceId,
        entries: Vec<(String, String)>,
        origin: Origin,
    ) -> bool {
        self.inner.update_metadata(app, id, entries, origin)
    }

    /// This node's random id, sent with replication requests so a node that finds itself in
    /// its own peer list can tell.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    // ---- reads ----

    /// One instance's current record, lock-free (what a replicator re-sends after a 404).
    pub fn instance(&self, app: &AppName, id: &InstanceId) -> Option<Arc<Record>> {
        self.inner
            .index
            .get(app, id)
            .map(|lease| lease.record.load_full())
    }

    /// The registry as of every write acknowledged so far.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.snapshot()
    }

    /// `/apps/delta` at this instant.
    pub fn delta(&self) -> Arc<Delta> {
        self.inner.delta()
    }

    /// The current registry version (one increment per change event).
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// Subscribes to change events, starting from a snapshot, or from `resume_after` (a
    /// version previously seen) if the history still covers it.
    pub fn watch(&self, resume_after: Option<u64>) -> Watch {
        self.inner.watch(resume_after)
    }

    pub fn self_preservation(&self) -> PreservationStatus {
        self.inner.preservation.status()
    }

    pub(crate) fn watchers_gauge(&self) -> &prometheus_client::metrics::gauge::Gauge {
        &self.inner.metrics.watchers
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough to keep serving:
        // every write commits with one final `commit` call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Monotonic milliseconds since this registry started (tokio time, so tests can pause it).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn notify(&self, write: impl FnOnce() -> LocalWrite) {
        if let Some(o) = self.observer.get() {
            o.on_local_write(write());
        }
    }
}
