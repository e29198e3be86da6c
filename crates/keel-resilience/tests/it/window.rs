//! Property test: the rolling window's counts match a naive list of timestamped events.

use std::time::Duration;

use keel_resilience::window::RollingCounts;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn rolling_counts_match_naive_model(
        buckets in 1usize..12,
        bucket_ms in 1u64..200,
        steps in proptest::collection::vec((0u64..400, 0usize..3, 1u64..4), 1..200),
    ) {
        let window = Duration::from_millis(bucket_ms * buckets as u64);
        let rc = RollingCounts::<3>::new(window, buckets);
        let width = bucket_ms * 1_000_000;
        let mut now = 0u64;
        let mut events: Vec<(u64, usize, u64)> = Vec::new();
        for (dt_ms, kind, n) in steps {
            now += dt_ms * 1_000_000 / 4;
            rc.add(kind, n, now);
            events.push((now, kind, n));
            // Naive model: an event counts while its bucket is one of the last `buckets` buckets.
            let tick = now / width;
            let mut want = [0u64; 3];
            for &(t, k, n) in &events {
                if t / width + buckets as u64 > tick {
                    want[k] += n;
                }
            }
            prop_assert_eq!(rc.sum(now), want);
        }
    }
}
