//! The registry's operations with Eureka's semantics: register, renew, cancel, status, metadata.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use keel_eureka::{ActionType, AppName, InstanceId, InstanceInfo, InstanceStatus};

use super::events::{Change, ChangeEvent, LocalWrite, Origin};
use super::lease::Lease;
use super::record::Record;
use super::rules::effective_status;
use super::snapshot::{AppSnapshot, Delta, Snapshot};
use super::state::{Recent, State};
use super::{Inner, RenewOutcome, Watch, WatchStart};

impl Inner {
    fn retention_ms(&self) -> u64 {
        u64::try_from(self.config.delta_retention.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records one change: bumps the version, queues it for the delta and the watch history,
    /// and broadcasts it. Called with the state lock held, so events go out in version order.
    fn commit(&self, st: &mut State, origin: Origin, change: Change) {
        st.version += 1;
        let record = change.record().clone();
        let now = self.now_ms();
        st.touch_app(&record.info().app);
        st.recent.push_back(Recent { at: now, record });
        st.prune_recent(now, self.retention_ms());
        st.delta = None;
        let event = ChangeEvent {
            version: st.version,
            origin,
            change,
        };
        st.history.push_back(event.clone());
        while st.history.len() > self.config.watch_history {
            st.history.pop_front();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        self.version.store(st.version, Ordering::Release);
        self.metrics
            .instances
            .set(i64::try_from(st.counts.total()).unwrap_or(i64::MAX));
    }

    pub(crate) fn register(&self, info: InstanceInfo, origin: Origin) -> Arc<Record> {
        let mut st = self.lock();
        let record = self.register_locked(&mut st, info, origin);
        drop(st);
        self.metrics.registrations.inc();
        let info = record.info();
        tracing::debug!(app = %info.app, instance = %info.instance_id, status = %info.status, ?origin, "registered");
        if origin == Origin::Client {
            self.notify(|| LocalWrite::Register(record.clone()));
        }
        record
    }

    fn register_locked(
        &self,
        st: &mut State,
        mut info: InstanceInfo,
        origin: Origin,
    ) -> Arc<Record> {
        let wall = self.clock.now_millis();
        let now = self.now_ms();
        if let Some(app) = st.interned_app(&info.app) {
            info.app = app;
        }
        let existing = st.lease(&info.app, &info.instance_id).cloned();
        let existing_rec = existing.as_ref().map(|l| l.record.load_full());
        // Reference §2.8: a registration older than our copy does not overwrite it (ties do).
        if let Some(ex) = &existing_rec
            && ex.info().last_dirty_timestamp > info.last_dirty_timestamp
        {
            info = ex.info().clone();
        }
        if info.last_dirty_timestamp == 0 {
            info.last_dirty_timestamp = wall;
        }
        let id = info.instance_id.clone();
        if info.overridden_status != InstanceStatus::Unknown && !st.overrides.contains_key(&id) {
            st.overrides.insert(id.clone(), info.overridden_status);
        }
        if let Some(o) = st.overrides.get(&id) {
            info.overridden_status = *o;
        }
        info.status = effective_status(
            info.status,
            Some(info.overridden_status),
            existing_rec.as_ref().map(|r| r.info().status),
            origin.is_replicated(),
        );
        let service_up = existing_rec
            .as_ref()
            .map_or(0, |r| r.info().lease_info.service_up_timestamp);
        let lease_info = &mut info.lease_info;
        lease_info.registration_timestamp = wall;
        lease_info.last_renewal_timestamp = wall;
        lease_info.eviction_timestamp = 0;
        lease_info.service_up_timestamp = if service_up > 0 {
            service_up
        } else if info.status == InstanceStatus::Up {
            wall
        } else {
            0
        };
        info.action_type = Some(ActionType::Added);
        info.last_updated_timestamp = wall;
        let status = info.status;
        let record = Arc::new(Record::new(info));
        let lease = Arc::new(Lease::new(record.clone(), now));
        if let Some(old) = st.insert_lease(lease.clone()) {
            old.mark_removed();
            st.counts.remove(old.record.load().info().status);
        }
        st.counts.add(status);
        self.index.insert(lease.clone());
        self.expiry.schedule(lease.deadline(), lease);
        self.commit(st, origin, Change::Upsert(record.clone()));
        record
    }

    pub(crate) fn renew(
        &self,
        app: &AppName,
        id: &InstanceId,
        last_dirty: Option<i64>,
        overridden: Option<InstanceStatus>,
        origin: Origin,
    ) -> RenewOutcome {
        let Some(lease) = self.index.get(app, id) else {
            self.metrics.renewals_not_found.inc();
            return RenewOutcome::NotFound;
        };
        let rec = lease.record.load_full();
        let info = rec.info();
        let status = effective_status(
            info.status,
            Some(info.overridden_status),
            Some(info.status),
            origin.is_replicated(),
        );
        // UNKNOWN (e.g. after an override was deleted) forces the client to re-register.
        if status == InstanceStatus::Unknown {
            self.metrics.renewals_not_found.inc();
            return RenewOutcome::NotFound;
        }
        lease.renew(self.now_ms());
        self.metrics.renewals.inc();
        if status != info.status {
            self.set_status(&lease, status, origin);
        }
        if let Some(ts) = last_dirty {
            if ts > info.last_dirty_timestamp {
                if origin.is_replicated()
                    && let Some(o) = overridden.filter(|o| *o != InstanceStatus::Unknown)
                {
                    self.lock().overrides.insert(id.clone(), o);
                }
                return RenewOutcome::NotFound;
            }
            if ts < info.last_dirty_timestamp && origin.is_replicated() {
                return RenewOutcome::Conflict(rec);
            }
        }
        if origin == Origin::Client {
            self.notify(|| LocalWrite::Heartbeat {
                app: app.clone(),
                id: id.clone(),
                status,
                last_dirty_timestamp: info.last_dirty_timestamp,
                overridden_status: Some(info.overridden_status)
                    .filter(|o| *o != InstanceStatus::Unknown),
            });
        }
        RenewOutcome::Renewed
    }

    /// A status change decided by the rules during a renewal.
    fn set_status(&self, lease: &Arc<Lease>, status: InstanceStatus, origin: Origin) {
        let mut st = self.lock();
        let current = st.lease(&lease.app, &lease.id);
        if !current.is_some_and(|l| Arc::ptr_eq(l, lease)) {
            return;
        }
        let old = lease.record.load_full();
        if old.info().status == status {
            return;
        }
        let mut info = old.info().clone();
        info.status = status;
        self.modified(&mut st, lease, info, old.info().status, origin);
    }

    /// Stores a modified copy of an instance and commits it as MODIFIED.
    fn modified(
        &self,
        st: &mut State,
        lease: &Arc<Lease>,
        mut info: InstanceInfo,
        old_status: InstanceStatus,
        origin: Origin,
    ) {
        let wall = self.clock.now_millis();
        info.action_type = Some(ActionType::Modified);
        info.last_updated_timestamp = wall;
        if info.status == InstanceStatus::Up && info.lease_info.service_up_timestamp == 0 {
            info.lease_info.service_up_timestamp = wall;
        }
        st.counts.remove(old_status);
        st.counts.add(info.status);
        let record = Arc::new(Record::new(info));
        lease.record.store(record.clone());
        self.commit(st, origin, Change::Upsert(record));
    }

    pub(crate) fn cancel(&self, app: &AppName, id: &InstanceId, origin: Origin) -> bool {
        let mut st = self.lock();
        let Some(lease) = st.remove_lease(app, id) else {
            return false;
        };
        self.remove_locked(&mut st, &lease, origin);
        drop(st);
        self.metrics.cancels.inc();
        tracing::debug!(app = %app, instance = %id, ?origin, "cancelled");
        if origin == Origin::Client {
            self.notify(|| LocalWrite::Cancel {
                app: app.clone(),
                id: id.clone(),
            });
        }
        true
    }

    /// Finishes removing a lease already taken out of `st.apps`.
    fn remove_locked(&self, st: &mut State, lease: &Arc<Lease>, origin: Origin) {
        self.index.remove(&lease.app, &lease.id);
        lease.mark_removed();
        st.overrides.remove(&lease.id);
        let old = lease.record.load_full();
        st.counts.remove(old.info().status);
        let wall = self.clock.now_millis();
        let mut info = old.info().clone();
        info.action_type = Some(ActionType::Deleted);
        info.last_updated_timestamp = wall;
        info.lease_info.eviction_timestamp = wall;
        self.commit(st, origin, Change::Delete(Arc::new(Record::new(info))));
    }

    /// Expires `lease` if it is still registered and still past its deadline.
    pub(crate) fn expire(&self, lease: &Arc<Lease>, now: u64) -> bool {
        let mut st = self.lock();
        let current = st.lease(&lease.app, &lease.id);
        if !current.is_some_and(|l| Arc::ptr_eq(l, lease)) || lease.deadline() > now {
            return false;
        }
        st.remove_lease(&lease.app, &lease.id);
        self.remove_locked(&mut st, lease, Origin::Expired);
        drop(st);
        self.metrics.expirations.inc();
        tracing::warn!(app = %lease.app, instance = %lease.id, "lease expired");
        true
    }

    pub(crate) fn set_status_override(
        &self,
        app: &AppName,
        id: &InstanceId,
        status: InstanceStatus,
        last_dirty: Option<i64>,
        origin: Origin,
    ) -> bool {
        let mut st = self.lock();
        let Some(lease) = st.lease(app, id).cloned() else {
            return false;
        };
        lease.renew(self.now_ms());
        st.overrides.insert(id.clone(), status);
        let old = lease.record.load_full();
        let mut info = old.info().clone();
        let newer_dirty = last_dirty.filter(|ts| *ts > info.last_dirty_timestamp);
        if info.status != status || info.overridden_status != status || newer_dirty.is_some() {
            info.status = status;
            info.overridden_status = status;
            if let Some(ts) = newer_dirty {
                info.last_dirty_timestamp = ts;
            }
            self.modified(&mut st, &lease, info, old.info().status, origin);
        }
        let last_dirty_timestamp = lease.record.load().info().last_dirty_timestamp;
        drop(st);
        if origin == Origin::Client {
            self.notify(|| LocalWrite::StatusUpdate {
                app: app.clone(),
                id: id.clone(),
                status,
                last_dirty_timestamp,
            });
        }
        true
    }

    pub(crate) fn delete_status_override(
        &self,
        app: &AppName,
        id: &InstanceId,
        status: Option<InstanceStatus>,
        last_dirty: Option<i64>,
        origin: Origin,
    ) -> bool {
        let mut st = self.lock();
        let Some(lease) = st.lease(app, id).cloned() else {
            return false;
        };
        let status = status.unwrap_or(InstanceStatus::Unknown);
        // Like Eureka, only an existing override is undone.
        if st.overrides.remove(id).is_some() {
            let old = lease.record.load_full();
            let mut info = old.info().clone();
            info.overridden_status = InstanceStatus::Unknown;
            info.status = status;
            if let Some(ts) = last_dirty.filter(|ts| *ts > info.last_dirty_timestamp) {
                info.last_dirty_timestamp = ts;
            }
            self.modified(&mut st, &lease, info, old.info().status, origin);
        }
        let last_dirty_timestamp = lease.record.load().info().last_dirty_timestamp;
        drop(st);
        if origin == Origin::Client {
            self.notify(|| LocalWrite::DeleteStatusOverride {
                app: app.clone(),
                id: id.clone(),
                status,
                last_dirty_timestamp,
            });
        }
        true
    }

    pub(crate) fn update_metadata(
        &self,
        app: &AppName,
        id: &InstanceId,
        entries: Vec<(String, String)>,
        origin: Origin,
    ) -> bool {
        let mut st = self.lock();
        let Some(lease) = st.lease(app, id).cloned() else {
            return false;
        };
        let mut info = lease.record.load().info().clone();
        for (k, v) in entries {
            info.metadata.insert(k, v);
        }
        // Eureka re-registers the instance (so the delta says ADDED and peers get a Register).
        let record = self.register_locked(&mut st, info, origin);
        drop(st);
        if origin == Origin::Client {
            self.notify(|| LocalWrite::Register(record));
        }
        true
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        let published = self.published.load_full();
        if published.version == self.version.load(Ordering::Acquire) {
            return published;
        }
        let mut st = self.lock();
        self.publish(&mut st)
    }

    /// Rebuilds the snapshot from the state (only the apps a write touched) and publishes it.
    fn publish(&self, st: &mut State) -> Arc<Snapshot> {
        let published = self.published.load_full();
        if published.version == st.version {
            return published;
        }
        let apps = st
            .apps
            .iter_mut()
            .map(|(name, entry)| {
                entry
                    .cached
                    .get_or_insert_with(|| {
                        let instances = entry
                            .leases
                            .values()
                            .map(|l| l.record.load_full())
                            .collect();
                        Arc::new(AppSnapshot::new(name.clone(), instances))
                    })
                    .clone()
            })
            .collect();
        let snapshot = Arc::new(Snapshot::new(st.version, apps, st.counts));
        self.published.store(snapshot.clone());
        snapshot
    }

    pub(crate) fn delta(&self) -> Arc<Delta> {
        let now = self.now_ms();
        let retention = self.retention_ms();
        let mut st = self.lock();
        st.prune_recent(now, retention);
        if let Some(d) = &st.delta
            && d.version == st.version
            && now < d.valid_until
        {
            return d.clone();
        }
        let delta = Arc::new(st.build_delta(retention));
        st.delta = Some(delta.clone());
        delta
    }

    pub(crate) fn watch(&self, resume_after: Option<u64>) -> Watch {
        let mut st = self.lock();
        let events = self.events.subscribe();
        let start = match resume_after {
            Some(v) if v == st.version => WatchStart::Replay(Vec::new()),
            Some(v) if v < st.version && st.history.front().is_some_and(|e| e.version <= v + 1) => {
                WatchStart::Replay(
                    st.history
                        .iter()
                        .filter(|e| e.version > v)
                        .cloned()
                        .collect(),
                )
            }
            _ => WatchStart::Snapshot(self.publish(&mut st)),
        };
        Watch { start, events }
    }
}
