//! What the registry tells the outside world: change events for watchers and local writes for
//! a replicator.

use std::sync::Arc;

use keel_eureka::{AppName, InstanceId, InstanceStatus};

use super::record::Record;

/// Who caused a write. Replicated writes are never re-replicated, and expiries are not
/// replicated at all (every node expires on its own, as in Eureka).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client's own call (or an operator's).
    Client,
    /// A peer's replicated call (`x-netflix-discovery-replication: true` or a batch item).
    Replicated,
    /// The lease ran out.
    Expired,
}

impl Origin {
    pub fn is_replicated(self) -> bool {
        self == Origin::Replicated
    }
}

/// One change to the registry's contents. `version` increases by one per change.
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    pub version: u64,
    pub origin: Origin,
    pub change: Change,
}

#[derive(Clone, Debug)]
pub enum Change {
    /// The instance's new record (`actionType` ADDED or MODIFIED).
    Upsert(Arc<Record>),
    /// The instance's last record, with `actionType` DELETED.
    Delete(Arc<Record>),
}

impl Change {
    pub fn record(&self) -> &Arc<Record> {
        match self {
            Change::Upsert(r) | Change::Delete(r) => r,
        }
    }
}

/// A successful write made by a client on this node: what a replicator forwards to peers.
/// One variant per Eureka replication action.
#[derive(Clone, Debug)]
pub enum LocalWrite {
    /// Registration or metadata update; carries the stored record.
    Register(Arc<Record>),
    Heartbeat {
        app: AppName,
        id: InstanceId,
        status: InstanceStatus,
        last_dirty_timestamp: i64,
        /// `Some` only when an override exists.
        overridden_status: Option<InstanceStatus>,
    },
    Cancel {
        app: AppName,
        id: InstanceId,
    },
    StatusUpdate {
        app: AppName,
        id: InstanceId,
        status: InstanceStatus,
        last_dirty_timestamp: i64,
    },
    DeleteStatusOverride {
        app: AppName,
        id: InstanceId,
        status: InstanceStatus,
        last_dirty_timestamp: i64,
    },
}

/// Receives every local write synchronously, renewals included. It runs on the request
/// path, so it must not block: queue and return.
pub trait WriteObserver: Send + Sync {
    fn on_local_write(&self, write: LocalWrite);
}
