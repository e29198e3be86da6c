//! Typed settings of one registry node; the binary fills them from flags, env and files.

use std::time::Duration;

/// Settings for one registry node.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub self_preservation: SelfPreservationConfig,
    /// How long a change stays in `/apps/delta` (Eureka's `retentionTimeInMSInDeltaQueue`).
    pub delta_retention: Duration,
    /// How many change events are kept for watchers resuming with `Last-Event-ID`.
    pub watch_history: usize,
    /// Interval of the SSE heartbeat comment.
    pub watch_heartbeat: Duration,
    pub auth: AuthConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            self_preservation: SelfPreservationConfig::default(),
            delta_retention: Duration::from_secs(180),
            watch_history: 4096,
            watch_heartbeat: Duration::from_secs(15),
            auth: AuthConfig::default(),
        }
    }
}

/// When to stop expiring leases because the registry, not the instances, looks cut off.
#[derive(Clone, Debug)]
pub struct SelfPreservationConfig {
    pub enabled: bool,
    /// Below this many instances preservation never engages, so a small registry still
    /// expires a crashed instance.
    pub floor: usize,
    /// Engage when the renewals arriving fall below this fraction of those expected.
    pub threshold: f64,
    /// The longest a lease is kept past its deadline while preservation is engaged; after
    /// that it expires anyway, so preservation cannot get stuck (Netflix/eureka#1247).
    pub max_hold: Duration,
}

impl Default for SelfPreservationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            floor: 10,
            threshold: 0.85,
            max_hold: Duration::from_secs(300),
        }
    }
}

/// Optional credentials for writes (and, if `protect_reads`, reads). Empty means open.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// Accepted as `Authorization: Bearer <token>`, or as the password of HTTP basic auth
    /// with any user name (py-eureka-client can only send basic auth from its URL).
    pub tokens: Vec<String>,
    /// `(user, password)` pairs for HTTP basic auth.
    pub users: Vec<(String, String)>,
    pub protect_reads: bool,
}

impl AuthConfig {
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    /// Parses a users file: one `user:password` per line; blank lines and `#` comments skipped.
    pub fn parse_users(text: &str) -> Result<Vec<(String, String)>, UsersFileError> {
        let mut users = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                    users.push((user.to_owned(), password.to_owned()));
                }
                _ => return Err(UsersFileError { line: n + 1 }),
            }
        }
        Ok(users)
    }
}

/// A users-file line that is not `user:password`.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: expected `user:password`")]
pub struct UsersFileError {
    pub line: usize,
}
