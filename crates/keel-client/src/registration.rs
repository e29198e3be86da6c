//! The registration agent: registers this process through Eureka's REST API, heartbeats every
//! renewal interval, re-registers when a node answers 404 (it restarted, or we failed over to a
//! node that never heard of us), and deregisters gracefully: status DOWN, then cancel.

mod instance;
mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_eureka::InstanceStatus;
use keel_resilience::{Backoff, WallClock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use instance::InstanceConfig;
pub use wire::RegistrationError;

use crate::registry_url::RegistryUrls;
use wire::{Heartbeat, Wire};

/// Settings for [`RegistrationAgent`].
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    pub registries: RegistryUrls,
    pub instance: InstanceConfig,
    /// Upper limit of one call to one node. The agent holds each call to at most half the
    /// renewal interval as well (see [`RegistrationConfig::attempt_timeout`]).
    pub request_timeout: Duration,
    /// First pause before retrying a failed registration (doubling, full jitter, capped at the
    /// renewal interval).
    pub retry_base: Duration,
    /// Source of `lastDirtyTimestamp` and lease timestamps.
    pub clock: WallClock,
}

impl RegistrationConfig {
    pub fn new(registries: RegistryUrls, instance: InstanceConfig) -> Self {
        Self {
            registries,
            instance,
            request_timeout: Duration::from_secs(5),
            retry_base: Duration::from_secs(1),
            clock: WallClock::system(),
        }
    }

    /// Time limit of one call to one node: `request_timeout`, capped at half the renewal
    /// interval. A killed node's address black-holes (no RST), so a call to it only ends at
    /// this limit; kept under the interval, a heartbeat that starts on a dead node still
    /// reaches a live one well before the lease (several intervals) runs out.
    pub fn attempt_timeout(&self) -> Duration {
        let half_interval = (self.instance.renewal_interval / 2).max(MIN_ATTEMPT);
        self.request_timeout.min(half_interval)
    }

    /// Connect limit for the agent's own HTTP client: a second at most, and within the
    /// attempt limit.
    fn connect_timeout(&self) -> Duration {
        self.attempt_timeout().min(Duration::from_secs(1))
    }
}

/// Floor of the per-node limit, so a tiny renewal interval does not fail every call.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// What the agent has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentStatus {
    /// Whether the last register or heartbeat succeeded.
    pub registered: bool,
    /// The node that answered last.
    pub registry: String,
    pub registrations: u64,
    pub heartbeats: u64,
    pub failures: u64,
}

/// Keeps this process registered until [`RegistrationAgent::deregister`] (or drop, which stops
/// heartbeats without deregistering; the lease then expires).
pub struct RegistrationAgent {
    wire: Arc<Wire>,
    status: Arc<Mutex<AgentStatus>>,
    registered: tokio::sync::watch::Receiver<bool>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RegistrationAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationAgent")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl RegistrationAgent {
    /// Starts registering on the current tokio runtime.
    pub fn start(config: RegistrationConfig) -> Result<Self, crate::ClientBuildError> {
        let http = crate::registry_http_client(config.connect_timeout())?;
        Ok(Self::with_http(config, http))
    }

    pub fn with_http(config: RegistrationConfig, http: reqwest::Client) -> Self {
        let status = Arc::new(Mutex::new(AgentStatus::default()));
        let (registered_tx, registered) = tokio::sync::watch::channel(false);
        let backoff = Backoff {
            base: config.retry_base,
            max: config.instance.renewal_interval,
            max_retries: u32::MAX,
        };
        let interval = config.instance.renewal_interval;
        let wire = Arc::new(Wire::new(config, http));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (wire, status, stop) = (wire.clone(), status.clone(), stop.clone());
            async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = keep_registered(&wire, &status, &registered_tx, backoff, interval) => {}
                }
            }
        });
        Self {
            wire,
            status,
            registered,
            stop,
            task: Some(task),
        }
    }

    pub fn status(&self) -> AgentStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once the first registration succeeded.
    pub async fn registered(&self) {
        let mut rx = self.registered.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Stops heartbeats, re-registers with status DOWN (what Spring Cloud does first, so
    /// watchers stop routing here at once), then cancels the lease.
    pub async fn deregister(mut self) -> Result<(), RegistrationError> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.wire.register(InstanceStatus::Down).await?;
        self.wire.cancel().await?;
        tracing::info!(app = %self.wire.app(), instance = %self.wire.id(), "deregistered");
        Ok(())
    }
}

impl Drop for RegistrationAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn keep_registered(
    wire: &Wire,
    status: &Mutex<AgentStatus>,
    registered: &tokio::sync::watch::Sender<bool>,
    backoff: Backoff,
    interval: Duration,
) {
    let update = |f: &dyn Fn(&mut AgentStatus)| {
        f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
    };
    let mut need_register = true;
    let mut failed_registrations = 0u32;
    loop {
        let pause = if need_register {
            match wire.register(InstanceStatus::Up).await {
                Ok(node) => {
                    need_register = false;
                    failed_registrations = 0;
                    registered.send_if_modified(|r| !std::mem::replace(r, true));
                    update(&|s| {
                        s.registered = true;
                        s.registrations += 1;
                        s.registry = node.clone();
                    });
                    tracing::info!(app = %wire.app(), instance = %wire.id(), registry = %node, "registered");
                    interval
                }
                Err(e) => {
                    tracing::warn!(app = %wire.app(), error = %e, "registration failed; retrying");
                    update(&|s| {
                        s.registered = false;
                        s.failures += 1;
                    });
                    failed_registrations += 1;
                    backoff.delay(failed_registrations.min(16) - 1)
                }
            }
        } else {
            match wire.heartbeat().await {
                Ok((Heartbeat::Renewed, node)) => {
                    update(&|s| {
                        s.heartbeats += 1;
                        s.registry = node.clone();
                    });
                    interval
                }
                Ok((Heartbeat::NotFound, node)) => {
                    tracing::info!(registry = %node, instance = %wire.id(), "heartbeat got 404; re-registering");
                    need_register = true;
                    continue;
                }
                Err(e) => {
                    // The lease outlives several missed renewals; keep the rhythm.
                    tracing::warn!(app = %wire.app(), error = %e, "heartbeat failed on every registry node");
                    update(&|s| s.failures += 1);
                    interval
                }
            }
        };
        tokio::time::sleep(pause).await;
    }
}
