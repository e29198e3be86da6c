//! Monotonic ticks (from the time-stamp counter, or from `tokio::time` so that tests can pause
//! them), the per-call clock reading shared down a layer stack, and an injectable wall clock for
//! emitted timestamps.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use source::{instant, now};

/// How far before the first reading the origin lies: a runtime with a paused clock started earlier
/// (its clock starts at the real time it was built) still reads after it; counter readings start as
/// far in.
const MARGIN: Duration = Duration::from_secs(24 * 60 * 60);

/// The one monotonic clock of every time kept here, as nanoseconds since an origin (they fit in
/// atomics, and a reading converted once serves every layer of a call: the breaker's window and the
/// timeout's deadline).
///
/// Read from the CPU's time-stamp counter (`quanta`, calibrated against the monotonic clock once per
/// process): about half the cost of the vDSO's `clock_gettime` in a VM, and unfenced, so it does not
/// stall the code around it. Converted to `tokio::time` instants relative to now, only where a tokio
/// timer needs one (the counter's rate may differ from the monotonic clock's by some parts per million).
#[cfg(not(feature = "paused-clock"))]
mod source {
    use std::sync::OnceLock;
    use std::time::Duration;

    use tokio::time::Instant;

    /// [`MARGIN`](super::MARGIN) in nanoseconds.
    const MARGIN: u64 = super::MARGIN.as_nanos() as u64;

    struct Source {
        clock: quanta::Clock,
        /// The raw counter at the origin.
        origin: u64,
    }

    static SOURCE: OnceLock<Source> = OnceLock::new();

    #[inline]
    fn source() -> &'static Source {
        match SOURCE.get() {
            Some(s) => s,
            None => first_source(),
        }
    }

    #[cold]
    #[inline(never)]
    fn first_source() -> &'static Source {
        SOURCE.get_or_init(|| {
            // Calibrates the counter once per process (well under a millisecond).
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            Source { clock, origin }
        })
    }

    /// Nanoseconds on the origin now.
    #[inline]
    pub(crate) fn now() -> u64 {
        let s = source();
        MARGIN + s.clock.delta_as_nanos(s.origin, s.clock.raw())
    }

    /// The tokio instant at `nanos` (on [`now`]'s origin).
    pub(crate) fn instant(nanos: u64) -> Instant {
        let (at, here) = (now(), Instant::now());
        match nanos.checked_sub(at) {
            Some(ahead) => here + Duration::from_nanos(ahead),
            None => here
                .checked_sub(Duration::from_nanos(at - nanos))
                .unwrap_or(here),
        }
    }
}

/// With the `paused-clock` feature, every reading goes through `tokio::time`, so tokio's paused test
/// clock governs timeouts and breaker windows too.
#[cfg(feature = "paused-clock")]
mod source {
    use std::sync::OnceLock;
    use std::time::Duration;

    use tokio::time::Instant;

    use super::MARGIN;

    static ORIGIN: OnceLock<Instant> = OnceLock::new();

    #[inline]
    fn origin() -> Instant {
        match ORIGIN.get() {
            Some(o) => *o,
            None => first_origin(),
        }
    }

    #[cold]
    #[inline(never)]
    fn first_origin() -> Instant {
        *ORIGIN.get_or_init(|| {
            let now = std::time::Instant::now();
            Instant::from_std(now.checked_sub(MARGIN).unwrap_or(now))
        })
    }

    /// Nanoseconds since the origin now, via `tokio::time` so a paused clock is honoured.
    #[inline]
    pub(crate) fn now() -> u64 {
        // u64 nanoseconds cover 584 years of uptime.
        Instant::now()
            .saturating_duration_since(origin())
            .as_nanos() as u64
    }

    /// The instant `nanos` after the origin.
    pub(crate) fn instant(nanos: u64) -> Instant {
        origin() + Duration::from_nanos(nanos)
    }
}

/// Starts the clock now, so that constructors rather than the first call pay for calibrating the
/// counter (once per process: well under a millisecond, but up to 200 ms on a loaded machine).
#[cold]
pub(crate) fn warm() {
    now();
}

/// Whether timeouts and breaker windows follow tokio's paused test clock: built with the
/// `paused-clock` feature. Without it they read the CPU's time-stamp counter, which a paused tokio
/// clock does not stop.
pub fn follows_paused_clock() -> bool {
    cfg!(feature = "paused-clock")
}

/// `limit` after `start` (nanoseconds on the origin); `None` when that cannot be represented, as
/// `tokio::time::timeout` has no deadline for such a limit.
#[inline]
pub(crate) fn deadline(start: u64, limit: Duration) -> Option<u64> {
    u64::try_from(limit.as_nanos())
        .ok()
        .and_then(|l| start.checked_add(l))
}

/// A clock reading taken at the start of a call, with the time limit that bounds the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// Nanoseconds since the origin.
    pub(crate) at: u64,
    pub(crate) limit: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    /// No layer is listening.
    Closed,
    /// A layer above listens; nobody read the clock yet.
    Open,
    /// Read by a timeout below.
    Read(Stamp),
}

thread_local! {
    // `const` and without a destructor: one thread-pointer-relative access, no lazy init.
    static SLOT: Cell<Slot> = const { Cell::new(Slot::Closed) };
}

/// Reading the clock costs about a third of a whole call's overhead (10 ns from the counter here),
/// so one call through breaker → bulkhead → timeout reads it once: a layer that would read it at
/// completion (the breaker's window) listens while its inner service's `call` runs, and a timeout
/// below, which reads it at call time anyway, leaves its reading. The scope is the synchronous `call` only: nothing
/// outlives it, so a reading never leaks into an unrelated call.
#[derive(Debug)]
pub(crate) struct Listen(Option<Slot>);

impl Listen {
    /// Starts listening (nested listeners each get their own reading).
    #[inline]
    pub(crate) fn start() -> Self {
        Listen(Some(SLOT.replace(Slot::Open)))
    }

    /// Stops listening; the reading a timeout below left, if any.
    #[inline]
    pub(crate) fn finish(mut self) -> Option<Stamp> {
        let prev = self.0.take().unwrap_or(Slot::Closed);
        match SLOT.replace(prev) {
            Slot::Read(s) => Some(s),
            _ => None,
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        // Unwinding out of `call`: restore the outer state.
        if let Some(prev) = self.0.take() {
            SLOT.set(prev);
        }
    }
}

/// The time now for a call bounded by `limit`, left for a listening layer above. Reuses a reading
/// taken earlier in the same listened-to `call` (same instant, give or take the synchronous code between).
#[inline]
pub(crate) fn call_start(limit: Duration) -> u64 {
    SLOT.with(|slot| match slot.get() {
        Slot::Closed => now(),
        Slot::Open => {
            let at = now();
            slot.set(Slot::Read(Stamp { at, limit }));
            at
        }
        Slot::Read(s) => {
            // Keep the tighter bound: the listener may only lean on a limit that holds for the whole call.
            slot.set(Slot::Read(Stamp {
                at: s.at,
                limit: s.limit.min(limit),
            }));
            s.at
        }
    })
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
