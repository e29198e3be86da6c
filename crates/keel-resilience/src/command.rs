//! Keyed commands in the spirit of `HystrixCommand`: breaker → isolation → timeout → run, fallback on failure.

mod call;
mod queued;
mod registry;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use call::{
    Async, AsyncRun, Blocking, Call, Fallback, NoFallback, PoolRun, Started, WithFallback, Work,
};
pub use queued::Queued;
pub use registry::CommandRegistry;

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::bulkhead::Bulkhead;
use crate::error::{BulkheadFull, PoolRejected, TaskPanicked, TimedOut};
use crate::histogram::RollingHistogram;
use crate::pool::{BlockingPool, PoolConfig};

/// Command name; commands with the same key share breaker, metrics and pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandKey(Arc<str>);

impl CommandKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for CommandKey {
    fn from(s: &str) -> Self {
        CommandKey(s.into())
    }
}

impl fmt::Display for CommandKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Command settings; `Default` gives Hystrix's defaults.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// `HystrixCommandGroupKey`; `None` uses the command key.
    pub group: Option<String>,
    /// `HystrixThreadPoolKey` for blocking calls; `None` uses the group.
    pub thread_pool_key: Option<String>,
    /// `execution.isolation.thread.timeoutInMilliseconds` (1 s); `None` disables the timeout.
    pub timeout: Option<Duration>,
    /// `execution.isolation.semaphore.maxConcurrentRequests` for async calls.
    pub max_concurrent_requests: usize,
    /// Pool for blocking calls (used when this command creates the pool).
    pub pool: PoolConfig,
    /// `fallback.enabled`.
    pub fallback_enabled: bool,
    /// Breaker and rolling statistics.
    pub breaker: BreakerConfig,
    /// `metrics.rollingPercentile.timeInMilliseconds` (60 s).
    pub percentile_window: Duration,
    /// `metrics.rollingPercentile.numBuckets` (6).
    pub percentile_buckets: usize,
}

impl Default for CommandConfig {
    fn default() -> Self {
        CommandConfig {
            group: None,
            thread_pool_key: None,
            timeout: Some(Duration::from_secs(1)),
            max_concurrent_requests: 10,
            pool: PoolConfig::default(),
            fallback_enabled: true,
            breaker: BreakerConfig::default(),
            percentile_window: Duration::from_secs(60),
            percentile_buckets: 6,
        }
    }
}

/// Why the primary path did not produce a value; handed to the fallback.
#[derive(Debug, thiserror::Error)]
pub enum Cause<E> {
    /// `run` returned an error.
    #[error("failed: {0}")]
    Failure(E),
    /// `run` exceeded the timeout and was cancelled.
    #[error(transparent)]
    Timeout(TimedOut),
    /// The breaker is open.
    #[error("short-circuited: circuit breaker open")]
    ShortCircuited,
    /// The semaphore bulkhead is full.
    #[error(transparent)]
    SemaphoreRejected(BulkheadFull),
    /// The pool is full.
    #[error(transparent)]
    ThreadPoolRejected(PoolRejected),
    /// Blocking `run` panicked on the pool.
    #[error(transparent)]
    Panicked(TaskPanicked),
}

impl<E> Cause<E> {
    /// The kind without the payload.
    pub fn kind(&self) -> CauseKind {
        match self {
            Cause::Failure(_) => CauseKind::Failure,
            Cause::Timeout(_) => CauseKind::Timeout,
            Cause::ShortCircuited => CauseKind::ShortCircuited,
            Cause::SemaphoreRejected(_) => CauseKind::SemaphoreRejected,
            Cause::ThreadPoolRejected(_) => CauseKind::ThreadPoolRejected,
            Cause::Panicked(_) => CauseKind::Panicked,
        }
    }
}

/// [`Cause`] without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    /// See [`Cause::Failure`].
    Failure,
    /// See [`Cause::Timeout`].
    Timeout,
    /// See [`Cause::ShortCircuited`].
    ShortCircuited,
    /// See [`Cause::SemaphoreRejected`].
    SemaphoreRejected,
    /// See [`Cause::ThreadPoolRejected`].
    ThreadPoolRejected,
    /// See [`Cause::Panicked`].
    Panicked,
}

/// What a command returns instead of a value.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E> {
    /// The caller's own error: not counted against health, no fallback (`HystrixBadRequestException`).
    #[error("bad request: {0}")]
    BadRequest(E),
    /// The primary path failed and there was no fallback (none given, or fallbacks disabled).
    #[error("command {key}: {cause}")]
    Failed {
        /// Command key.
        key: CommandKey,
        /// What went wrong.
        cause: Cause<E>,
    },
    /// The primary path failed and so did the fallback.
    #[error("command {key}: {cause:?}, and the fallback failed: {fallback}")]
    FallbackFailed {
        /// Command key.
        key: CommandKey,
        /// What the primary path hit.
        cause: CauseKind,
        /// The fallback's error.
        fallback: E,
    },
    /// `execute` could not start its runtime.
    #[error("command runtime unavailable: {0}")]
    Runtime(Arc<std::io::Error>),
}

impl<E> CommandError<E> {
    /// The primary-path cause kind, if the command failed for a reason other than a bad request.
    pub fn cause_kind(&self) -> Option<CauseKind> {
        match self {
            CommandError::Failed { cause, .. } => Some(cause.kind()),
            CommandError::FallbackFailed { cause, .. } => Some(*cause),
            _ => None,
        }
    }
}

pub(crate) struct CommandInner {
    pub(crate) key: CommandKey,
    pub(crate) group: String,
    pub(crate) config: CommandConfig,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) bulkhead: Bulkhead,
    pub(crate) pool: Arc<BlockingPool>,
    pub(crate) latency_execute: RollingHistogram,
    pub(crate) latency_total: RollingHistogram,
    pub(crate) used_pool: AtomicBool,
}

/// A keyed command. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Command {
    pub(crate) inner: Arc<CommandInner>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// A command outside any registry, with its own pool.
    pub fn standalone(key: &str, config: CommandConfig) -> Command {
        let pool_name = config
            .thread_pool_key
            .clone()
            .or_else(|| config.group.clone())
            .unwrap_or_else(|| key.to_owned());
        let pool = Arc::new(BlockingPool::new(pool_name, config.pool.clone()));
        Command::with_pool(key, config, pool)
    }

    pub(crate) fn with_pool(key: &str, config: CommandConfig, pool: Arc<BlockingPool>) -> Command {
        Command {
            inner: Arc::new(CommandInner {
                key: key.into(),
                group: config.group.clone().unwrap_or_else(|| key.to_owned()),
                breaker: CircuitBreaker::new(config.breaker.clone()),
                bulkhead: Bulkhead::new(config.max_concurrent_requests),
                pool,
                latency_execute: RollingHistogram::new(
                    config.percentile_window,
                    config.percentile_buckets,
                ),
                latency_total: RollingHistogram::new(
                    config.percentile_window,
                    config.percentile_buckets,
                ),
                used_pool: AtomicBool::new(false),
                config,
            }),
        }
    }

    /// Command key.
    pub fn key(&self) -> &CommandKey {
        &self.inner.key
    }

    /// Group key.
    pub fn group(&self) -> &str {
        &self.inner.group
    }

    /// Settings.
    pub fn config(&self) -> &CommandConfig {
        &self.inner.config
    }

    /// The shared breaker (subscribe to transitions, force it, read health).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// The semaphore bulkhead used by async calls.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.inner.bulkhead
    }

    /// The pool used by blocking calls.
    pub fn pool(&self) -> &Arc<BlockingPool> {
        &self.inner.pool
    }

    /// Whether this command has run blocking work on its pool (reported as THREAD isolation).
    pub fn uses_pool(&self) -> bool {
        self.inner.used_pool.load(Ordering::Relaxed)
    }

    /// Protects an async `run` (semaphore isolation). Configure with `.bad_request(..)` and `.fallback(..)`,
    /// then `.queue().await` or `.execute()`.
    pub fn call<Fut, T, E>(&self, run: Fut) -> Call<'_, Async<Fut>, fn(&E) -> bool, NoFallback>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        Call::new(self, Async(run))
    }

    /// Protects blocking `run` on the command's bounded pool (thread isolation).
    pub fn call_blocking<F, T, E>(
        &self,
        run: F,
    ) -> Call<'_, Blocking<F>, fn(&E) -> bool, NoFallback>
    where
        F: FnOnce() -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        Call::new(self, Blocking(run))
    }
}
