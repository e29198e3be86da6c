//! Service discovery: the [`Discovery`] trait the SDK's HTTP client and the gateway consume, and
//! [`RegistryDiscovery`], a cache kept current from the registry.
//!
//! `RegistryDiscovery` follows the registry's `GET /keel/v1/watch` stream (a `snapshot` event,
//! then `upsert`/`delete`, resumed with `Last-Event-ID`). Against a server without it (a 404, as
//! a Java Eureka server answers) it polls `GET /apps/delta` like Eureka's client, reconciling with
//! `apps__hashcode` and fetching `GET /apps` on a mismatch. Lookups read memory only. An
//! unreachable registry leaves the cache as it was: it never empties itself.

mod cache;
mod error;
mod fixed;
mod poll;
pub(crate) mod sse;
mod updater;
mod watch;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_eureka::AppName;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use cache::Instances;
pub use error::DiscoveryError;
pub use fixed::FixedDiscovery;

use crate::registry_url::RegistryUrls;
use cache::Cache;

/// Where instances come from. Implementations answer from memory: no call blocks or does I/O.
pub trait Discovery: Send + Sync + 'static {
    /// The UP instances of `app` now (empty if none or unknown).
    fn instances(&self, app: &AppName) -> Instances;

    /// A receiver holding the UP instances of `app`, marked changed whenever they change.
    fn subscribe(&self, app: &AppName) -> tokio::sync::watch::Receiver<Instances>;

    /// Apps with at least one UP instance, sorted.
    fn apps(&self) -> Vec<AppName>;
}

/// Settings for [`RegistryDiscovery`].
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    pub registries: RegistryUrls,
    /// Delta polling interval when the registry has no watch stream (Eureka's
    /// `registryFetchIntervalSeconds`, 30 s).
    pub poll_interval: Duration,
    /// A watch stream silent this long is presumed dead (the registry comments every 15 s).
    pub idle_timeout: Duration,
    /// Time limit of one `GET /apps` or `/apps/delta`.
    pub request_timeout: Duration,
    /// First and largest pause after every registry node failed in a row (full jitter).
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    /// A registry that answers with no instances at all while we know some is probably a node
    /// that just restarted; its empty view is only believed after this long.
    pub empty_grace: Duration,
}

impl DiscoveryConfig {
    pub fn new(registries: RegistryUrls) -> Self {
        Self {
            registries,
            poll_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            request_timeout: Duration::from_secs(10),
            reconnect_base: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            empty_grace: Duration::from_secs(180),
        }
    }
}

/// How the cache is being fed right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Not connected to any registry node (yet, or any more).
    Disconnected,
    /// Following `/keel/v1/watch`.
    Watch,
    /// Polling `/apps/delta` (the node has no watch stream).
    Poll,
}

/// A snapshot of the updater's state, for health endpoints and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryStatus {
    pub feed: Feed,
    /// The registry node in use.
    pub registry: String,
    /// The last watch event id (the registry version) seen from that node.
    pub version: Option<u64>,
    /// Whether a full registry has been loaded at least once.
    pub ready: bool,
    /// Instances in the local copy, whatever their status.
    pub instances: usize,
    /// Watch events, full fetches and deltas applied.
    pub updates: u64,
}

/// A discovery cache kept current from the registry. Cheap to clone; the updater task stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct RegistryDiscovery {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<Cache>,
    status: Arc<Mutex<DiscoveryStatus>>,
    ready: tokio::sync::watch::Receiver<bool>,
    _stop: DropGuard,
}

impl std::fmt::Debug for RegistryDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryDiscovery")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl RegistryDiscovery {
    /// Starts the updater on the current tokio runtime.
    pub fn start(config: DiscoveryConfig) -> Result<Self, crate::ClientBuildError> {
        let http = crate::registry_http_client(Duration::from_secs(5))?;
        Ok(Self::with_http(config, http))
    }

    /// Same, with a caller-built HTTP client (TLS roots, proxies).
    pub fn with_http(config: DiscoveryConfig, http: reqwest::Client) -> Self {
        let cache = Arc::new(Cache::default());
        let status = Arc::new(Mutex::new(DiscoveryStatus {
            feed: Feed::Disconnected,
            registry: config.registries.current().1.to_string(),
            version: None,
            ready: false,
            instances: 0,
            updates: 0,
        }));
        let (ready_tx, ready) = tokio::sync::watch::channel(false);
        let stop = CancellationToken::new();
        let updater = updater::Updater::new(config, http, cache.clone(), status.clone(), ready_tx);
        let token = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = updater.run() => {}
            }
        });
        Self {
            inner: Arc::new(Inner {
                cache,
                status,
                ready,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Resolves once a full registry has been loaded (it never un-readies).
    pub async fn ready(&self) {
        let mut rx = self.inner.ready.clone();
        // An error means the updater is gone; nothing more will load, so stop waiting.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    pub fn status(&self) -> DiscoveryStatus {
        self.inner
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Discovery for RegistryDiscovery {
    fn instances(&self, app: &AppName) -> Instances {
        self.inner.cache.instances(app)
    }

    fn subscribe(&self, app: &AppName) -> tokio::sync::watch::Receiver<Instances> {
        self.inner.cache.subscribe(app)
    }

    fn apps(&self) -> Vec<AppName> {
        self.inner.cache.apps()
    }
}

impl<D: Discovery + ?Sized> Discovery for Arc<D> {
    fn instances(&self, app: &AppName) -> Instances {
        (**self).instances(app)
    }

    fn subscribe(&self, app: &AppName) -> tokio::sync::watch::Receiver<Instances> {
        (**self).subscribe(app)
    }

    fn apps(&self) -> Vec<AppName> {
        (**self).apps()
    }
}
