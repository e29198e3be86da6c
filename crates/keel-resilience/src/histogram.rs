//! Rolling latency histogram (Hystrix's rolling percentile): log-linear atomic buckets, ~12 % precision.

use std::time::Duration;

use crate::window::RollingCounts;

/// Sub-buckets per power of two (3 bits of mantissa).
const SUB: u64 = 8;
/// Highest octave kept; larger values (over ~76 hours in µs) land in the last bucket.
const MAX_OCTAVE: u64 = 38;
/// Value buckets.
const NB: usize = ((MAX_OCTAVE - 2) * SUB + SUB) as usize;
/// Extra counter holding the sum of recorded microseconds.
const SUM: usize = NB;

/// Percentiles Hystrix reports, as (label, fraction).
pub const HYSTRIX_PERCENTILES: [(&str, f64); 9] = [
    ("0", 0.0),
    ("25", 25.0),
    ("50", 50.0),
    ("75", 75.0),
    ("90", 90.0),
    ("95", 95.0),
    ("99", 99.0),
    ("99.5", 99.5),
    ("100", 100.0),
];

#[inline]
fn index(micros: u64) -> usize {
    if micros < SUB {
        return micros as usize;
    }
    let msb = 63 - u64::from(micros.leading_zeros());
    if msb > MAX_OCTAVE {
        return NB - 1;
    }
    ((msb - 2) * SUB + ((micros >> (msb - 3)) & (SUB - 1))) as usize
}

/// Representative value (midpoint) of bucket `i`, in microseconds.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let octave = i / SUB + 2;
    let width = 1u64 << (octave - 3);
    let low = (SUB + i % SUB) << (octave - 3);
    low + width / 2
}

/// Latency distribution over a rolling window (default 60 s in 6 buckets, as Hystrix).
#[derive(Debug)]
pub struct RollingHistogram {
    counts: RollingCounts<{ NB + 1 }>,
}

/// Percentiles and mean of a [`RollingHistogram`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySnapshot {
    /// Samples in the window.
    pub count: u64,
    /// Mean, in microseconds.
    pub mean_micros: u64,
    /// Values for [`HYSTRIX_PERCENTILES`], in microseconds, same order.
    pub percentiles_micros: [u64; 9],
}

impl RollingHistogram {
    /// A histogram over `window` split into `buckets` time buckets.
    pub fn new(window: Duration, buckets: usize) -> Self {
        RollingHistogram {
            counts: RollingCounts::new(window, buckets),
        }
    }

    /// Records one latency at `now` (nanoseconds on the clock's origin).
    #[inline]
    pub fn record(&self, latency: Duration, now: u64) {
        let micros = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        self.counts.add(index(micros), 1, now);
        self.counts.add(SUM, micros, now);
    }

    /// Percentiles over the window at `now`.
    pub fn snapshot(&self, now: u64) -> LatencySnapshot {
        let all = self.counts.sum(now);
        let (buckets, sum) = all.split_at(NB);
        let count: u64 = buckets.iter().sum();
        let mut out = LatencySnapshot {
            count,
            ..Default::default()
        };
        if count == 0 {
            return out;
        }
        out.mean_micros = sum[0] / count;
        for (slot, (_, p)) in out.percentiles_micros.iter_mut().zip(HYSTRIX_PERCENTILES) {
            // Rank of the percentile, 1-based, nearest-rank method; p0 is the smallest sample.
            let rank = ((p / 100.0 * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, c) in buckets.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    *slot = value(i);
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut last = 0;
        for v in 0..100_000u64 {
            let i = index(v);
            assert!(i == last || i == last + 1, "gap at {v}");
            last = i;
        }
        for v in [1u64, 9, 100, 1_000, 12_345, 1_000_000, 5_000_000_000] {
            let mid = value(index(v));
            let err = (mid as f64 - v as f64).abs() / v as f64;
            assert!(err <= 0.07, "{v} -> {mid}");
        }
        assert_eq!(index(u64::MAX), NB - 1);
    }
}
