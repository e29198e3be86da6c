//! Tower layers over the primitives, shared by the gateway and the SDK client stack.
//!
//! Errors are boxed (tower's convention) and carry the primitive's error type, so callers can
//! `err.downcast_ref::<ShortCircuited>()` and the breaker can tell timeouts and rejections apart.
//! Rejecting layers fail fast in `call` instead of exerting backpressure in `poll_ready`: under overload
//! a quick error (and a fallback) beats a queue.

mod adaptive;
mod admit;
mod breaker;
mod command;
mod retry;
mod timeout;

pub use adaptive::{AdaptiveFuture, AdaptiveLimitLayer, AdaptiveLimitService};
pub use admit::{AdmitFuture, BulkheadLayer, BulkheadService, RateLimitLayer, RateLimitService};
pub use breaker::{BreakerFuture, BreakerLayer, BreakerService, Classify, ErrorsAreFailures};
pub use command::{
    BoxFallback, BoxFuture, CommandFuture, CommandLayer, CommandService, IntoBoxError,
    MaybeFallback, NoFallbacks, RequestFallback,
};
pub use retry::BudgetedRetry;
pub use timeout::{TimeoutFuture, TimeoutLayer, TimeoutService};

/// Error type of every layer here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
