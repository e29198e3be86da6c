//! The config client: reads an application's configuration from Keel's (or Spring's) config
//! servers and keeps it current.
//!
//! - Several server URLs; a server that fails is left for the next one.
//! - At start it fetches with retry (jittered backoff); when every server stays down it starts
//!   from the disk cache (one file per application, profile and label) if there is one.
//! - Then it follows Keel's watch stream (`GET /keel/v1/watch`, resumed with `Last-Event-ID`),
//!   or polls with `If-None-Match` where a server has no watch stream, and hands the
//!   application a new [`ConfigSnapshot`] through a `tokio::sync::watch` channel whenever the
//!   configuration changes.

mod bind;
mod cache;
mod error;
mod fetch;
mod server_url;
mod snapshot;
mod updater;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_resilience::Backoff;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use error::ConfigError;
pub use server_url::{ConfigServerUrl, ConfigServerUrlError, ConfigServerUrls};
pub use snapshot::{ConfigSnapshot, GetError, SnapshotSource};

use cache::DiskCache;
use fetch::{Fetched, Target, fetch};
use updater::Updater;

/// Settings for [`ConfigClient`]. Defaults follow Spring's client where it has one.
#[derive(Debug, Clone)]
pub struct ConfigClientConfig {
    pub servers: ConfigServerUrls,
    /// `spring.application.name` (several names comma-separated).
    pub application: String,
    /// Active profiles, comma-separated (`default` when none).
    pub profile: String,
    /// Branch, tag or commit; `None` asks for the server's default label.
    pub label: Option<String>,
    /// Where the last configuration is kept, to start from when every server is down.
    pub cache_dir: Option<PathBuf>,
    /// Time limit of one request (and of opening the watch stream).
    pub request_timeout: Duration,
    /// Rounds over every server at start before falling back to the cache (Spring's
    /// `retry.max-attempts`, 6).
    pub start_attempts: u32,
    /// First and largest pause between start rounds (Spring: 1 s and 2 s).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Follow Keel's watch stream; `false` always polls.
    pub watch: bool,
    /// Polling interval where there is no watch stream.
    pub poll_interval: Duration,
    /// A watch stream silent this long is presumed dead (Keel comments every 15 s).
    pub idle_timeout: Duration,
    /// First and largest pause once every server failed in a row, after start.
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
}

impl ConfigClientConfig {
    pub fn new(servers: ConfigServerUrls, application: &str) -> Self {
        Self {
            servers,
            application: application.to_owned(),
            profile: "default".to_owned(),
            label: None,
            cache_dir: None,
            request_timeout: Duration::from_secs(10),
            start_attempts: 6,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(2),
            watch: true,
            poll_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            reconnect_base: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// How the snapshot is being kept current right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFeed {
    Disconnected,
    Watch,
    Poll,
}

/// What the client has done so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigStatus {
    /// The server in use (or last tried).
    pub server: String,
    pub feed: ConfigFeed,
    /// New snapshots handed to the application after the first.
    pub updates: u64,
    pub last_error: Option<String>,
}

/// Keeps an application's configuration current until dropped.
pub struct ConfigClient {
    rx: watch::Receiver<Arc<ConfigSnapshot>>,
    status: Arc<Mutex<ConfigStatus>>,
    _stop: DropGuard,
}

impl std::fmt::Debug for ConfigClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigClient")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl ConfigClient {
    /// Fetches the first snapshot (retrying, then from the disk cache), then keeps it current
    /// on the current tokio runtime. Fails when no server answered and there is no cache, or
    /// when a server answered 404 (an unknown label: retrying would not help).
    pub async fn start(config: ConfigClientConfig) -> Result<Self, ConfigError> {
        crate::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("keel-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(crate::ClientBuildError)?;
        let target = Target {
            application: config.application.clone(),
            profile: config.profile.clone(),
            label: config.label.clone(),
        };
        let cache = config.cache_dir.as_deref().map(|dir| {
            DiskCache::new(
                dir,
                &target.application,
                &target.profile,
                target.label.as_deref(),
            )
        });
        let (first, etag) = first_snapshot(&config, &http, &target, cache.as_ref()).await?;
        let status = Arc::new(Mutex::new(ConfigStatus {
            server: config.servers.current().1.to_string(),
            feed: ConfigFeed::Disconnected,
            updates: 0,
            last_error: None,
        }));
        let last_event_id = match first.source {
            SnapshotSource::Server(_) => first.version.clone(),
            // A cached copy is compared by content once a server answers again.
            SnapshotSource::Cache(_) => None,
        };
        let (tx, rx) = watch::channel(Arc::new(first));
        let stop = CancellationToken::new();
        let updater = Updater {
            config,
            target,
            http,
            tx,
            status: status.clone(),
            cache,
            etag,
            last_event_id,
        };
        let token = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = updater.run() => {}
            }
        });
        Ok(Self {
            rx,
            status,
            _stop: stop.drop_guard(),
        })
    }

    /// The configuration now.
    pub fn current(&self) -> Arc<ConfigSnapshot> {
        self.rx.borrow().clone()
    }

    /// A receiver marked changed whenever a new snapshot arrives. It stops changing once this
    /// client is dropped.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigSnapshot>> {
        self.rx.clone()
    }

    pub fn status(&self) -> ConfigStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Rounds over every server with backoff between rounds; then the disk cache.
async fn first_snapshot(
    config: &ConfigClientConfig,
    http: &reqwest::Client,
    target: &Target,
    cache: Option<&DiskCache>,
) -> Result<(ConfigSnapshot, Option<String>), ConfigError> {
    let backoff = Backoff {
        base: config.retry_base,
        max: config.retry_max,
        max_retries: u32::MAX,
    };
    let attempts = config.start_attempts.max(1);
    let mut last = None;
    for round in 0..attempts {
        if round > 0 {
            tokio::time::sleep(backoff.delay(round - 1)).await;
        }
        for (i, server) in config.servers.rotation() {
            let result = fetch(http, server, target, None, config.request_timeout).await;
            let error = match result {
                Ok(Fetched::New { body, etag }) => {
                    match ConfigSnapshot::from_environment(
                        &body,
                        SnapshotSource::Server(server.to_string()),
                    ) {
                        Ok(snapshot) => {
                            config.servers.settle(i);
                            if let Some(cache) = cache {
                                cache.store(&body).await;
                            }
                            return Ok((snapshot, etag));
                        }
                        Err(e) => e,
                    }
                }
                Ok(Fetched::NotModified) => ConfigError::Status {
                    url: server.to_string(),
                    status: 304,
                },
                Err(e) if !e.is_retryable() => return Err(e),
                Err(e) => e,
            };
            tracing::warn!(server = %server, error = %error, "config fetch failed");
            config.servers.failed(i);
            last = Some(error);
        }
    }
    let last = last.unwrap_or(ConfigError::EndedEarly { url: String::new() });
    if let Some(cache) = cache
        && let Some(body) = cache.load().await
    {
        let snapshot = ConfigSnapshot::from_environment(
            &body,
            SnapshotSource::Cache(cache.path().to_owned()),
        )?;
        tracing::warn!(
            path = %cache.path().display(),
            version = snapshot.version.as_deref().unwrap_or("-"),
            error = %last,
            "every config server is down; starting from the cached configuration"
        );
        return Ok((snapshot, None));
    }
    Err(ConfigError::Unavailable {
        attempts,
        last: Box::new(last),
        cache: cache.map(|c| c.path().display().to_string()),
    })
}
