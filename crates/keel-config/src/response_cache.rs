//! Rendered responses per (snapshot, application, profiles, label, format), so a repeated read
//! skips building, decrypting and serialising the merged environment.
//!
//! Sharded by key hash (no global lock), bounded per shard, emptied when a refresh swaps in new
//! snapshots. A hit allocates nothing: entries are found by hash and checked field by field.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use bytes::Bytes;

const SHARDS: usize = 16;
/// Entries per shard; a full shard is emptied (cheap, and rare: keys are per app and profile).
const SHARD_CAPACITY: usize = 512;

/// What is rendered: the Environment JSON or one of the merged renderings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    Environment,
    Yaml { resolve: bool },
    Properties { resolve: bool },
    Json { resolve: bool },
}

/// One rendered body and its ETag.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub body: Bytes,
    pub etag: HeaderValue,
}

/// A request as the cache sees it: borrowed, so a lookup allocates nothing.
#[derive(Clone, Copy)]
pub(crate) struct Key<'a> {
    pub snapshot: &'a str,
    pub application: &'a str,
    pub profiles: &'a str,
    pub label: &'a str,
    pub format: Format,
}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (
            self.snapshot,
            self.application,
            self.profiles,
            self.label,
            self.format,
        )
            .hash(h);
    }
}

struct Entry {
    snapshot: Box<str>,
    application: Box<str>,
    profiles: Box<str>,
    label: Box<str>,
    format: Format,
    rendered: Arc<Rendered>,
}

impl Entry {
    fn matches(&self, k: &Key<'_>) -> bool {
        self.format == k.format
            && &*self.snapshot == k.snapshot
            && &*self.application == k.application
            && &*self.profiles == k.profiles
            && &*self.label == k.label
    }
}

pub(crate) struct ResponseCache {
    hasher: std::collections::hash_map::RandomState,
    shards: [Mutex<HashMap<u64, Entry>>; SHARDS],
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }
}

impl ResponseCache {
    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // A poisoned shard only means a panic mid-insert; the map is still consistent.
        self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The cached rendering of `key`, or `render`'s, which is then cached.
    pub fn get_or_render<E>(
        &self,
        key: Key<'_>,
        render: impl FnOnce() -> Result<Rendered, E>,
    ) -> Result<Arc<Rendered>, E> {
        let hash = self.hasher.hash_one(key);
        if let Some(e) = self.shard(hash).get(&hash)
            && e.matches(&key)
        {
            return Ok(Arc::clone(&e.rendered));
        }
        // Rendered outside the lock: two racing misses both render, and the last one stays.
        let rendered = Arc::new(render()?);
        let mut shard = self.shard(hash);
        if shard.len() >= SHARD_CAPACITY {
            shard.clear();
        }
        shard.insert(
            hash,
            Entry {
                snapshot: key.snapshot.into(),
                application: key.application.into(),
                profiles: key.profiles.into(),
                label: key.label.into(),
                format: key.format,
                rendered: Arc::clone(&rendered),
            },
        );
        Ok(rendered)
    }

    /// Forgets everything (a refresh swapped in new snapshots).
    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(body: &'static str) -> Result<Rendered, ()> {
        Ok(Rendered {
            body: Bytes::from_static(body.as_bytes()),
            etag: HeaderValue::from_static("\"x\""),
        })
    }

    #[test]
    fn hits_need_every_field_equal_and_clear_forgets() {
        let cache = ResponseCache::default();
        let key = Key {
            snapshot: "c1",
            application: "orders",
            profiles: "dev",
            label: "main",
            format: Format::Environment,
        };
        assert_eq!(
            &*cache.get_or_render(key, || rendered("a")).unwrap().body,
            b"a"
        );
        assert_eq!(
            &*cache.get_or_render(key, || rendered("b")).unwrap().body,
            b"a"
        );
        let other = Key {
            snapshot: "c2",
            ..key
        };
        assert_eq!(
            &*cache.get_or_render(other, || rendered("c")).unwrap().body,
            b"c"
        );
        let yaml = Key {
            format: Format::Yaml { resolve: true },
            ..key
        };
        assert_eq!(
            &*cache.get_or_render(yaml, || rendered("y")).unwrap().body,
            b"y"
        );
        cache.clear();
        assert_eq!(
            &*cache.get_or_render(key, || rendered("d")).unwrap().body,
            b"d"
        );
        assert!(
            cache
                .get_or_render(Key { label: "x", ..key }, || Err::<Rendered, ()>(()))
                .is_err()
        );
    }
}
