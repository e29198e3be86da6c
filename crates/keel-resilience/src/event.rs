//! Outcome and event kinds counted per command, named after Hystrix's `HystrixEventType`.

/// One countable event. The discriminant indexes the rolling counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Event {
    /// `run` completed successfully.
    Success = 0,
    /// `run` failed with an error that counts against health.
    Failure,
    /// `run` exceeded its timeout and was cancelled.
    Timeout,
    /// The breaker was open and the call was not attempted.
    ShortCircuited,
    /// The isolation pool (and its queue) was full.
    ThreadPoolRejected,
    /// The semaphore bulkhead was full.
    SemaphoreRejected,
    /// `run` failed with a caller error ("bad request"); never counts against health, never falls back.
    BadRequest,
    /// The fallback produced a value.
    FallbackSuccess,
    /// The fallback failed.
    FallbackFailure,
    /// A fallback was needed but none was given.
    FallbackMissing,
    /// The fallback was rejected (reserved; fallbacks are not separately limited yet).
    FallbackRejection,
    /// The caller received an error (no fallback value).
    ExceptionThrown,
    /// The call took longer than the slow-call threshold (counted in addition to its outcome).
    Slow,
}

impl Event {
    /// Number of event kinds.
    pub const COUNT: usize = 13;

    /// All kinds, in discriminant order.
    pub const ALL: [Event; Event::COUNT] = [
        Event::Success,
        Event::Failure,
        Event::Timeout,
        Event::ShortCircuited,
        Event::ThreadPoolRejected,
        Event::SemaphoreRejected,
        Event::BadRequest,
        Event::FallbackSuccess,
        Event::FallbackFailure,
        Event::FallbackMissing,
        Event::FallbackRejection,
        Event::ExceptionThrown,
        Event::Slow,
    ];

    /// Index into the rolling counters.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Lower-case label for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Success => "success",
            Event::Failure => "failure",
            Event::Timeout => "timeout",
            Event::ShortCircuited => "short_circuited",
            Event::ThreadPoolRejected => "thread_pool_rejected",
            Event::SemaphoreRejected => "semaphore_rejected",
            Event::BadRequest => "bad_request",
            Event::FallbackSuccess => "fallback_success",
            Event::FallbackFailure => "fallback_failure",
            Event::FallbackMissing => "fallback_missing",
            Event::FallbackRejection => "fallback_rejection",
            Event::ExceptionThrown => "exception_thrown",
            Event::Slow => "slow",
        }
    }
}

/// How one protected execution ended, as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counts as healthy.
    Success,
    /// Counts as an error.
    Failure,
    /// Counts as an error.
    Timeout,
    /// Counts as an error (Hystrix counts isolation rejections in health).
    SemaphoreRejected,
    /// Counts as an error.
    ThreadPoolRejected,
    /// Ignored by health: the caller's fault, not the dependency's.
    BadRequest,
}

impl Outcome {
    pub(crate) fn event(self) -> Event {
        match self {
            Outcome::Success => Event::Success,
            Outcome::Failure => Event::Failure,
            Outcome::Timeout => Event::Timeout,
            Outcome::SemaphoreRejected => Event::SemaphoreRejected,
            Outcome::ThreadPoolRejected => Event::ThreadPoolRejected,
            Outcome::BadRequest => Event::BadRequest,
        }
    }

    /// Whether this outcome counts against health.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Success | Outcome::BadRequest)
    }
}
