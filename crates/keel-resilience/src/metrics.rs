//! Point-in-time numbers per command key, shared by the Prometheus collector and the Hystrix stream.

use crate::breaker::{Health, State};
use crate::command::Command;
use crate::event::Event;
use crate::histogram::LatencySnapshot;

/// Everything observable about one command key at one instant.
#[derive(Debug, Clone)]
pub struct CommandSnapshot {
    /// Command key.
    pub key: String,
    /// Group key.
    pub group: String,
    /// Pool used for blocking calls.
    pub pool: String,
    /// Rolling count per event kind, indexed by [`Event::index`].
    pub counts: [u64; Event::COUNT],
    /// Breaker health over its window.
    pub health: Health,
    /// Breaker state.
    pub state: State,
    /// Executions in flight.
    pub concurrent: u64,
    /// Most executions in flight at once in the rolling window.
    pub rolling_max_concurrent: u64,
    /// Latency of `run` alone.
    pub latency_execute: LatencySnapshot,
    /// Latency seen by the caller, fallback included.
    pub latency_total: LatencySnapshot,
    /// Whether blocking work ran on the pool (THREAD isolation).
    pub thread_isolated: bool,
}

impl CommandSnapshot {
    /// Rolling count of one event kind.
    pub fn count(&self, e: Event) -> u64 {
        self.counts[e.index()]
    }
}

impl Command {
    /// Snapshot of this command's numbers now.
    pub fn snapshot(&self) -> CommandSnapshot {
        let i = &*self.inner;
        let now = crate::clock::now();
        CommandSnapshot {
            key: i.key.to_string(),
            group: i.group.clone(),
            pool: i.pool.name().to_owned(),
            counts: i.breaker.rolling_counts(),
            health: i.breaker.health(),
            state: i.breaker.state(),
            concurrent: i.bulkhead.in_flight() as u64,
            rolling_max_concurrent: u64::from(i.breaker.peak_concurrency()),
            latency_execute: i.latency_execute.snapshot(now),
            latency_total: i.latency_total.snapshot(now),
            thread_isolated: self.uses_pool(),
        }
    }
}

/// Metric names, defined once.
pub mod names {
    /// Rolling event counts per command and event kind (gauge: the window slides).
    pub const COMMAND_ROLLING_EVENTS: &str = "keel_command_rolling_events";
    /// Breaker state: 0 closed, 1 open, 2 half-open.
    pub const COMMAND_BREAKER_STATE: &str = "keel_command_circuit_breaker_state";
    /// Error percentage over the breaker window.
    pub const COMMAND_ERROR_PERCENTAGE: &str = "keel_command_error_percentage";
    /// Executions in flight.
    pub const COMMAND_CONCURRENT: &str = "keel_command_concurrent_executions";
    /// Execution latency percentiles (seconds), label `quantile`.
    pub const COMMAND_LATENCY_EXECUTE: &str = "keel_command_latency_execute_seconds";
    /// Total latency percentiles (seconds), label `quantile`.
    pub const COMMAND_LATENCY_TOTAL: &str = "keel_command_latency_total_seconds";
    /// Pool tasks running.
    pub const POOL_ACTIVE: &str = "keel_thread_pool_active_tasks";
    /// Pool tasks queued.
    pub const POOL_QUEUED: &str = "keel_thread_pool_queued_tasks";
    /// Pool tasks completed since start.
    pub const POOL_COMPLETED: &str = "keel_thread_pool_completed_tasks";
    /// Pool rejections in the rolling window.
    pub const POOL_ROLLING_REJECTED: &str = "keel_thread_pool_rolling_rejected";
}
