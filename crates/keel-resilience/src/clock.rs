//! Monotonic ticks from `tokio::time` (pausable in tests) and an injectable wall clock for emitted timestamps.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A monotonic origin; times are kept as nanoseconds since it so they fit in atomics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin(Instant);

impl Origin {
    pub(crate) fn now() -> Self {
        Origin(Instant::now())
    }

    /// Nanoseconds elapsed since the origin, via `tokio::time` so a paused clock is honoured.
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        Self::nanos_at(self, Instant::now())
    }

    #[inline]
    pub(crate) fn nanos_at(&self, at: Instant) -> u64 {
        // u64 nanoseconds cover 584 years of uptime.
        at.saturating_duration_since(self.0).as_nanos() as u64
    }

    pub(crate) fn instant(&self, nanos: u64) -> Instant {
        self.0 + Duration::from_nanos(nanos)
    }
}

/// Milliseconds since the Unix epoch, for `currentTime` fields. Injected so tests and replays can pin it.
#[derive(Clone)]
pub struct WallClock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl WallClock {
    /// The system clock.
    pub fn system() -> Self {
        WallClock(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        }))
    }

    /// A clock that calls `f` for every reading.
    pub fn from_fn(f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        WallClock(Arc::new(f))
    }

    /// Current time in epoch milliseconds.
    pub fn now_millis(&self) -> u64 {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::system()
    }
}

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WallClock")
    }
}
