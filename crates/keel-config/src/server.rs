//! The config server engine: the served state, label resolution, environments and refreshes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use keel_properties::{
    AppNames, Decryptor, Environment, EnvironmentError, EnvironmentQuery, Label, Profiles,
    RepoLayout, SourceNaming, TextEncryptor,
};
use keel_server::{Health, HealthRegistry, Shutdown};
use tokio::sync::Notify;

use crate::config::{Backend, ConfigServerConfig};
use crate::error::ServeError;
use crate::git::Mirror;
use crate::refresh::{Origin, next_state};
use crate::snapshot::Snapshot;
use crate::store::State;
use crate::watch::Hub;

/// Commit-id lookups kept in memory (beyond ref tips, which are always in the state).
const COMMIT_CACHE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ConfigServerError {
    #[error("config repository {uri}: {message}")]
    Repository { uri: String, message: String },
    #[error("config bus {url}: {message}")]
    Bus { url: String, message: String },
}

/// One config server. Cheap to clone; every clone shares the same state.
#[derive(Clone)]
pub struct ConfigServer {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ConfigServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServer")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: ConfigServerConfig,
    pub(crate) layout: RepoLayout,
    pub(crate) origin: Origin,
    pub(crate) state: ArcSwap<State>,
    commits: Mutex<HashMap<String, Arc<Snapshot>>>,
    pub(crate) encryptor: Option<TextEncryptor>,
    pub(crate) hub: Hub,
    trigger: Notify,
    /// Serialises reloads (never taken by requests).
    reload: tokio::sync::Mutex<()>,
    pub(crate) shutdown: Shutdown,
    pub(crate) bus: std::sync::OnceLock<crate::bus::Bus>,
    /// Set by webhooks: announce on the bus after the next reload.
    announce: AtomicBool,
    /// Rendered responses, keyed by snapshot id among others.
    pub(crate) responses: crate::response_cache::ResponseCache,
}

/// A resolved request: what to build the Environment from.
pub(crate) struct Resolved {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) query: EnvironmentQuery,
}

/// Decrypts nothing: without a key every `{cipher}` value is served as `invalid.<key>`, as
/// Spring's fail-safe encryptor does.
struct NoKey;

impl Decryptor for NoKey {
    fn decrypt(&self, _: &str) -> Result<String, keel_properties::CipherError> {
        Err(keel_properties::CipherError::WrongKey)
    }
}

impl ConfigServer {
    /// Opens the backend, loads the first version (from the persistent mirror when the remote
    /// is unreachable), registers the `configServer` health component and starts the
    /// background refresher, which stops when `shutdown` begins.
    pub async fn start(
        config: ConfigServerConfig,
        health: &HealthRegistry,
        shutdown: &Shutdown,
    ) -> Result<Self, ConfigServerError> {
        // gix's https transport (reqwest + rustls) needs a process-wide crypto provider; a
        // second install (another server in this process) fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (origin, naming) = match &config.backend {
            Backend::Git { uri, basedir } => {
                let (uri2, basedir2) = (uri.clone(), basedir.clone());
                let mirror =
                    tokio::task::spawn_blocking(move || Mirror::open_or_init(&basedir2, &uri2))
                        .await
                        .map_err(|e| repo_err(uri, e))?
                        .map_err(|e| repo_err(uri, e))?;
                let naming = SourceNaming::git(uri, &mirror.path().display().to_string());
                (Origin::Git(Arc::new(mirror)), naming)
            }
            Backend::Native { dir } => {
                let abs = std::fs::canonicalize(dir)
                    .map_err(|e| repo_err(&dir.display().to_string(), e))?;
                (
                    Origin::Native(abs.clone()),
                    SourceNaming::native(&abs.display().to_string()),
                )
            }
        };
        let layout = RepoLayout {
            naming,
            search_paths: config.search_paths.clone(),
        };
        let encryptor = config.encrypt_key.as_deref().map(TextEncryptor::new);
        let inner = Arc::new(Inner {
            layout,
            origin,
            state: ArcSwap::from_pointee(State::default()),
            commits: Mutex::new(HashMap::new()),
            encryptor,
            hub: Hub::default(),
            trigger: Notify::new(),
            reload: tokio::sync::Mutex::new(()),
            shutdown: shutdown.clone(),
            bus: std::sync::OnceLock::new(),
            announce: AtomicBool::new(false),
            responses: crate::response_cache::ResponseCache::default(),
            config,
        });
        let server = ConfigServer { inner };
        server.reload().await;
        let state = server.inner.state.load();
        if state.labels.is_empty()
            && let Some(e) = &state.fetch_error
        {
            return Err(repo_err(&server.uri(), e));
        }
        drop(state);
        if let Some(url) = server.inner.config.bus.clone() {
            let bus = crate::bus::Bus::connect(&url, server.clone(), server.uri())
                .await
                .map_err(|message| ConfigServerError::Bus { url, message })?;
            let _ = server.inner.bus.set(bus);
        }
        server.register_health(health);
        tokio::spawn(server.clone().refresh_loop());
        Ok(server)
    }

    fn uri(&self) -> String {
        match &self.inner.config.backend {
            Backend::Git { uri, .. } => uri.clone(),
            Backend::Native { dir } => dir.display().to_string(),
        }
    }

    fn register_health(&self, health: &HealthRegistry) {
        let inner = Arc::downgrade(&self.inner);
        let uri = self.uri();
        health.register(
            "configServer",
            move || {
                let Some(inner) = inner.upgrade() else {
                    return Health::down().with_detail("reason", "stopped");
                };
                let state = inner.state.load();
                let mut h = if state.labels.is_empty() {
                    Health::down()
                } else {
                    Health::up()
                };
                h = h.with_detail("repository", uri.clone());
                if let Some(l) = state.label(&inner.config.default_label) {
                    h = h.with_detail("label", inner.config.default_label.clone());
                    h = h.with_detail("version", l.served.id.clone());
                }
                let labels: serde_json::Map<String, serde_json::Value> = state
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::from(v.served.id.clone())))
                    .collect();
                h = h.with_detail("labels", labels);
                if let Some(e) = &state.fetch_error {
                    h = h.with_detail("fetchError", e.clone());
                }
                let rejected = state.rejected();
                if !rejected.is_empty() {
                    h = h.with_detail(
                        "rejected",
                        serde_json::to_value(rejected).unwrap_or_default(),
                    );
                }
                h
            },
            true,
        );
    }

    /// Asks for a fetch soon; bursts within the debounce window are fetched once.
    pub fn trigger_refresh(&self) {
        self.inner.trigger.notify_one();
    }

    /// Like [`ConfigServer::trigger_refresh`], and also tells the other servers on the bus
    /// once this one has fetched (a webhook reaches only one server).
    pub fn trigger_refresh_and_announce(&self) {
        self.inner.announce.store(true, Ordering::Release);
        self.inner.trigger.notify_one();
    }

    /// Fetches now and swaps in the new state; returns once watchers have been notified.
    pub async fn refresh(&self) {
        self.reload().await;
    }

    async fn refresh_loop(self) {
        let interval = self.inner.config.refresh_interval;
        let debounce = self.inner.config.debounce;
        let shutdown = self.inner.shutdown.clone();
        loop {
            let timer = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await
                } else {
                    tokio::time::sleep(interval).await
                }
            };
            let from_webhook = tokio::select! {
                () = self.inner.trigger.notified() => true,
                () = timer => false,
                () = shutdown.begun() => return,
            };
            if from_webhook && !debounce.is_zero() {
                // Pushes arriving during the window are covered by the fetch that follows.
                tokio::time::sleep(debounce).await;
            }
            let announce = self.inner.announce.swap(false, Ordering::AcqRel);
            self.reload().await;
            if announce && let Some(bus) = self.inner.bus.get() {
                bus.announce().await;
            }
        }
    }

    /// Builds and swaps in the next state, then notifies watchers. Returns whether any label
    /// moved.
    async fn reload(&self) -> bool {
        let _guard = self.inner.reload.lock().await;
        let prev = self.inner.state.load_full();
        let inner = Arc::clone(&self.inner);
        let now = (self.inner.config.clock)();
        let built = tokio::task::spawn_blocking(move || {
            let decryptor = inner.encryptor.as_ref().map(|e| e as &dyn Decryptor);
            next_state(&inner.origin, &prev, decryptor, now, true)
        })
        .await;
        let next = match built {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "config refresh task failed");
                return false;
            }
        };
        let old = self.inner.state.load_full();
        let changed = old.labels.len() != next.labels.len()
            || old.labels.iter().any(|(k, v)| {
                next.labels
                    .get(k)
                    .is_none_or(|n| n.served.id != v.served.id)
            });
        self.inner.state.store(Arc::new(next));
        if changed {
            // Entries are keyed by snapshot id, so none could be served wrongly; this only
            // frees what no request will ask for again.
            self.inner.responses.clear();
            let state = self.inner.state.load_full();
            tracing::info!(
                labels = ?state.labels.iter().map(|(k, v)| format!("{k}={}", short(&v.served.id))).collect::<Vec<_>>(),
                "configuration refreshed"
            );
            self.inner.hub.publish(self).await;
        }
        changed
    }

    /// The current state (lock-free).
    pub(crate) fn state(&self) -> Arc<State> {
        self.inner.state.load_full()
    }

    /// Resolves `label` (or the default) to a snapshot: a branch or tag (with `main`↔`master`
    /// fallback) from the served state, else a commit id from the mirror.
    pub(crate) async fn snapshot_for(&self, label: &str) -> Result<Arc<Snapshot>, ServeError> {
        {
            let state = self.inner.state.load();
            if let Some(l) = state.label(label) {
                return Ok(Arc::clone(&l.served));
            }
            if let Some(s) = state.tip_by_commit(label) {
                return Ok(Arc::clone(s));
            }
        }
        let Origin::Git(mirror) = &self.inner.origin else {
            return Err(ServeError::NoSuchLabel(label.to_owned()));
        };
        if label.len() < 7 || label.len() > 40 || !label.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServeError::NoSuchLabel(label.to_owned()));
        }
        let key = label.to_ascii_lowercase();
        if let Some(s) = lock(&self.inner.commits).get(&key) {
            return Ok(Arc::clone(s));
        }
        let mirror = Arc::clone(mirror);
        let hex = key.clone();
        let snapshot = tokio::task::spawn_blocking(move || {
            let id = mirror.find_commit(&hex)?;
            let files = mirror.files(id).ok()?;
            Some(Snapshot::new(id.to_string(), Some(id.to_string()), files))
        })
        .await
        .map_err(|e| ServeError::Unavailable(e.to_string()))?
        .ok_or_else(|| ServeError::NoSuchLabel(label.to_owned()))?;
        let snapshot = Arc::new(snapshot);
        let mut cache = lock(&self.inner.commits);
        if cache.len() >= COMMIT_CACHE {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// Parses the request segments and resolves the label.
    pub(crate) async fn resolve(
        &self,
        application: &str,
        profiles: &str,
        label: Option<&str>,
    ) -> Result<Resolved, ServeError> {
        let applications = AppNames::parse(application)?;
        let profiles = Profiles::parse(profiles)?;
        let label = Label::parse(label.unwrap_or(&self.inner.config.default_label))?;
        let snapshot = self.snapshot_for(label.as_str()).await?;
        Ok(Resolved {
            snapshot,
            query: EnvironmentQuery {
                applications,
                profiles,
                label: Some(label),
            },
        })
    }

    /// The Environment Spring would serve, decrypted, with `version` filled in.
    pub(crate) fn environment(&self, resolved: &Resolved) -> Result<Environment, ServeError> {
        let mut env = resolved
            .snapshot
            .tree
            .environment(&resolved.query, &self.inner.layout)
            .map_err(|e| match e {
                EnvironmentError::InvalidFile(p) => ServeError::Invalid(p.to_string()),
            })?;
        env.version = resolved.snapshot.version.clone();
        if !self.inner.config.accept_empty && env.property_sources.is_empty() {
            return Err(ServeError::AppNotFound(env.name));
        }
        match &self.inner.encryptor {
            Some(e) => env.decrypt(e),
            None => env.decrypt(&NoKey),
        }
        Ok(env)
    }

    /// Resolves and builds in one step.
    pub async fn find_environment(
        &self,
        application: &str,
        profiles: &str,
        label: Option<&str>,
    ) -> Result<Environment, ServeError> {
        let resolved = self.resolve(application, profiles, label).await?;
        self.environment(&resolved)
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.inner.config.clock)()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache only means a panic mid-insert; the map is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn repo_err(uri: &str, e: impl std::fmt::Display) -> ConfigServerError {
    ConfigServerError::Repository {
        uri: uri.to_owned(),
        message: e.to_string(),
    }
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}
