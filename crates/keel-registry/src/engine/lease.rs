//! Leases and the sharded index that renewals use without touching the registry's write lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use keel_eureka::{AppName, InstanceId};

use super::record::Record;

pub(crate) type LeaseKey = (AppName, InstanceId);
type Shard = RwLock<HashMap<LeaseKey, Arc<Lease>>>;

/// One registration. A re-registration makes a new lease; renewals only touch atomics.
#[derive(Debug)]
pub(crate) struct Lease {
    pub app: AppName,
    pub id: InstanceId,
    pub record: ArcSwap<Record>,
    /// Monotonic milliseconds (since the registry's epoch) of the last renewal.
    last_renewal: AtomicU64,
    pub duration_ms: u64,
    pub interval_ms: u64,
    removed: AtomicBool,
}

impl Lease {
    pub fn new(record: Arc<Record>, now_ms: u64) -> Self {
        let info = record.info();
        Self {
            app: info.app.clone(),
            id: info.instance_id.clone(),
            duration_ms: u64::from(info.lease_info.duration_in_secs.max(1)) * 1000,
            interval_ms: u64::from(info.lease_info.renewal_interval_in_secs.max(1)) * 1000,
            record: ArcSwap::new(record),
            last_renewal: AtomicU64::new(now_ms),
            removed: AtomicBool::new(false),
        }
    }

    pub fn renew(&self, now_ms: u64) {
        self.last_renewal.fetch_max(now_ms, Ordering::AcqRel);
    }

    pub fn last_renewal(&self) -> u64 {
        self.last_renewal.load(Ordering::Acquire)
    }

    /// Expiry is at 1× the lease's own duration after its last renewal (Eureka waits 2×).
    pub fn deadline(&self) -> u64 {
        self.last_renewal() + self.duration_ms
    }

    /// When a renewal counts as late for self-preservation: halfway between the renewal
    /// that was due and the deadline.
    pub fn late_after(&self) -> u64 {
        let slack = self.duration_ms.saturating_sub(self.interval_ms) / 2;
        self.last_renewal() + self.interval_ms + slack
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

const SHARDS: usize = 64;

/// `(app, id) → lease`, split into shards so renewals from many clients read in parallel.
/// Written only under the registry's write lock.
#[derive(Debug)]
pub(crate) struct LeaseIndex {
    hasher: std::collections::hash_map::RandomState,
    shards: Box<[Shard]>,
}

impl LeaseIndex {
    pub fn new() -> Self {
        Self {
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, app: &AppName, id: &InstanceId) -> &Shard {
        let h = self.hasher.hash_one((app, id));
        &self.shards[(h as usize) % SHARDS]
    }

    pub fn get(&self, app: &AppName, id: &InstanceId) -> Option<Arc<Lease>> {
        // A poisoned shard only means a panic elsewhere; the map itself is intact.
        let shard = self
            .shard(app, id)
            .read()
            .unwrap_or_else(|e| e.into_inner());
        shard.get(&(app.clone(), id.clone())).cloned()
    }

    pub fn insert(&self, lease: Arc<Lease>) {
        let mut shard = self
            .shard(&lease.app, &lease.id)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        shard.insert((lease.app.clone(), lease.id.clone()), lease);
    }

    pub fn remove(&self, app: &AppName, id: &InstanceId) {
        let mut shard = self
            .shard(app, id)
            .write()
            .unwrap_or_else(|e| e.into_inner());
        shard.remove(&(app.clone(), id.clone()));
    }

    /// Visits every lease, one shard at a time (never all shards locked at once).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<Lease>)) {
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            for lease in shard.values() {
                f(lease);
            }
        }
    }
}
