//! Lock-free rolling windows: time buckets of atomic counters (Hystrix's rolling number) and a count-based ring.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

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

/// Counters of one bucket, for one stripe. Aligned past a cache line (two, for adjacent-line prefetch)
/// so that stripes written by different threads never share one.
#[derive(Debug)]
#[repr(align(128))]
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

/// The next stripe number to hand out to a thread.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and without a destructor: one thread-pointer-relative access; `usize::MAX` = not yet drawn.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// How many stripes per-thread copies of a hot counter get: one per core (a power of two, at least 4
/// so helper threads seldom share with workers, at most 16).
pub(crate) fn cpu_stripes() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get().clamp(4, 16))
            .next_power_of_two()
    })
}

/// This thread's stripe number (take it modulo a power of two): threads are numbered in the order
/// they first ask, so a runtime's workers (started together) land on different stripes.
#[inline]
pub(crate) fn thread_stripe() -> usize {
    STRIPE.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
        s.set(v);
        v
    })
}

/// `K` event counters over a rolling time window split into buckets, like Hystrix's `HystrixRollingNumber`.
///
/// Recording is one atomic add on the current bucket; a bucket is recycled by the first writer of a new
/// tick. Readers sum the buckets whose tick lies inside the window, so the window always covers the
/// current (partial) bucket plus `buckets - 1` full ones.
///
/// A [`striped`](Self::striped) window keeps each bucket's counters once per stripe, and each thread
/// adds to its own stripe (LongAdder-style): threads recording at once do not bounce one cache line
/// between their cores. Reads sum the stripes.
#[derive(Debug)]
pub struct RollingCounts<const K: usize> {
    /// `buckets × stripes`, bucket-major.
    buckets: Box<[Bucket<K>]>,
    /// Stripes per bucket, a power of two.
    stripes: usize,
    epochs: Box<[Epochs]>,
    /// Bucket width in nanoseconds.
    width: Divisor,
    len: Divisor,
    /// The latest tick whose bucket is set up, and that bucket: `tick << 8 | index`, or 0 for none
    /// (tick 0 is never kept here). Spares a record the two divisions and the epoch check while the
    /// tick lasts; written once per tick.
    current: AtomicU64,
}

/// Ticks and bucket indices [`RollingCounts::current`] can hold.
const CURRENT_TICKS: u64 = 1 << 56;
const CURRENT_BUCKETS: usize = 1 << 8;

impl<const K: usize> RollingCounts<K> {
    /// A window of `window` split into `buckets` buckets (at least one; the bucket width is at least 1 ns).
    pub fn new(window: Duration, buckets: usize) -> Self {
        Self::striped(window, buckets, 1)
    }

    /// Like [`new`](Self::new), with `stripes` copies of each bucket's counters (rounded up to a power
    /// of two, at most 64), for counters that many threads add to at once.
    pub fn striped(window: Duration, buckets: usize, stripes: usize) -> Self {
        crate::clock::warm();
        let n = buckets.max(1);
        let stripes = stripes.clamp(1, 64).next_power_of_two();
        let bucket_nanos = ((window.as_nanos() / n as u128) as u64).max(1);
        let buckets: Box<[Bucket<K>]> = (0..n * stripes)
            .map(|_| Bucket {
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
                peak: AtomicU32::new(0),
            })
            .collect();
        let len = Divisor::new(n as u64);
        let epochs = (0..n.div_ceil(16))
            .map(|_| Epochs(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        RollingCounts {
            buckets,
            stripes,
            epochs,
            width: Divisor::new(bucket_nanos),
            len,
            current: AtomicU64::new(0),
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

    /// Adds `n` to counter `kind` at time `now` (nanoseconds on a monotonic origin).
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

    /// This thread's stripe of the bucket for `now`, recycled first if it holds an older tick.
    #[inline]
    fn bucket(&self, now: u64) -> &Bucket<K> {
        let c = self.current.load(Ordering::Relaxed);
        // `c >> 8` is a tick, so that product does not overflow.
        if c != 0 && now.wrapping_sub((c >> 8) * self.width.d) < self.width.d {
            return self.stripe(c as usize % CURRENT_BUCKETS);
        }
        self.bucket_at(now)
    }

    /// This thread's stripe of bucket `i`.
    #[inline]
    fn stripe(&self, i: usize) -> &Bucket<K> {
        let at = if self.stripes == 1 {
            0
        } else {
            thread_stripe() & (self.stripes - 1)
        };
        &self.buckets[i * self.stripes + at]
    }

    /// [`bucket`](Self::bucket) for a tick other than the current one.
    #[cold]
    #[inline(never)]
    fn bucket_at(&self, now: u64) -> &Bucket<K> {
        let tick = self.tick(now);
        let i = self.len.div_rem(tick).1 as usize;
        let bucket = self.stripe(i);
        let epoch = self.epoch(i);
        let want = tick + 1;
        loop {
            let seen = epoch.load(Ordering::Acquire);
            // `seen > want` means a writer with a later clock already recycled it; counting a late sample
            // into the newer bucket is the cheapest harmless choice.
            if seen == want {
                self.set_current(tick, i);
                return bucket;
            }
            if seen != RESETTING && seen > want {
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
                for b in self.stripes_of(i) {
                    for c in &b.counts {
                        c.store(0, Ordering::Relaxed);
                    }
                    b.peak.store(0, Ordering::Relaxed);
                }
                epoch.store(want, Ordering::Release);
                self.set_current(tick, i);
                return bucket;
            }
        }
    }

    /// Makes `tick` (bucket `i`, set up) the current one, unless a later one already is.
    fn set_current(&self, tick: u64, i: usize) {
        if tick >= CURRENT_TICKS || i >= CURRENT_BUCKETS || tick == 0 {
            return;
        }
        let c = tick << 8 | i as u64;
        self.current.fetch_max(c, Ordering::SeqCst);
        // A `reset` since the bucket was seen set up must not leave it current with no epoch (its
        // counts would not be seen): either it clears `current` after this, or this sees its epoch.
        if self.epoch(i).load(Ordering::SeqCst) != tick + 1 {
            let _ = self
                .current
                .compare_exchange(c, 0, Ordering::SeqCst, Ordering::Relaxed);
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

    /// Every stripe of bucket `i`.
    #[inline]
    fn stripes_of(&self, i: usize) -> &[Bucket<K>] {
        &self.buckets[i * self.stripes..(i + 1) * self.stripes]
    }

    /// The buckets (every stripe of them) whose tick lies in the window ending at `tick`.
    fn live(&self, tick: u64) -> impl Iterator<Item = &Bucket<K>> {
        (0..self.len.d as usize)
            .filter(move |&i| self.is_live(i, tick))
            .flat_map(|i| self.stripes_of(i))
    }

    #[inline]
    fn is_live(&self, i: usize, tick: u64) -> bool {
        let e = self.epoch(i).load(Ordering::Acquire);
        if e == 0 || e == RESETTING {
            return false;
        }
        let t = e - 1;
        t <= tick && t + self.len.d > tick
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
        for i in 0..self.len.d as usize {
            self.epoch(i).store(0, Ordering::SeqCst);
        }
        // After the epochs (see `set_current`).
        self.current.store(0, Ordering::SeqCst);
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
    use super::{Divisor, RollingCounts};
    use std::time::Duration;

    #[test]
    fn striped_counts_sum_every_thread() {
        let rc = RollingCounts::<2>::striped(Duration::from_secs(10), 10, 4);
        let now = 12_345_678_901;
        std::thread::scope(|s| {
            for t in 0..6u64 {
                let rc = &rc;
                s.spawn(move || {
                    for _ in 0..1000 {
                        rc.add(0, 1, now);
                        rc.add(1, t, now);
                    }
                    rc.observe_peak(t as u32, now);
                });
            }
        });
        assert_eq!(rc.sum(now), [6000, 15_000]);
        assert_eq!(rc.sum_of([1], now), [15_000]);
        assert_eq!(rc.peak(now), 5);
        // A later tick recycles the bucket in every stripe.
        let later = now + 10_000_000_000;
        rc.add(0, 1, later);
        assert_eq!(rc.sum(later), [1, 0]);
        rc.reset();
        assert_eq!(rc.sum(later), [0, 0]);
    }

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
