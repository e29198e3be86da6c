//! The one task that keeps the snapshot current: Keel's watch stream first (resumed with
//! `Last-Event-ID`), `If-None-Match` polling where a server has none (a 404, as Spring Cloud
//! Config answers), failover between servers with jittered backoff once all have failed.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use keel_resilience::Backoff;
use tokio::sync::watch;

use super::cache::DiskCache;
use super::error::ConfigError;
use super::fetch::{Fetched, Target, fetch};
use super::server_url::ConfigServerUrl;
use super::snapshot::{ConfigSnapshot, SnapshotSource};
use super::{ConfigClientConfig, ConfigFeed, ConfigStatus};
use crate::discovery::sse::{SseEvent, SseParser};

/// How a watch connection ended without an error.
enum WatchEnd {
    Unsupported,
    /// The server closed the stream after sending `chunks` chunks (events or keep-alives).
    Closed {
        chunks: u64,
    },
}

pub(super) struct Updater {
    pub config: ConfigClientConfig,
    pub target: Target,
    pub http: reqwest::Client,
    pub tx: watch::Sender<Arc<ConfigSnapshot>>,
    pub status: Arc<Mutex<ConfigStatus>>,
    pub cache: Option<DiskCache>,
    /// The ETag of the last body fetched, for polling.
    pub etag: Option<String>,
    /// The id of the version we hold (the commit), sent as `Last-Event-ID`.
    pub last_event_id: Option<String>,
}

impl Updater {
    pub async fn run(mut self) {
        let backoff = Backoff {
            base: self.config.reconnect_base,
            max: self.config.reconnect_max,
            max_retries: u32::MAX,
        };
        let servers = self.config.servers.clone();
        let nodes = servers.len();
        let mut failures: usize = 0;
        loop {
            let (node, url) = servers.current();
            let url = url.clone();
            self.set_status(|s| s.server = url.to_string());
            let outcome = if self.config.watch {
                self.follow_watch(&url).await
            } else {
                Ok(WatchEnd::Unsupported)
            };
            let error = match outcome {
                Ok(WatchEnd::Closed { chunks }) if chunks > 0 => {
                    failures = 0;
                    continue;
                }
                Ok(WatchEnd::Closed { .. }) => ConfigError::EndedEarly {
                    url: url.to_string(),
                },
                Ok(WatchEnd::Unsupported) => {
                    self.set_status(|s| s.feed = ConfigFeed::Poll);
                    self.poll_until_error(node, &url, &mut failures).await
                }
                Err(e) => e,
            };
            self.set_status(|s| {
                s.feed = ConfigFeed::Disconnected;
                s.last_error = Some(error.to_string());
            });
            tracing::warn!(server = %url, error = %error, "config server failed; keeping the last configuration");
            servers.failed(node);
            failures += 1;
            // Every server is tried once straight away; pause only when all failed in a row.
            if failures.is_multiple_of(nodes) {
                let round = u32::try_from(failures / nodes - 1)
                    .unwrap_or(u32::MAX)
                    .min(16);
                tokio::time::sleep(backoff.delay(round)).await;
            }
        }
    }

    async fn follow_watch(&mut self, url: &ConfigServerUrl) -> Result<WatchEnd, ConfigError> {
        let watch_url = url.watch(
            &self.target.application,
            &self.target.profile,
            self.target.label.as_deref(),
        );
        let shown = watch_url.to_string();
        let mut request = self
            .http
            .get(watch_url)
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some((user, password)) = url.basic() {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(id) = &self.last_event_id {
            request = request.header("last-event-id", id.as_str());
        }
        let timeout = self.config.request_timeout;
        let response = tokio::time::timeout(timeout, request.send())
            .await
            .map_err(|_| ConfigError::Timeout {
                url: shown.clone(),
                timeout,
            })?
            .map_err(|source| ConfigError::Http {
                url: shown.clone(),
                source,
            })?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                tracing::info!(server = %url, "no watch stream; polling with If-None-Match");
                return Ok(WatchEnd::Unsupported);
            }
            status => return Err(ConfigError::Status { url: shown, status }),
        }
        self.settle(url);
        self.set_status(|s| s.feed = ConfigFeed::Watch);
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut chunks = 0;
        let idle = self.config.idle_timeout;
        loop {
            let chunk = match tokio::time::timeout(idle, body.next()).await {
                Err(_) => return Err(ConfigError::Idle { url: shown, idle }),
                Ok(None) => return Ok(WatchEnd::Closed { chunks }),
                Ok(Some(chunk)) => chunk.map_err(|source| ConfigError::Http {
                    url: shown.clone(),
                    source,
                })?,
            };
            chunks += 1;
            parser.push(&chunk);
            while let Some(event) = parser.next_event() {
                self.apply_event(url, &event).await?;
            }
        }
    }

    async fn apply_event(
        &mut self,
        url: &ConfigServerUrl,
        event: &SseEvent,
    ) -> Result<(), ConfigError> {
        if !matches!(event.event.as_str(), "snapshot" | "change") {
            // Unknown kinds are for newer clients.
            return Ok(());
        }
        let snapshot =
            ConfigSnapshot::from_environment(&event.data, SnapshotSource::Server(url.to_string()))?;
        self.install(snapshot).await;
        if let Some(id) = &event.id {
            self.last_event_id = Some(id.clone());
        }
        // The ETag is over the body; a pollers' tag from before no longer describes it.
        self.etag = None;
        Ok(())
    }

    async fn poll_until_error(
        &mut self,
        node: usize,
        url: &ConfigServerUrl,
        failures: &mut usize,
    ) -> ConfigError {
        loop {
            match fetch(
                &self.http,
                url,
                &self.target,
                self.etag.as_deref(),
                self.config.request_timeout,
            )
            .await
            {
                Ok(Fetched::NotModified) => {}
                Ok(Fetched::New { body, etag }) => {
                    match ConfigSnapshot::from_environment(
                        &body,
                        SnapshotSource::Server(url.to_string()),
                    ) {
                        Ok(snapshot) => {
                            self.last_event_id = snapshot.version.clone();
                            self.install(snapshot).await;
                            self.etag = etag;
                        }
                        Err(e) => return e,
                    }
                }
                // The label went away on this server: keep what we have and look again later.
                Err(e @ ConfigError::NotFound { .. }) => {
                    tracing::warn!(server = %url, error = %e, "configuration not found; keeping the last one");
                }
                Err(e) => return e,
            }
            self.config.servers.settle(node);
            *failures = 0;
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    fn settle(&self, url: &ConfigServerUrl) {
        if let Some((i, _)) = self.config.servers.rotation().find(|(_, u)| *u == url) {
            self.config.servers.settle(i);
        }
    }

    /// Hands `snapshot` to the application when its configuration differs from the one held
    /// (or the one held came from the disk cache), and writes it to the disk cache.
    async fn install(&mut self, snapshot: ConfigSnapshot) {
        let current = self.tx.borrow().clone();
        let from_cache = matches!(current.source, SnapshotSource::Cache(_));
        if current.same_configuration(&snapshot) && !from_cache {
            return;
        }
        tracing::info!(
            application = %self.target.application,
            version = snapshot.version.as_deref().unwrap_or("-"),
            "configuration changed"
        );
        if let Some(cache) = &self.cache {
            cache.store(&snapshot.body).await;
        }
        self.tx.send_replace(Arc::new(snapshot));
        self.set_status(|s| s.updates += 1);
    }

    fn set_status(&self, f: impl FnOnce(&mut ConfigStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
