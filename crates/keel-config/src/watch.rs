//! Watchers: one channel per distinct (application, profile, label), fed after each refresh
//! only when that key's merged configuration changed.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use keel_properties::MergedConfig;
use tokio::sync::watch;

use crate::error::ServeError;
use crate::server::ConfigServer;

/// What a watcher watches, as requested.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct WatchKey {
    pub application: String,
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One version of one key, as sent to watchers.
#[derive(Clone, Debug)]
pub struct Published {
    /// The snapshot id (commit): the SSE event id.
    pub id: String,
    /// Digest of the merged configuration; equal digests mean nothing to tell watchers.
    pub fingerprint: u64,
    /// The Environment JSON.
    pub body: Arc<str>,
    generation: u64,
}

/// One connected watcher, for `GET /keel/v1/watchers`.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatcherInfo {
    pub id: u64,
    #[serde(flatten)]
    pub key: WatchKey,
    pub peer: Option<String>,
    /// The version last sent to it.
    pub version: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

#[derive(Default)]
pub struct Hub {
    topics: Mutex<HashMap<WatchKey, watch::Sender<Published>>>,
    watchers: Mutex<BTreeMap<u64, WatcherInfo>>,
    next_id: AtomicU64,
}

/// Removes its watcher from the list when the stream ends.
pub struct WatcherGuard {
    pub(crate) hub: Arc<crate::server::Inner>,
    pub id: u64,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        lock(&self.hub.hub.watchers).remove(&self.id);
    }
}

impl Hub {
    /// Subscribes to `key`, returning the receiver and the current version.
    pub async fn subscribe(
        &self,
        server: &ConfigServer,
        key: &WatchKey,
    ) -> Result<watch::Receiver<Published>, ServeError> {
        let existing = lock(&self.topics).get(key).map(|tx| tx.subscribe());
        if let Some(rx) = existing {
            return Ok(rx);
        }
        let current = publication(server, key).await?;
        let rx = {
            let mut topics = lock(&self.topics);
            let tx = topics
                .entry(key.clone())
                .or_insert_with(|| watch::channel(current.clone()).0);
            tx.subscribe()
        };
        // A refresh that raced with this first subscription published to nobody: catch up.
        if server.state().generation != current.generation
            && let Ok(fresh) = publication(server, key).await
        {
            self.send_if_changed(key, fresh);
        }
        Ok(rx)
    }

    fn send_if_changed(&self, key: &WatchKey, fresh: Published) {
        if let Some(tx) = lock(&self.topics).get(key) {
            tx.send_if_modified(|cur| {
                if cur.fingerprint == fresh.fingerprint {
                    cur.generation = fresh.generation;
                    false
                } else {
                    *cur = fresh;
                    true
                }
            });
        }
    }

    /// Recomputes every watched key against the current state and wakes the watchers of keys
    /// whose merged configuration changed. Keys nobody watches any more are dropped.
    pub async fn publish(&self, server: &ConfigServer) {
        let keys: Vec<WatchKey> = {
            let mut topics = lock(&self.topics);
            topics.retain(|_, tx| tx.receiver_count() > 0);
            topics.keys().cloned().collect()
        };
        for key in keys {
            match publication(server, &key).await {
                Ok(fresh) => self.send_if_changed(&key, fresh),
                Err(e) => tracing::debug!(?key, error = %e, "watched key no longer resolves"),
            }
        }
    }

    /// Lists a watcher until the returned guard drops.
    pub fn register(
        &self,
        inner: Arc<crate::server::Inner>,
        key: WatchKey,
        peer: Option<String>,
        version: String,
        now: SystemTime,
    ) -> WatcherGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        lock(&self.watchers).insert(
            id,
            WatcherInfo {
                id,
                key,
                peer,
                version,
                since,
            },
        );
        WatcherGuard { hub: inner, id }
    }

    pub fn set_version(&self, id: u64, version: &str) {
        if let Some(w) = lock(&self.watchers).get_mut(&id) {
            w.version = version.to_owned();
        }
    }

    pub fn watchers(&self) -> Vec<WatcherInfo> {
        lock(&self.watchers).values().cloned().collect()
    }
}

/// The current version of `key`.
pub async fn publication(server: &ConfigServer, key: &WatchKey) -> Result<Published, ServeError> {
    let generation = server.state().generation;
    let resolved = server
        .resolve(&key.application, &key.profile, key.label.as_deref())
        .await?;
    let env = server.environment(&resolved)?;
    let merged = serde_json::to_string(&MergedConfig::of(&env)).unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    merged.hash(&mut hasher);
    Ok(Published {
        id: resolved.snapshot.id.clone(),
        fingerprint: hasher.finish(),
        body: env.to_json().into(),
        generation,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the maps stay consistent per operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
