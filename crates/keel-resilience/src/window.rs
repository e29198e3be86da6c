//! Lock-free rolling windows: time buckets of atomic counters (Hystrix's rolling number) and a count-based ring.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

// Counters are 64-bit so a bucket can also hold sums (latency in microseconds) without overflow.
use std::time::Duration;

/// Marks a bucket whose counters are being zeroed for a new epoch.
const RESETTING: u64 = u64::MAX;

/// Exact division by a divisor fixed at construction, by multiplication: a hardware `div` is a large
/// share of recording one event.
#[derive(Debug, Clone, Copy)]
struct Divisor {
    d: u64,
    /// `floor((2^64 - 1) / d)`: the quotient estimate is at most two below the true one.
    m: u64,
}

impl Divisor {
    fn new(d: u64) -> Self {
        let d = d.max(1);
        Divisor { d, m: u64::MAX / d }
    }

    /// `(x / d, x % d)`.
    #[inline]
    fn div_rem(self, x: u64) -> (u64, u64) {
        let mut q = ((u128::from(x) * u128::from(self.m)) >> 64) as u64;
        // q <= x / d, so this cannot underflow.
        let mut r = x - q * self.d;
        while r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }
}

#[derive(Debug)]
struct Bucket<const K: usize> {
    counts: [AtomicU64; K],
    peak: AtomicU32,
}

/// Bucket epochs (the tick a bucket holds plus one, 0 = never used, or `RESETTING`), kept apart from
/// the counters on lines of their own: every record reads one, and reading it from the line another
/// core just added to would cost a second cache-line transfer per record under contention.
#[derive(Debug)]
#[repr(align(128))]
struct Epochs([AtomicU64; 16]);

/// `K` event counters over a rolling time window split into buckets, like Hystrix's `HystrixRollingNumber`.
///
/// Recording is one atomic add on the current bucket; a bucket is recycled by the first writer of a new
/// tick. Readers sum the buckets whose tick lies inside the window, so the window always covers the
/// current (partial) bucket plus `buckets - 1` full ones.
#[derive(Debug)]
pub struct RollingCounts<const K: usize> {
    buckets: Box<[Bucket<K>]>,
    epochs: Box<[Epochs]>,
    /// Bucket width in nanoseconds.
    width: Divisor,
    len: Divisor,
}

impl<const K: usize> RollingCounts<K> {
    /// A window of `window` split into `buckets` buckets (at least one; the bucket width is at least 1 ns).
    pub fn new(window: Duration, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let bucket_nanos = ((window.as_nanos() / buckets as u128) as u64).max(1);
        let buckets: Box<[Bucket<K>]> = (0..buckets)
            .map(|_| Bucket {
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
                peak: AtomicU32::new(0),
            })
            .collect();
        let len = Divisor::new(buckets.len() as u64);
        let epochs = (0..buckets.len().div_ceil(16))
            .map(|_| Epochs(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        RollingCounts {
            buckets,
            epochs,
            width: Divisor::new(bucket_nanos),
            len,
        }
    }

    /// Length of the whole window.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_nanos())
    }

    /// Width of one bucket in nanoseconds.
    #[inline]
    pub fn bucket_nanos(&self) -> u64 {
        self.width.d
    }

    /// Length of the whole window in nanoseconds.
    #[inline]
    pub fn window_nanos(&self) -> u64 {
        self.width.d * self.len.d
    }

    /// Adds `n` to counter `kind` at time `now` (nanoseconds on the caller's monotonic origin).
    #[inline]
    pub fn add(&self, kind: usize, n: u64, now: u64) {
        self.bucket(now).counts[kind].fetch_add(n, Ordering::Relaxed);
    }

    /// Raises the bucket's peak gauge (e.g. concurrent executions) to at least `value`.
    #[inline]
    pub fn observe_peak(&self, value: u32, now: u64) {
        let b = self.bucket(now);
        if b.peak.load(Ordering::Relaxed) < value {
            b.peak.fetch_max(value, Ordering::Relaxed);
        }
    }

    #[inline]
    fn bucket(&self, now: u64) -> &Bucket<K> {
        let tick = self.tick(now);
        let i = self.len.div_rem(tick).1 as usize;
        let bucket = &self.buckets[i];
        let epoch = self.epoch(i);
        let want = tick + 1;
        loop {
            let seen = epoch.load(Ordering::Acquire);
            // `seen > want` means a writer with a later clock already recycled it; counting a late sample
            // into the newer bucket is the cheapest harmless choice.
            if seen == want || (seen != RESETTING && seen > want) {
                return bucket;
            }
            if seen == RESETTING {
                std::hint::spin_loop();
                continue;
            }
            if epoch
                .compare_exchange(seen, RESETTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                for c in &bucket.counts {
                    c.store(0, Ordering::Relaxed);
                }
                bucket.peak.store(0, Ordering::Relaxed);
                epoch.store(want, Ordering::Release);
                return bucket;
            }
        }
    }

    #[inline]
    fn tick(&self, now: u64) -> u64 {
        self.width.div_rem(now).0
    }

    #[inline]
    fn epoch(&self, i: usize) -> &AtomicU64 {
        &self.epochs[i / 16].0[i % 16]
    }

    /// The buckets whose tick lies in the window ending at `tick`.
    fn live(&self, tick: u64) -> impl Iterator<Item = &Bucket<K>> {
        self.buckets
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.is_live(*i, tick))
            .map(|(_, b)| b)
    }

    #[inline]
    fn is_live(&self, i: usize, tick: u64) -> bool {
        let e = self.epoch(i).load(Ordering::Acquire);
        if e == 0 || e == RESETTING {
            return false;
        }
        let t = e - 1;
        t <= tick && t + self.buckets.len() as u64 > tick
    }

    /// Sum of each counter over the window ending at `now`.
    pub fn sum(&self, now: u64) -> [u64; K] {
        let tick = self.tick(now);
        let mut out = [0u64; K];
        for b in self.live(tick) {
            for (o, c) in out.iter_mut().zip(&b.counts) {
                *o += c.load(Ordering::Relaxed);
            }
        }
        out
    }

    /// Sum of the selected counters over the window ending at `now`, without touching the others.
    #[inline]
    pub fn sum_of<const M: usize>(&self, kinds: [usize; M], now: u64) -> [u64; M] {
        let tick = self.tick(now);
        let mut out = [0u64; M];
        for b in self.live(tick) {
            for (o, &k) in out.iter_mut().zip(&kinds) {
                *o += b.counts[k].load(Ordering::Relaxed);
            }
        }
        out
    }

    /// Highest peak gauge seen in the window.
    pub fn peak(&self, now: u64) -> u32 {
        let tick = self.tick(now);
        self.live(tick)
            .map(|b| b.peak.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// Forgets everything (Hystrix resets its counters when a breaker closes).
    pub fn reset(&self) {
        for i in 0..self.buckets.len() {
            self.epoch(i).store(0, Ordering::Release);
        }
    }
}

/// Flags of one outcome in a [`CountWindow`].
pub(crate) const SLOT_PRESENT: u8 = 1;
pub(crate) const SLOT_ERROR: u8 = 2;
pub(crate) const SLOT_SLOW: u8 = 4;

/// The last `size` call outcomes (resilience4j's count-based sliding window), with running totals.
#[derive(Debug)]
pub struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    calls: AtomicU32,
    errors: AtomicU32,
    slow: AtomicU32,
}

/// Totals of a [`CountWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CountTotals {
    /// Outcomes held.
    pub calls: u32,
    /// Of which errors.
    pub errors: u32,
    /// Of which slow.
    pub slow: u32,
}

impl CountWindow {
    /// A window over the last `size` outcomes (at least one).
    pub fn new(size: usize) -> Self {
        CountWindow {
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            calls: AtomicU32::new(0),
            errors: AtomicU32::new(0),
            slow: AtomicU32::new(0),
        }
    }

    /// Records one outcome, evicting the oldest once full.
    #[inline]
    pub fn record(&self, error: bool, slow: bool) {
        let flags =
            SLOT_PRESENT | if error { SLOT_ERROR } else { 0 } | if slow { SLOT_SLOW } else { 0 };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let old = self.slots[i as usize].swap(flags, Ordering::AcqRel);
        self.apply(old, flags);
    }

    fn apply(&self, old: u8, new: u8) {
        for (bit, ctr) in [
            (SLOT_PRESENT, &self.calls),
            (SLOT_ERROR, &self.errors),
            (SLOT_SLOW, &self.slow),
        ] {
            match (old & bit != 0, new & bit != 0) {
                (false, true) => {
                    ctr.fetch_add(1, Ordering::Relaxed);
                }
                (true, false) => {
                    ctr.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }

    /// Current totals.
    pub fn totals(&self) -> CountTotals {
        CountTotals {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything.
    pub fn reset(&self) {
        for s in self.slots.iter() {
            let old = s.swap(0, Ordering::AcqRel);
            self.apply(old, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    #[test]
    fn divisor_is_exact() {
        let mut xs = vec![0, 1, 2, 3, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            xs.push(x);
            xs.push(x >> 20);
        }
        for d in [
            1,
            2,
            3,
            7,
            10,
            1_000_000,
            100_000_000,
            1_000_000_007,
            u64::MAX,
            u64::MAX - 1,
            1 << 32,
        ] {
            let div = Divisor::new(d);
            for &x in &xs {
                assert_eq!(div.div_rem(x), (x / d, x % d), "{x} / {d}");
            }
        }
    }
}
