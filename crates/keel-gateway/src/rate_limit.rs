//! Per-route keyed rate limiting, reporting what the `RateLimit-*` headers need: a local GCRA
//! limiter (one theoretical-arrival time per key in sharded maps), or a cluster-wide one in Redis
//! ([`cluster`]) that every gateway sharing the Redis draws on.
//!
//! keel-resilience's `RateLimiter` admits one key without reporting the remaining quota, which the
//! `RateLimit-*` headers need; the local limiter keeps one theoretical-arrival time per key under a
//! shard lock. [`Limiters`] keeps each route's limiter across table rebuilds and holds the one Redis
//! connection they share.

mod cluster;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::GatewayConfig;
use crate::filter::{LimiterBackend, RateLimitSpec};
use crate::metrics::GatewayMetrics;
use crate::respond;

pub use self::cluster::RedisStore;

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
    /// Who decided: the access log's `limiter` field.
    pub source: Source,
}

/// Who reached a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This gateway's own buckets.
    Local,
    /// The shared buckets in Redis.
    Redis,
    /// Redis did not answer in time; the route fails open and admitted the request uncounted.
    RedisFailOpen,
    /// Redis did not answer in time; the route fails closed and refused the request.
    RedisFailClosed,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Redis => "redis",
            Source::RedisFailOpen => "redis_fail_open",
            Source::RedisFailClosed => "redis_fail_closed",
        }
    }
}

impl Decision {
    /// Whether the numbers come from a bucket (and the `RateLimit-*` headers are sent); a fail-open
    /// admission knows none.
    pub fn counted(&self) -> bool {
        matches!(self.source, Source::Local | Source::Redis)
    }

    /// The answer to a request refused because the route fails closed and Redis is unavailable.
    pub fn unavailable_response(path: &str, request_id: &HeaderValue) -> Response<Body> {
        let mut resp = respond::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limiter_unavailable",
            "the route's rate limiter (Redis) is unavailable and the route fails closed",
            path,
            request_id,
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }
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
                source: Source::Local,
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
            source: Source::Local,
        }
    }
}

/// One route's limiter, local or in Redis.
#[derive(Debug)]
pub struct RouteLimiter {
    pub spec: RateLimitSpec,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local(KeyedLimiter),
    Redis(cluster::RedisRoute),
}

impl RouteLimiter {
    /// Takes `requested_tokens` for `key` if available. Local checks are ready at once; Redis
    /// checks take one round trip, bounded by `gateway.redis-timeout`.
    pub async fn check(&self, key: &str) -> Decision {
        match &self.backend {
            Backend::Local(l) => l.check(key),
            // Boxed: the Redis call's state would otherwise enlarge every request's future.
            Backend::Redis(r) => Box::pin(r.check(&self.spec, key)).await,
        }
    }
}

/// Every route's limiter by (route id, settings), so a recompiled table keeps counting where the old
/// one was; and the Redis connection the `redis` backend shares.
#[derive(Debug)]
pub struct Limiters {
    routes: Mutex<HashMap<String, Arc<RouteLimiter>>>,
    redis: Option<Arc<RedisStore>>,
    /// `gateway.redis-fail-mode`: what a route without its own `failMode` does without Redis.
    fail_open: bool,
}

impl Limiters {
    /// Opens (lazily) the Redis connection when `redis_url` is set; call inside a tokio runtime.
    pub fn new(config: &GatewayConfig) -> Result<Self, String> {
        let redis = match &config.redis_url {
            Some(url) => Some(RedisStore::open(url, config.redis_timeout)?),
            None => None,
        };
        Ok(Limiters {
            routes: Mutex::new(HashMap::new()),
            redis,
            fail_open: config.redis_fail_open,
        })
    }

    /// Route `route`'s limiter for `spec`: the one it had when the spec is unchanged, else a new one.
    /// A dry run (validation) builds a throwaway limiter and registers nothing.
    pub fn route(
        &self,
        route: &str,
        spec: RateLimitSpec,
        metrics: &GatewayMetrics,
        dry_run: bool,
    ) -> Result<Arc<RouteLimiter>, String> {
        let make = |spec: RateLimitSpec| -> Result<RouteLimiter, String> {
            let backend = match spec.backend {
                LimiterBackend::Local => Backend::Local(KeyedLimiter::new(spec.clone())),
                LimiterBackend::Redis => {
                    let store = self
                        .redis
                        .clone()
                        .ok_or("`backend: redis` needs the gateway setting `gateway.redis-url`")?;
                    let fail_open = spec.fail_open.unwrap_or(self.fail_open);
                    let unavailable = if dry_run {
                        Counter::default()
                    } else {
                        metrics.limiter_unavailable(route, fail_open)
                    };
                    Backend::Redis(cluster::RedisRoute::new(
                        store,
                        route,
                        fail_open,
                        unavailable,
                    ))
                }
            };
            Ok(RouteLimiter { spec, backend })
        };
        if dry_run {
            return make(spec).map(Arc::new);
        }
        let key = format!("{route}|{spec:?}|{}", self.fail_open);
        // Plain data behind the lock: a panic mid-insert leaves the map usable.
        let mut map = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get(&key) {
            return Ok(l.clone());
        }
        let l = Arc::new(make(spec)?);
        map.insert(key, l.clone());
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            backend: LimiterBackend::Local,
            fail_open: None,
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
