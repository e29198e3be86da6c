//! Per-route keyed rate limiting: GCRA cells per key in sharded maps, reporting what headers need.
//!
//! keel-resilience's `RateLimiter` admits one key without reporting the remaining quota, which the
//! `RateLimit-*` headers need; this keeps one theoretical-arrival time per key under a shard lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::filter::RateLimitSpec;

const SHARDS: usize = 16;
/// Past this many keys in a shard, keys whose bucket is full again are dropped.
const PRUNE_AT: usize = 4096;

/// The verdict plus the numbers for `RateLimit-*` and `X-RateLimit-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying (rejections only).
    pub retry_after_secs: u64,
}

/// One route's limiter: `burst_capacity` tokens, refilled at `replenish_rate` per second.
#[derive(Debug)]
pub struct KeyedLimiter {
    pub spec: RateLimitSpec,
    origin: Instant,
    emission: u64,
    capacity: u64,
    shards: [Mutex<HashMap<Box<str>, u64>>; SHARDS],
}

impl KeyedLimiter {
    pub fn new(spec: RateLimitSpec) -> Self {
        let emission = 1_000_000_000 / u64::from(spec.replenish_rate.max(1));
        let capacity = emission * u64::from(spec.burst_capacity);
        KeyedLimiter {
            spec,
            origin: Instant::now(),
            emission,
            capacity,
            shards: Default::default(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<Box<str>, u64>> {
        // FNV-1a: cheap, and the key set is not attacker-chosen in a way that matters for 16 shards.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        &self.shards[(h as usize) % SHARDS]
    }

    /// Takes `requested_tokens` for `key` if available.
    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64;
        let cost = self.emission * u64::from(self.spec.requested_tokens);
        let secs = |ns: u64| ns.div_ceil(1_000_000_000);
        // A poisoned shard only means another request panicked mid-update; the u64 inside is still valid.
        let mut map = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let next = tat + cost;
        let limit = self.spec.burst_capacity;
        if next - now > self.capacity {
            let remaining = ((self.capacity - (tat - now)) / self.emission) as u32;
            return Decision {
                allowed: false,
                limit,
                remaining,
                reset_secs: secs(tat - now),
                retry_after_secs: secs(next - now - self.capacity).max(1),
            };
        }
        match map.get_mut(key) {
            Some(v) => *v = next,
            None => {
                map.insert(key.into(), next);
            }
        }
        Decision {
            allowed: true,
            limit,
            remaining: ((self.capacity - (next - now)) / self.emission) as u32,
            reset_secs: secs(next - now),
            retry_after_secs: 0,
        }
    }

    /// The refill period of one token.
    pub fn emission(&self) -> Duration {
        Duration::from_nanos(self.emission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::KeyResolver;

    #[tokio::test(start_paused = true)]
    async fn burst_then_refill() {
        let l = KeyedLimiter::new(RateLimitSpec {
            replenish_rate: 2,
            burst_capacity: 3,
            requested_tokens: 1,
            key: KeyResolver::ClientIp,
            deny_empty_key: true,
        });
        let r: Vec<_> = (0..4).map(|_| l.check("a")).collect();
        assert_eq!(
            r.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            vec![2, 1, 0, 0]
        );
        assert!(!r[3].allowed);
        assert_eq!(r[3].retry_after_secs, 1);
        assert!(l.check("b").allowed);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(l.check("a").allowed);
        assert!(!l.check("a").allowed);
    }
}
