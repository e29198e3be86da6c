//! GCRA rate limiter (generic cell rate algorithm): one atomic "theoretical arrival time", no refill task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::RateLimited;

/// Admits `rate` calls per `period` on average, with bursts of up to `burst` calls.
#[derive(Debug)]
pub struct RateLimiter {
    /// Theoretical arrival time of the next call, in nanoseconds since the clock's origin.
    tat: AtomicU64,
    emission: u64,
    tolerance: u64,
}

impl RateLimiter {
    /// `rate` calls per `period` (rate 0 is treated as 1), bursts of `burst` (at least 1).
    pub fn new(rate: u32, period: Duration, burst: u32) -> Self {
        crate::clock::warm();
        let emission = (period.as_nanos() / u128::from(rate.max(1))).max(1) as u64;
        RateLimiter {
            tat: AtomicU64::new(0),
            emission,
            tolerance: emission * u64::from(burst.max(1) - 1),
        }
    }

    /// `rate` calls per second with bursts of `rate`.
    pub fn per_second(rate: u32) -> Self {
        Self::new(rate, Duration::from_secs(1), rate)
    }

    /// Takes one cell, or says how long until one is free.
    #[inline]
    pub fn try_acquire(&self) -> Result<(), RateLimited> {
        let now = crate::clock::now();
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                return Err(RateLimited {
                    retry_after: Duration::from_nanos(start - now - self.tolerance),
                });
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + self.emission,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => tat = seen,
            }
        }
    }
}
