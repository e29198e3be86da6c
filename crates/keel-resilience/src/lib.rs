//! Fault-tolerance primitives (breaker, bulkheads, limits, retry budgets), Hystrix-style commands, metrics and tower layers.
//!
//! Primitives are lock-free on the admission path. They read time from the CPU's time-stamp counter
//! (`quanta`; half the cost of `clock_gettime` in a VM, and it does not stall the code around it), or,
//! with the `paused-clock` feature, from `tokio::time`, so that every state machine can be driven
//! deterministically under `tokio::time::pause()` (as tokio needs its `test-util` for that).

pub mod adaptive;
pub mod breaker;
pub mod bulkhead;
mod clock;
pub mod command;
pub mod error;
pub mod event;
pub mod histogram;
pub mod hystrix;
pub mod layer;
pub mod metrics;
pub mod pool;
mod prometheus;
pub mod rate_limit;
pub mod retry;
mod timer;
pub mod window;

pub use adaptive::{AdaptiveLimit, AimdConfig, LimitToken};
pub use breaker::{
    BreakerConfig, CircuitBreaker, Health, Permit, SlowCallConfig, State, Transition,
};
pub use bulkhead::{Bulkhead, BulkheadPermit, OwnedBulkheadPermit};
pub use clock::{WallClock, follows_paused_clock};
pub use command::{
    Cause, CauseKind, Command, CommandConfig, CommandError, CommandKey, CommandRegistry,
};
pub use error::{
    BulkheadFull, LimitExceeded, PoolRejected, RateLimited, ShortCircuited, TaskPanicked, TimedOut,
};
pub use event::{Event, Outcome};
pub use metrics::CommandSnapshot;
pub use pool::{BlockingPool, PoolConfig, PoolSnapshot, PoolTask};
pub use prometheus::register_metrics;
pub use rate_limit::RateLimiter;
pub use retry::{Backoff, RetryBudget, retry};
