//! What can go wrong reading configuration: per attempt (logged, then failed over) and at start.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// The server knows no such label (Spring answers 404): asking another server or retrying
    /// will not help.
    #[error("{url}: not found (an unknown label?)")]
    NotFound { url: String },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: no data for {idle:?}, presumed dead")]
    Idle { url: String, idle: Duration },
    #[error("{url}: the watch stream ended before its first event")]
    EndedEarly { url: String },
    #[error("decode the Environment from {what}: {reason}")]
    Decode { what: String, reason: String },
    #[error("bind {prefix:?}: {reason}")]
    Bind { prefix: String, reason: String },
    #[error(
        "no config server answered after {attempts} attempts (last error: {last}), and there is no cached copy{}",
        cache.as_deref().map(|c| format!(" at {c}")).unwrap_or_default()
    )]
    Unavailable {
        attempts: u32,
        last: Box<ConfigError>,
        cache: Option<String>,
    },
    #[error(transparent)]
    Client(#[from] crate::ClientBuildError),
}

impl ConfigError {
    /// Whether another server, or the same one later, may answer differently.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ConfigError::NotFound { .. } | ConfigError::Bind { .. } | ConfigError::Client(_)
        )
    }
}
