//! The in-memory view lookups read (lock-free, arc-swap) and the full local copy the updater keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use keel_eureka::{AppName, Applications, InstanceId, InstanceInfo, StatusCounts};
use tokio::sync::watch;

use crate::instance::ServiceInstance;

/// The UP instances of one app, as lookups and subscribers see them.
pub type Instances = Arc<[ServiceInstance]>;

/// What lookups read. Written only by one updater; read without locks.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    published: ArcSwap<HashMap<AppName, Instances>>,
    /// Touched on subscribe and on publish only, never by lookups.
    subscribers: Mutex<HashMap<AppName, watch::Sender<Instances>>>,
}

impl Cache {
    pub fn instances(&self, app: &AppName) -> Instances {
        self.published
            .load()
            .get(app)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    pub fn apps(&self) -> Vec<AppName> {
        let mut apps: Vec<AppName> = self.published.load().keys().cloned().collect();
        apps.sort();
        apps
    }

    pub fn subscribe(&self, app: &AppName) -> watch::Receiver<Instances> {
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // `publish` stores before it locks, so a sender made here from the stored value cannot
        // miss a concurrent update.
        subs.entry(app.clone())
            .or_insert_with(|| watch::channel(self.instances(app)).0)
            .subscribe()
    }

    /// Installs new lists for `changed` apps (an empty list removes the app).
    pub fn publish(&self, changed: Vec<(AppName, Instances)>) {
        if changed.is_empty() {
            return;
        }
        let mut map = HashMap::clone(&self.published.load());
        for (app, list) in &changed {
            if list.is_empty() {
                map.remove(app);
            } else {
                map.insert(app.clone(), list.clone());
            }
        }
        self.published.store(Arc::new(map));
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subs.retain(|_, tx| tx.receiver_count() > 0);
        for (app, list) in changed {
            if let Some(tx) = subs.get(&app) {
                tx.send_if_modified(|current| {
                    let modified = **current != *list;
                    *current = list;
                    modified
                });
            }
        }
    }
}

/// Every instance the registry reported, whatever its status: the reconcile hash is computed
/// over all of them, as the Java client does.
#[derive(Debug, Default)]
pub(crate) struct LocalCopy {
    apps: BTreeMap<AppName, BTreeMap<InstanceId, ServiceInstance>>,
    changed: BTreeSet<AppName>,
}

impl LocalCopy {
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    pub fn upsert(&mut self, info: &InstanceInfo) {
        let instance = ServiceInstance::from_info(info);
        let app = self.apps.entry(info.app.clone()).or_default();
        if app.get(&info.instance_id) != Some(&instance) {
            app.insert(info.instance_id.clone(), instance);
            self.changed.insert(info.app.clone());
        }
    }

    pub fn remove(&mut self, app: &AppName, id: &InstanceId) {
        if let Some(instances) = self.apps.get_mut(app)
            && instances.remove(id).is_some()
        {
            if instances.is_empty() {
                self.apps.remove(app);
            }
            self.changed.insert(app.clone());
        }
    }

    /// Replaces everything with a full registry (a watch snapshot or `GET /apps`).
    pub fn replace(&mut self, full: &Applications) {
        let old: BTreeSet<AppName> = self.apps.keys().cloned().collect();
        let mut fresh = LocalCopy::default();
        for app in &full.applications {
            for info in &app.instances {
                fresh.upsert(info);
            }
        }
        for app in old.iter().chain(fresh.apps.keys()) {
            if self.apps.get(app) != fresh.apps.get(app) {
                self.changed.insert(app.clone());
            }
        }
        self.apps = fresh.apps;
    }

    /// Replaces the instances of one app.
    pub fn replace_app(&mut self, app: &AppName, instances: &[InstanceInfo]) {
        let ids: Vec<InstanceId> = self
            .apps
            .get(app)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            if !instances.iter().any(|i| i.instance_id == id) {
                self.remove(app, &id);
            }
        }
        for info in instances.iter().filter(|i| &i.app == app) {
            self.upsert(info);
        }
    }

    /// Applies an Eureka delta: ADDED and MODIFIED upsert, DELETED removes.
    pub fn apply_delta(&mut self, delta: &Applications) {
        for app in &delta.applications {
            for info in &app.instances {
                match info.action_type {
                    Some(keel_eureka::ActionType::Deleted) => {
                        self.remove(&info.app, &info.instance_id)
                    }
                    _ => self.upsert(info),
                }
            }
        }
    }

    /// `apps__hashcode` of the local copy.
    pub fn hashcode(&self) -> String {
        self.apps
            .values()
            .flat_map(|a| a.values().map(|i| i.status))
            .collect::<StatusCounts>()
            .hashcode()
    }

    pub fn instance_count(&self) -> usize {
        self.apps.values().map(BTreeMap::len).sum()
    }

    /// Pushes the apps changed since the last call to `cache`.
    pub fn publish(&mut self, cache: &Cache) {
        let changed = std::mem::take(&mut self.changed)
            .into_iter()
            .map(|app| {
                let up: Vec<ServiceInstance> = self
                    .apps
                    .get(&app)
                    .map(|m| m.values().filter(|i| i.is_up()).cloned().collect())
                    .unwrap_or_default();
                (app, Instances::from(up))
            })
            .collect();
        cache.publish(changed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_eureka::{ActionType, Application, InstanceStatus};

    fn info(app: &str, id: &str, status: InstanceStatus) -> InstanceInfo {
        let mut i = InstanceInfo::new(
            AppName::parse(app).unwrap(),
            InstanceId::parse(id).unwrap(),
            "h",
            "127.0.0.1",
        );
        i.status = status;
        i
    }

    fn apps(list: Vec<InstanceInfo>) -> Applications {
        let mut by_app: BTreeMap<AppName, Vec<InstanceInfo>> = BTreeMap::new();
        for i in list {
            by_app.entry(i.app.clone()).or_default().push(i);
        }
        Applications {
            versions_delta: 1,
            apps_hashcode: String::new(),
            applications: by_app
                .into_iter()
                .map(|(name, instances)| Application { name, instances })
                .collect(),
        }
    }

    #[tokio::test]
    async fn lookups_see_only_up_instances_and_subscribers_see_changes() {
        let cache = Cache::default();
        let a = AppName::parse("a").unwrap();
        let mut rx = cache.subscribe(&a);
        let mut copy = LocalCopy::default();
        copy.replace(&apps(vec![
            info("a", "1", InstanceStatus::Up),
            info("a", "2", InstanceStatus::Down),
        ]));
        copy.publish(&cache);
        assert_eq!(cache.instances(&a).len(), 1);
        assert_eq!(copy.hashcode(), "DOWN_1_UP_1_");
        rx.changed().await.unwrap();
        assert_eq!(rx.borrow_and_update()[0].id.as_str(), "1");

        let mut deleted = info("a", "1", InstanceStatus::Up);
        deleted.action_type = Some(ActionType::Deleted);
        let mut modified = info("a", "2", InstanceStatus::Up);
        modified.action_type = Some(ActionType::Modified);
        copy.apply_delta(&apps(vec![deleted, modified]));
        copy.publish(&cache);
        assert_eq!(cache.instances(&a)[0].id.as_str(), "2");
        assert!(rx.has_changed().unwrap());
        assert_eq!(copy.hashcode(), "UP_1_");

        copy.remove(&a, &InstanceId::parse("2").unwrap());
        copy.publish(&cache);
        assert!(cache.instances(&a).is_empty());
        assert!(cache.apps().is_empty());
        assert!(copy.is_empty());
    }
}
