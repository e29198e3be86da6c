//! Settings for one config server, as typed structs (only the binary reads flags and files).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A git repository (`/path`, `file://…` or `https://…`), mirrored into `basedir`, which is
    /// kept across restarts so the server can start from it when the remote is down.
    Git { uri: String, basedir: PathBuf },
    /// A plain directory, read whole on every refresh; served as label `main`.
    Native { dir: PathBuf },
}

/// Credentials a request must present: HTTP Basic, a bearer token, or either.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub basic: Option<(String, String)>,
    pub bearer: Option<String>,
}

impl Credentials {
    /// Parses `basic:user:password` or `bearer:token`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw.strip_prefix("basic:") {
            let (user, pass) = rest
                .split_once(':')
                .ok_or("expected basic:<user>:<password>")?;
            return Ok(Self {
                basic: Some((user.to_owned(), pass.to_owned())),
                bearer: None,
            });
        }
        if let Some(token) = raw.strip_prefix("bearer:") {
            if token.is_empty() {
                return Err("empty bearer token".into());
            }
            return Ok(Self {
                basic: None,
                bearer: Some(token.to_owned()),
            });
        }
        Err("expected basic:<user>:<password> or bearer:<token>".into())
    }
}

/// Wall-clock source for timestamps in error bodies and history (injected so tests can pin it).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Settings for one config server.
#[derive(Clone)]
pub struct ConfigServerConfig {
    pub backend: Backend,
    /// Extra search paths; may hold `{application}`, `{profile}` and `{label}`.
    pub search_paths: Vec<String>,
    /// The label used when a request names none.
    pub default_label: String,
    /// With `false`, a request that matches no property source gets 404 (Spring's
    /// `accept-empty`).
    pub accept_empty: bool,
    /// The symmetric `{cipher}` key (`encrypt.key`); without it `/encrypt` answers 404 NO_KEY.
    pub encrypt_key: Option<String>,
    /// How often to fetch without a webhook. Zero disables the timer.
    pub refresh_interval: Duration,
    /// How long a webhook waits for more pushes before fetching once for all of them.
    pub debounce: Duration,
    /// Shared secret for webhook signatures and tokens; without it webhooks are not checked.
    pub monitor_secret: Option<String>,
    /// Required for config reads and the keel API, when set.
    pub read_auth: Option<Credentials>,
    /// Required for `/encrypt`, `/decrypt` and `/monitor`, when set.
    pub admin_auth: Option<Credentials>,
    /// NATS URL of the bus that links config servers (`nats://host:4222`).
    pub bus: Option<String>,
    pub clock: Clock,
}

impl std::fmt::Debug for ConfigServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServerConfig")
            .field("backend", &self.backend)
            .field("search_paths", &self.search_paths)
            .field("default_label", &self.default_label)
            .field("accept_empty", &self.accept_empty)
            .field(
                "encrypt_key",
                &self.encrypt_key.as_ref().map(|_| "<redacted>"),
            )
            .field("refresh_interval", &self.refresh_interval)
            .field("debounce", &self.debounce)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

impl ConfigServerConfig {
    /// Defaults for `backend`: label `main`, accept-empty, a 30 s timer and a 200 ms debounce.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            search_paths: Vec::new(),
            default_label: "main".into(),
            accept_empty: true,
            encrypt_key: None,
            refresh_interval: Duration::from_secs(30),
            debounce: Duration::from_millis(200),
            monitor_secret: None,
            read_auth: None,
            admin_auth: None,
            bus: None,
            clock: Arc::new(SystemTime::now),
        }
    }
}
