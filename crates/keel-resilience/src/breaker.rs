//! Circuit breaker with Hystrix semantics and defaults, lock-free on the permit path.
//!
//! Differences from Hystrix 1.5, on purpose:
//! - Health is evaluated from the rolling buckets on every recorded outcome (a success can complete the
//!   request volume), not from a health snapshot refreshed every 500 ms
//!   (`metrics.healthSnapshot.intervalInMilliseconds`). The breaker therefore trips on exactly the call
//!   that crosses the threshold and never admits a burst of calls against a stale snapshot.
//! - Optional slow-call rate (resilience4j's `slowCallRateThreshold`) and an optional count-based window.
//! - A trial permit dropped without a verdict (cancelled, or a bad request) frees the half-open slot for
//!   the next caller instead of leaving the breaker stuck half-open (resilience4j#903).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::clock::Stamp;
use crate::error::ShortCircuited;
use crate::event::{Event, Outcome};
use crate::window::{CountWindow, RollingCounts};

/// Breaker settings; `Default` gives Hystrix's defaults.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// `circuitBreaker.enabled`: when false the breaker always admits (metrics are still kept).
    pub enabled: bool,
    /// `circuitBreaker.requestVolumeThreshold`: calls in the window before health can trip it.
    pub request_volume_threshold: u32,
    /// `circuitBreaker.errorThresholdPercentage`: trips when `errors * 100 / total >= this`.
    pub error_threshold_percentage: u32,
    /// `circuitBreaker.sleepWindowInMilliseconds`: time open before one trial call is let through.
    pub sleep_window: Duration,
    /// `metrics.rollingStats.timeInMilliseconds`.
    pub rolling_window: Duration,
    /// `metrics.rollingStats.numBuckets`.
    pub rolling_buckets: usize,
    /// Judge health on the last N calls instead of the time window (counts are still kept per time bucket).
    pub count_window: Option<usize>,
    /// Also trip on the share of slow calls.
    pub slow_call: Option<SlowCallConfig>,
    /// `circuitBreaker.forceOpen`.
    pub force_open: bool,
    /// `circuitBreaker.forceClosed`.
    pub force_closed: bool,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            request_volume_threshold: 20,
            error_threshold_percentage: 50,
            sleep_window: Duration::from_secs(5),
            rolling_window: Duration::from_secs(10),
            rolling_buckets: 10,
            count_window: None,
            slow_call: None,
            force_open: false,
            force_closed: false,
        }
    }
}

/// Slow-call tripping, after resilience4j.
#[derive(Debug, Clone, Copy)]
pub struct SlowCallConfig {
    /// A call is slow when it takes longer than this.
    pub duration: Duration,
    /// Trips when `slow * 100 / total >= this`.
    pub rate_threshold_percentage: u32,
}

/// Breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are short-circuited until the sleep window passes.
    Open,
    /// One trial call decides between closed and open.
    HalfOpen,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            CLOSED => State::Closed,
            OPEN => State::Open,
            _ => State::HalfOpen,
        }
    }

    /// Gauge value for metrics: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// `Permit::start` of a permit taken without reading the clock.
const UNTIMED: u64 = u64::MAX;

const NOT_FORCED: u8 = 0;
const FORCED_OPEN: u8 = 1;
const FORCED_CLOSED: u8 = 2;

/// A state change, broadcast to every [`CircuitBreaker::subscribe`]r.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// When (on the `tokio::time` clock).
    pub at: Instant,
}

/// Health over the breaker's window, as Hystrix's `HealthCounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// Calls that count towards health (success, failure, timeout, rejections).
    pub total: u64,
    /// Of which errors.
    pub errors: u64,
    /// Of which slow.
    pub slow: u64,
}

impl Health {
    /// `errors * 100 / total`, truncated like Hystrix's `(int)` cast.
    pub fn error_percentage(&self) -> u64 {
        (self.errors * 100).checked_div(self.total).unwrap_or(0)
    }
}

/// Admission to run one call; hand it back with [`CircuitBreaker::record`] or [`CircuitBreaker::cancel`].
#[derive(Debug)]
#[must_use = "a permit must be recorded or cancelled"]
pub struct Permit {
    trial: bool,
    start: u64,
}

impl Permit {
    /// Whether this is the half-open trial call.
    pub fn is_trial(&self) -> bool {
        self.trial
    }
}

/// A circuit breaker. Share it behind an `Arc`; every method takes `&self`.
// Aligned past a cache line (two, for adjacent-line prefetch) so that an `Arc`'s reference counts,
// written by every call's guard, do not share a line with the fields every call reads.
#[derive(Debug)]
#[repr(align(128))]
pub struct CircuitBreaker {
    config: BreakerConfig,
    /// Width of one rolling bucket.
    bucket: Duration,
    state: AtomicU8,
    /// Cleared only while half-open with no trial in flight.
    trial_taken: AtomicBool,
    opened_at: AtomicU64,
    /// When the last error (or slow call) was recorded, plus one (0 = never): lets a success skip the
    /// health sum when no error can be in the window.
    last_error: AtomicU64,
    forced: AtomicU8,
    /// Without an error or slow call in the time window the rates are zero, so nothing can trip
    /// (not with a zero threshold, nor with a count window whose last N calls may reach further back
    /// than the time window): lets the healthy case skip summing the buckets.
    plain: bool,
    counts: RollingCounts<{ Event::COUNT }>,
    count_window: Option<CountWindow>,
    events: broadcast::Sender<Transition>,
}

const HEALTH_KINDS: [usize; 6] = [
    Event::Success.index(),
    Event::Failure.index(),
    Event::Timeout.index(),
    Event::ThreadPoolRejected.index(),
    Event::SemaphoreRejected.index(),
    Event::Slow.index(),
];

impl CircuitBreaker {
    /// A closed breaker. Must be created inside a tokio context only if the clock is paused; otherwise anywhere.
    pub fn new(config: BreakerConfig) -> Self {
        crate::clock::warm();
        let forced = if config.force_open {
            FORCED_OPEN
        } else if config.force_closed {
            FORCED_CLOSED
        } else {
            NOT_FORCED
        };
        // Every call adds to the window: a stripe per core keeps cores from bouncing one bucket's
        // cache line between them.
        let counts = RollingCounts::striped(
            config.rolling_window,
            config.rolling_buckets,
            crate::window::cpu_stripes(),
        );
        CircuitBreaker {
            bucket: Duration::from_nanos(counts.bucket_nanos()),
            counts,
            count_window: config.count_window.map(CountWindow::new),
            state: AtomicU8::new(CLOSED),
            trial_taken: AtomicBool::new(true),
            opened_at: AtomicU64::new(0),
            last_error: AtomicU64::new(0),
            forced: AtomicU8::new(forced),
            plain: config.count_window.is_none()
                && config.error_threshold_percentage > 0
                && config
                    .slow_call
                    .is_none_or(|s| s.rate_threshold_percentage > 0),
            events: broadcast::channel(64).0,
            config,
        }
    }

    /// The settings this breaker was built with (forced flags as at construction).
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Asks to run one call. Short-circuits (and counts it) when open or forced open.
    ///
    /// In the closed state this reads no clock unless slow-call tracking needs the start time.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit, ShortCircuited> {
        self.acquire(self.config.slow_call.is_some(), None)
    }

    /// Like [`try_acquire`](Self::try_acquire), always stamping the start so [`record`](Self::record)
    /// returns the call's duration.
    #[inline]
    pub fn try_acquire_timed(&self) -> Result<Permit, ShortCircuited> {
        self.acquire(true, None)
    }

    /// [`try_acquire_timed`](Self::try_acquire_timed) with the clock already read (`now` on the
    /// clock's origin).
    #[inline]
    pub(crate) fn try_acquire_at(&self, now: u64) -> Result<Permit, ShortCircuited> {
        self.acquire(true, Some(now))
    }

    #[inline]
    fn acquire(&self, timed: bool, now: Option<u64>) -> Result<Permit, ShortCircuited> {
        let read = || now.unwrap_or_else(crate::clock::now);
        let stamp = || if timed { read() } else { UNTIMED };
        match self.forced.load(Ordering::Relaxed) {
            FORCED_OPEN => return Err(self.short_circuit(read())),
            FORCED_CLOSED => {
                return Ok(Permit {
                    trial: false,
                    start: stamp(),
                });
            }
            _ => {}
        }
        if !self.config.enabled {
            return Ok(Permit {
                trial: false,
                start: stamp(),
            });
        }
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(Permit {
                trial: false,
                start: stamp(),
            }),
            OPEN => {
                let now = read();
                let opened = self.opened_at.load(Ordering::Acquire);
                let wake = opened.saturating_add(self.config.sleep_window.as_nanos() as u64);
                if now >= wake
                    && self
                        .state
                        .compare_exchange(OPEN, HALF_OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    // `trial_taken` is still set from the closed/open states: the CAS winner owns the trial.
                    self.emit(State::Open, State::HalfOpen, now);
                    Ok(Permit {
                        trial: true,
                        start: now,
                    })
                } else {
                    Err(self.short_circuit(now))
                }
            }
            _ => {
                let now = read();
                if self
                    .trial_taken
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    Ok(Permit {
                        trial: true,
                        start: now,
                    })
                } else {
                    Err(self.short_circuit(now))
                }
            }
        }
    }

    fn short_circuit(&self, now: u64) -> ShortCircuited {
        self.counts.add(Event::ShortCircuited.index(), 1, now);
        ShortCircuited
    }

    /// Records how the permitted call ended and moves the state machine. Returns the call's duration when
    /// the permit was stamped (see [`try_acquire_timed`](Self::try_acquire_timed)).
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome) -> Option<Duration> {
        self.record_at(permit, outcome, crate::clock::now())
    }

    /// The start of a call that a timeout below read (see [`Listen`](crate::clock::Listen)), as a hint
    /// for [`record_hinted`](Self::record_hinted); `None` unless the call's limit is at most one bucket.
    #[inline]
    pub(crate) fn start_hint(&self, start: Option<Stamp>) -> Option<u64> {
        start.filter(|s| s.limit <= self.bucket).map(|s| s.at)
    }

    /// [`record`](Self::record) that may count a success at `hint`, the call's start: the call was
    /// bounded by a limit no longer than one bucket, so this is at most one bucket early (the window's
    /// own resolution), and saves reading the clock again. Errors, trials and timed permits always read
    /// the clock: they move the state machine or need the duration.
    #[inline]
    pub(crate) fn record_hinted(
        &self,
        permit: Permit,
        outcome: Outcome,
        hint: Option<u64>,
    ) -> Option<Duration> {
        let now = match hint {
            Some(at) if !permit.trial && permit.start == UNTIMED && !outcome.is_error() => at,
            _ => crate::clock::now(),
        };
        self.record_at(permit, outcome, now)
    }

    /// [`record`](Self::record) with the clock already read (`now` on the clock's origin).
    #[inline]
    pub(crate) fn record_at(&self, permit: Permit, outcome: Outcome, now: u64) -> Option<Duration> {
        // The common case: a success with no error in the window, which cannot trip (see
        // `should_trip`) and needs nothing but its count.
        if outcome == Outcome::Success
            && self.plain
            && !permit.trial
            && permit.start == UNTIMED
            && self.no_error_within(now)
        {
            self.counts.add(Event::Success.index(), 1, now);
            return None;
        }
        let elapsed = (permit.start != UNTIMED).then(|| now.saturating_sub(permit.start));
        let slow = outcome != Outcome::BadRequest
            && self
                .config
                .slow_call
                .is_some_and(|s| elapsed.is_some_and(|e| e > s.duration.as_nanos() as u64));
        self.counts.add(outcome.event().index(), 1, now);
        if slow {
            self.counts.add(Event::Slow.index(), 1, now);
        }
        if outcome.is_error() || slow {
            self.last_error.store(now + 1, Ordering::Relaxed);
        }
        if let (Some(cw), false) = (&self.count_window, outcome == Outcome::BadRequest) {
            cw.record(outcome.is_error(), slow);
        }
        if permit.trial {
            match outcome {
                Outcome::BadRequest => self.trial_taken.store(false, Ordering::Release),
                o if o.is_error() || slow => self.reopen(now),
                _ => self.close(now),
            }
        } else if self.config.enabled
            && self.forced.load(Ordering::Relaxed) == NOT_FORCED
            && self.state.load(Ordering::Acquire) == CLOSED
            && self.should_trip(now)
        {
            self.opened_at.store(now, Ordering::Release);
            if self
                .state
                .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.emit(State::Closed, State::Open, now);
            }
        }
        elapsed.map(Duration::from_nanos)
    }

    /// Gives a permit back without a verdict (the call was cancelled); a trial slot is freed for the next caller.
    pub fn cancel(&self, permit: Permit) {
        if permit.trial {
            self.trial_taken.store(false, Ordering::Release);
        }
    }

    fn reopen(&self, now: u64) {
        self.opened_at.store(now, Ordering::Release);
        self.trial_taken.store(true, Ordering::Release);
        if self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.emit(State::HalfOpen, State::Open, now);
        }
    }

    fn close(&self, now: u64) {
        // Hystrix resets its rolling counts on close so the failures that opened it cannot re-trip it at once.
        self.counts.reset();
        if let Some(cw) = &self.count_window {
            cw.reset();
        }
        self.trial_taken.store(true, Ordering::Release);
        if self
            .state
            .compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.emit(State::HalfOpen, State::Closed, now);
        }
    }

    #[inline]
    fn should_trip(&self, now: u64) -> bool {
        // The healthy case: no rate can reach its threshold (see `plain`).
        if self.plain && self.no_error_within(now) {
            return false;
        }
        let h = self.health_at(now);
        if h.total < u64::from(self.config.request_volume_threshold) || h.total == 0 {
            return false;
        }
        h.errors * 100 / h.total >= u64::from(self.config.error_threshold_percentage)
            || self
                .config
                .slow_call
                .is_some_and(|s| h.slow * 100 / h.total >= u64::from(s.rate_threshold_percentage))
    }

    /// Whether no error or slow call was recorded within the time window ending at `now`.
    #[inline]
    fn no_error_within(&self, now: u64) -> bool {
        let last_error = self.last_error.load(Ordering::Relaxed);
        last_error == 0 || now.saturating_sub(last_error - 1) > self.counts.window_nanos()
    }

    fn health_at(&self, now: u64) -> Health {
        if let Some(cw) = &self.count_window {
            let t = cw.totals();
            return Health {
                total: t.calls.into(),
                errors: t.errors.into(),
                slow: t.slow.into(),
            };
        }
        let [ok, failure, timeout, pool, sem, slow] = self.counts.sum_of(HEALTH_KINDS, now);
        let errors = failure + timeout + pool + sem;
        Health {
            total: ok + errors,
            errors,
            slow,
        }
    }

    fn emit(&self, from: State, to: State, now: u64) {
        tracing::debug!(?from, ?to, "circuit breaker transition");
        // No subscribers is fine: events are for whoever listens.
        let _ = self.events.send(Transition {
            from,
            to,
            at: crate::clock::instant(now),
        });
    }

    /// Current state (forced states are reported as open/closed).
    pub fn state(&self) -> State {
        match self.forced.load(Ordering::Relaxed) {
            FORCED_OPEN => State::Open,
            FORCED_CLOSED => State::Closed,
            _ => State::from_u8(self.state.load(Ordering::Acquire)),
        }
    }

    /// Health over the window now.
    pub fn health(&self) -> Health {
        self.health_at(crate::clock::now())
    }

    /// Every state transition from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.events.subscribe()
    }

    /// Forces the breaker open (`true`) or releases the force.
    pub fn force_open(&self, on: bool) {
        self.set_forced(FORCED_OPEN, on);
    }

    /// Forces the breaker closed (`true`) or releases the force.
    pub fn force_closed(&self, on: bool) {
        self.set_forced(FORCED_CLOSED, on);
    }

    fn set_forced(&self, which: u8, on: bool) {
        if on {
            self.forced.store(which, Ordering::Relaxed);
        } else {
            let _ = self.forced.compare_exchange(
                which,
                NOT_FORCED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether forced open / forced closed right now.
    pub fn forced(&self) -> (bool, bool) {
        let f = self.forced.load(Ordering::Relaxed);
        (f == FORCED_OPEN, f == FORCED_CLOSED)
    }

    /// Counts an event that is not a breaker outcome (fallback results, exceptions thrown).
    #[inline]
    pub fn count(&self, event: Event) {
        self.counts.add(event.index(), 1, crate::clock::now());
    }

    /// Rolling count of every event kind, indexed by [`Event::index`].
    pub fn rolling_counts(&self) -> [u64; Event::COUNT] {
        self.counts.sum(crate::clock::now())
    }

    pub(crate) fn observe_concurrency_at(&self, n: u32, now: u64) {
        self.counts.observe_peak(n, now);
    }

    pub(crate) fn peak_concurrency(&self) -> u32 {
        self.counts.peak(crate::clock::now())
    }
}
