//! Rejection errors of the primitives; layers box them so callers can `downcast_ref` the cause.

use std::time::Duration;

/// The breaker is open (or forced open) and the call was not attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open: call short-circuited")]
pub struct ShortCircuited;

/// The semaphore bulkhead has no free permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead full: {max} concurrent calls in flight")]
pub struct BulkheadFull {
    /// The limit that was hit.
    pub max: usize,
}

/// The isolation pool's threads are busy and its queue is full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool {pool} rejected the task: {active} active, queue of {queue} full")]
pub struct PoolRejected {
    /// Pool name.
    pub pool: String,
    /// Tasks running.
    pub active: usize,
    /// Queue capacity.
    pub queue: usize,
}

/// The call took longer than its timeout and was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("call timed out after {0:?}")]
pub struct TimedOut(pub Duration);

/// The rate limiter has no token now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: retry after {retry_after:?}")]
pub struct RateLimited {
    /// Earliest time at which a call would be admitted.
    pub retry_after: Duration,
}

/// The adaptive concurrency limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("adaptive concurrency limit {limit} reached")]
pub struct LimitExceeded {
    /// The live limit at the time of rejection.
    pub limit: usize,
}

/// A blocking task panicked on the isolation pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task on pool {pool} panicked")]
pub struct TaskPanicked {
    /// Pool name.
    pub pool: String,
}
