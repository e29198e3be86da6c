//! The process-wide shutdown sequence that every listener and stream follows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Tunables for [`Shutdown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish once listeners stop accepting.
    /// The default (8 s) stays under Docker's 10 s grace period.
    pub drain_timeout: Duration,
    /// How long readiness reports DOWN while listeners still accept, so that load balancers and
    /// orchestrators stop sending traffic before the port closes. Zero by default.
    pub readiness_delay: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(8),
            readiness_delay: Duration::ZERO,
        }
    }
}

/// Coordinates graceful shutdown, always in this order:
/// 1. readiness turns DOWN;
/// 2. (after `readiness_delay`) listeners stop accepting;
/// 3. streaming responses (watches, SSE) end at once;
/// 4. other requests drain until `drain_timeout`;
/// 5. the process exits 0 (the binary's job once every `serve` returns).
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ShutdownConfig,
    ready: AtomicBool,
    begun: CancellationToken,
    stop_accepting: CancellationToken,
    end_streams: CancellationToken,
}

impl Shutdown {
    pub fn new(config: ShutdownConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                ready: AtomicBool::new(true),
                begun: CancellationToken::new(),
                stop_accepting: CancellationToken::new(),
                end_streams: CancellationToken::new(),
            }),
        }
    }

    pub fn config(&self) -> ShutdownConfig {
        self.inner.config
    }

    /// False from the moment shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Cancelled when streaming responses must end. SSE and watch streams select on it.
    pub fn streams_token(&self) -> CancellationToken {
        self.inner.end_streams.clone()
    }

    /// Resolves once listeners must stop accepting connections.
    pub async fn stopped_accepting(&self) {
        self.inner.stop_accepting.cancelled().await;
    }

    /// A token cancelled when listeners stop accepting: a child of the process's own, so that the
    /// tasks of one worker wait on it without sharing a lock with other workers.
    pub fn stop_accepting_token(&self) -> CancellationToken {
        self.inner.stop_accepting.child_token()
    }

    /// Resolves once shutdown has begun (readiness is DOWN).
    pub async fn begun(&self) {
        self.inner.begun.cancelled().await;
    }

    /// Runs steps 1–3 of the sequence. Calling it twice is harmless.
    pub async fn begin(&self) {
        if self.inner.begun.is_cancelled() {
            return;
        }
        self.inner.ready.store(false, Ordering::Release);
        self.inner.begun.cancel();
        tracing::info!("shutting down: readiness DOWN");
        if !self.inner.config.readiness_delay.is_zero() {
            tokio::time::sleep(self.inner.config.readiness_delay).await;
        }
        tracing::info!("shutting down: listeners closed, draining in-flight requests");
        self.inner.stop_accepting.cancel();
        self.inner.end_streams.cancel();
    }

    /// Waits for SIGTERM or Ctrl-C, then runs [`Shutdown::begin`].
    pub async fn on_signal(&self) {
        wait_for_signal().await;
        self.begin().await;
    }
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops Keel");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn readiness_drops_before_listeners_close() {
        let shutdown = Shutdown::new(ShutdownConfig {
            readiness_delay: Duration::from_secs(3),
            ..ShutdownConfig::default()
        });
        assert!(shutdown.is_ready());
        let s = shutdown.clone();
        let task = tokio::spawn(async move { s.begin().await });
        shutdown.begun().await;
        assert!(!shutdown.is_ready());
        assert!(!shutdown.streams_token().is_cancelled());
        task.await.unwrap();
        assert!(shutdown.streams_token().is_cancelled());
        shutdown.stopped_accepting().await;
    }
}
