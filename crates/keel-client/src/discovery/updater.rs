//! The one task that feeds the cache: watch stream first, delta polling as the fallback, and
//! failover between registry nodes with jittered backoff once every node has failed.

use std::sync::{Arc, Mutex, PoisonError};

use keel_eureka::Applications;
use keel_resilience::Backoff;
use tokio::time::Instant;

use super::cache::{Cache, LocalCopy};
use super::{DiscoveryConfig, DiscoveryError, DiscoveryStatus, Feed};

/// How a watch connection ended without an error.
pub(super) enum WatchEnd {
    /// The node has no watch stream (404): poll it instead.
    Unsupported,
    /// The server closed the stream (e.g. it is shutting down) after `events` events.
    Closed { events: u64 },
}

pub(super) struct Updater {
    pub(super) config: DiscoveryConfig,
    pub(super) http: reqwest::Client,
    cache: Arc<Cache>,
    pub(super) copy: LocalCopy,
    status: Arc<Mutex<DiscoveryStatus>>,
    ready: tokio::sync::watch::Sender<bool>,
    /// `(node, version)` of the last watch event, to resume on the same node only: versions are
    /// per node, so another node's stream must start from a snapshot.
    pub(super) resume: Option<(usize, u64)>,
    empty_since: Option<Instant>,
}

impl Updater {
    pub fn new(
        config: DiscoveryConfig,
        http: reqwest::Client,
        cache: Arc<Cache>,
        status: Arc<Mutex<DiscoveryStatus>>,
        ready: tokio::sync::watch::Sender<bool>,
    ) -> Self {
        Self {
            config,
            http,
            cache,
            copy: LocalCopy::default(),
            status,
            ready,
            resume: None,
            empty_since: None,
        }
    }

    pub async fn run(mut self) {
        let backoff = Backoff {
            base: self.config.reconnect_base,
            max: self.config.reconnect_max,
            max_retries: u32::MAX,
        };
        let nodes = self.config.registries.len();
        let mut failures: usize = 0;
        loop {
            let (node, url) = self.config.registries.current();
            let url = url.clone();
            self.set_status(|s| s.registry = url.to_string());
            let error = match self.follow_watch(node, &url).await {
                Ok(WatchEnd::Closed { events }) if events > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(WatchEnd::Closed { .. }) => DiscoveryError::EndedEarly {
                    url: url.to_string(),
                },
                Ok(WatchEnd::Unsupported) => {
                    tracing::info!(registry = %url, "no watch stream; polling /apps/delta");
                    self.set_status(|s| s.feed = Feed::Poll);
                    self.poll_until_error(node, &url, &mut failures).await
                }
                Err(e) => e,
            };
            self.set_status(|s| s.feed = Feed::Disconnected);
            tracing::warn!(registry = %url, error = %error, "registry node failed; keeping the last known instances");
            self.config.registries.failed(node);
            failures += 1;
            // Try every node once at once; pause only when all of them failed in a row.
            if failures.is_multiple_of(nodes) {
                let round = u32::try_from(failures / nodes - 1)
                    .unwrap_or(u32::MAX)
                    .min(16);
                tokio::time::sleep(backoff.delay(round)).await;
            }
        }
    }

    async fn poll_until_error(
        &mut self,
        node: usize,
        url: &crate::RegistryUrl,
        failures: &mut usize,
    ) -> DiscoveryError {
        loop {
            if let Err(e) = self.poll_once(url).await {
                return e;
            }
            self.config.registries.settle(node);
            *failures = 0;
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    pub(super) fn set_status(&self, f: impl FnOnce(&mut DiscoveryStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Installs a full registry, unless it is empty while we know instances and the grace
    /// period has not run out (a restarted node must not wipe every caller's cache).
    pub(super) fn install_full(&mut self, full: &Applications) {
        let empty = full.applications.iter().all(|a| a.instances.is_empty());
        if empty && !self.copy.is_empty() {
            let since = *self.empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() < self.config.empty_grace {
                tracing::warn!(
                    known = self.copy.instance_count(),
                    "registry reports no instances at all; keeping the last known ones for now"
                );
                self.mark_ready();
                return;
            }
        }
        self.empty_since = None;
        self.copy.replace(full);
        self.publish();
        self.mark_ready();
    }

    pub(super) fn publish(&mut self) {
        self.copy.publish(&self.cache);
        let instances = self.copy.instance_count();
        self.set_status(|s| {
            s.instances = instances;
            s.updates += 1;
        });
    }

    fn mark_ready(&self) {
        self.ready.send_if_modified(|r| !std::mem::replace(r, true));
        self.set_status(|s| s.ready = true);
    }
}
