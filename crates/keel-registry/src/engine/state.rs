//! The registry's write-side state, guarded by one mutex that only writes (never renewals) take.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use keel_eureka::{AppName, InstanceId, InstanceStatus, StatusCounts};

use super::events::ChangeEvent;
use super::lease::Lease;
use super::record::Record;
use super::snapshot::{AppSnapshot, Delta};

#[derive(Debug, Default)]
pub(crate) struct AppEntry {
    pub leases: BTreeMap<InstanceId, Arc<Lease>>,
    /// The app's last built snapshot; `None` once a write touches the app.
    pub cached: Option<Arc<AppSnapshot>>,
}

/// One entry of the recently-changed queue behind `/apps/delta`; the record names its
/// instance (with 100k fresh registrations, a copied key would be 3 MB more).
#[derive(Debug)]
pub(crate) struct Recent {
    pub at: u64,
    pub record: Arc<Record>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub version: u64,
    pub apps: BTreeMap<AppName, AppEntry>,
    pub counts: StatusCounts,
    /// Eureka's `overriddenInstanceStatusMap`, keyed by instance id alone as Eureka keys it.
    pub overrides: HashMap<InstanceId, InstanceStatus>,
    pub recent: VecDeque<Recent>,
    pub history: VecDeque<ChangeEvent>,
    pub delta: Option<Arc<Delta>>,
}

impl State {
    pub fn lease(&self, app: &AppName, id: &InstanceId) -> Option<&Arc<Lease>> {
        self.apps.get(app)?.leases.get(id)
    }

    /// Removes a lease, dropping its application once empty (Eureka lists no empty apps).
    pub fn remove_lease(&mut self, app: &AppName, id: &InstanceId) -> Option<Arc<Lease>> {
        let entry = self.apps.get_mut(app)?;
        let lease = entry.leases.remove(id)?;
        entry.cached = None;
        if entry.leases.is_empty() {
            self.apps.remove(app);
        }
        Some(lease)
    }

    /// The stored spelling of an app name, so every instance of an app shares one
    /// allocation instead of each keeping the copy its registration decoded.
    pub fn interned_app(&self, app: &AppName) -> Option<AppName> {
        self.apps.get_key_value(app).map(|(k, _)| k.clone())
    }

    pub fn insert_lease(&mut self, lease: Arc<Lease>) -> Option<Arc<Lease>> {
        let entry = self.apps.entry(lease.app.clone()).or_default();
        entry.cached = None;
        entry.leases.insert(lease.id.clone(), lease)
    }

    pub fn touch_app(&mut self, app: &AppName) {
        if let Some(e) = self.apps.get_mut(app) {
            e.cached = None;
        }
    }

    pub fn prune_recent(&mut self, now: u64, retention_ms: u64) {
        while self
            .recent
            .front()
            .is_some_and(|r| r.at.saturating_add(retention_ms) <= now)
        {
            self.recent.pop_front();
        }
    }

    /// The delta at this instant: the latest change per instance still in the window.
    pub fn build_delta(&self, retention_ms: u64) -> Delta {
        let mut apps: BTreeMap<AppName, BTreeMap<InstanceId, Arc<Record>>> = BTreeMap::new();
        for r in &self.recent {
            let info = r.record.info();
            apps.entry(info.app.clone())
                .or_default()
                .insert(info.instance_id.clone(), r.record.clone());
        }
        let valid_until = self
            .recent
            .front()
            .map_or(u64::MAX, |r| r.at.saturating_add(retention_ms));
        Delta::new(
            self.version,
            self.counts.hashcode(),
            apps.into_iter()
                .map(|(name, m)| (name, m.into_values().collect()))
                .collect(),
            valid_until,
        )
    }
}
