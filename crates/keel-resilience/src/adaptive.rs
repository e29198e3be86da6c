//! Adaptive concurrency limit (AIMD, Netflix concurrency-limits defaults) with a readable live limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::LimitExceeded;

/// AIMD settings; `Default` gives Netflix `AIMDLimit`'s defaults.
#[derive(Debug, Clone, Copy)]
pub struct AimdConfig {
    /// Starting limit.
    pub initial: usize,
    /// Floor.
    pub min: usize,
    /// Ceiling.
    pub max: usize,
    /// Multiplier on a drop (timeout, overload error or RTT above `timeout`).
    pub backoff_ratio: f64,
    /// An RTT above this counts as a drop.
    pub timeout: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        AimdConfig {
            initial: 20,
            min: 20,
            max: 200,
            backoff_ratio: 0.9,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Concurrency limit that grows by one while busy and healthy, and shrinks multiplicatively on drops.
#[derive(Debug)]
pub struct AdaptiveLimit {
    config: AimdConfig,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
}

/// One admitted call. Report with [`success`](LimitToken::success) or [`dropped`](LimitToken::dropped);
/// dropping it unreported (cancelled call) frees the slot without a sample.
#[derive(Debug)]
#[must_use = "report the outcome so the limit can adapt"]
pub struct LimitToken {
    limit: Arc<AdaptiveLimit>,
    start: u64,
    in_flight: usize,
    done: bool,
}

impl AdaptiveLimit {
    /// A limit starting at `config.initial`.
    pub fn new(config: AimdConfig) -> Self {
        crate::clock::warm();
        AdaptiveLimit {
            limit: AtomicUsize::new(config.initial.clamp(config.min.max(1), config.max.max(1))),
            in_flight: AtomicUsize::new(0),
            config,
        }
    }

    /// The live limit.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Admits one call if under the limit.
    #[inline]
    pub fn try_acquire(self: &Arc<Self>) -> Result<LimitToken, LimitExceeded> {
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let limit = self.limit();
        if n > limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(LimitExceeded { limit });
        }
        Ok(LimitToken {
            limit: Arc::clone(self),
            start: crate::clock::now(),
            in_flight: n,
            done: false,
        })
    }

    fn sample(&self, rtt: Duration, in_flight: usize, dropped: bool) {
        let c = &self.config;
        let _ = self
            .limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |limit| {
                let next = if dropped || rtt > c.timeout {
                    ((limit as f64 * c.backoff_ratio) as usize).max(c.min.max(1))
                } else if in_flight * 2 >= limit {
                    // Only grow when the limit is actually being used (app-limited otherwise).
                    (limit + 1).min(c.max.max(1))
                } else {
                    limit
                };
                (next != limit).then_some(next)
            });
    }
}

impl LimitToken {
    /// The call succeeded; its RTT feeds the limit.
    pub fn success(mut self) {
        self.finish(false);
    }

    /// The call was dropped by overload (timeout, 503, rejection): back off.
    pub fn dropped(mut self) {
        self.finish(true);
    }

    /// Restarts the RTT clock: the caller paused before its next try (a retry's backoff), which
    /// says nothing about the service's latency.
    pub fn restart(&mut self) {
        self.start = crate::clock::now();
    }

    fn finish(&mut self, dropped: bool) {
        let rtt = Duration::from_nanos(crate::clock::now().saturating_sub(self.start));
        self.limit.sample(rtt, self.in_flight, dropped);
        self.done = true;
        self.limit.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for LimitToken {
    fn drop(&mut self) {
        if !self.done {
            self.limit.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
