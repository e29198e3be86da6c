//! The wall clock behind Eureka's epoch-millisecond timestamps, injected so tests can pause it.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where `registrationTimestamp`, `lastUpdatedTimestamp` and friends come from. Deadlines never
/// use it: they run on `tokio::time`, so a paused test clock drives both consistently.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> i64;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A wall clock that starts at a fixed epoch time and advances with `tokio::time`, so under
/// `tokio::time::pause()` it moves exactly as far as the test advances time.
#[derive(Debug)]
pub struct TokioClock {
    base_millis: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base_millis: i64) -> Self {
        Self {
            base_millis,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_millis(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.base_millis.saturating_add(elapsed)
    }
}
