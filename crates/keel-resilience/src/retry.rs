//! Retries with exponential backoff and full jitter, bounded by a retry budget (Finagle: 20 % + 10/s over 10 s).

use std::future::Future;
use std::time::Duration;

use crate::window::RollingCounts;

/// Exponential backoff with full jitter: attempt `n` sleeps uniformly in `[0, min(max, base * 2^n)]`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First ceiling.
    pub base: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
            max_retries: 2,
        }
    }
}

impl Backoff {
    /// The sleep before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max);
        let nanos = ceiling.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

const DEPOSITS: usize = 0;
const WITHDRAWALS: usize = 1;

/// Caps retries to `ratio` of recent calls plus `min_per_sec` per second, over a rolling window.
///
/// The check and the withdrawal are two atomics, so racing callers can overshoot by a retry or two; a budget
/// is a guard against retry storms, not an exact quota.
#[derive(Debug)]
pub struct RetryBudget {
    window: RollingCounts<2>,
    reserve: u64,
    ratio_per_mille: u64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl RetryBudget {
    /// Budget over `ttl` (10 slots) allowing `min_per_sec` retries per second plus `ratio` of calls.
    pub fn new(ttl: Duration, min_per_sec: u32, ratio: f32) -> Self {
        RetryBudget {
            window: RollingCounts::new(ttl, 10),
            reserve: u64::from(min_per_sec) * ttl.as_secs().max(1),
            ratio_per_mille: (f64::from(ratio.max(0.0)) * 1000.0) as u64,
        }
    }

    /// Records an original (non-retry) call.
    #[inline]
    pub fn deposit(&self) {
        self.window.add(DEPOSITS, 1, crate::clock::now());
    }

    /// Takes one retry from the budget if any is left.
    pub fn try_withdraw(&self) -> bool {
        let now = crate::clock::now();
        let [deposits, withdrawals] = self.window.sum(now);
        if withdrawals >= self.reserve + deposits * self.ratio_per_mille / 1000 {
            return false;
        }
        self.window.add(WITHDRAWALS, 1, now);
        true
    }

    /// `(calls, retries)` in the window.
    pub fn usage(&self) -> (u64, u64) {
        let [d, w] = self.window.sum(crate::clock::now());
        (d, w)
    }
}

/// Runs `op` and retries errors that `retryable` accepts, sleeping per `backoff`, while `budget` allows.
pub async fn retry<T, E, Fut>(
    budget: &RetryBudget,
    backoff: &Backoff,
    retryable: impl Fn(&E) -> bool,
    mut op: impl FnMut(u32) -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    budget.deposit();
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Err(e) if attempt < backoff.max_retries && retryable(&e) && budget.try_withdraw() => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
