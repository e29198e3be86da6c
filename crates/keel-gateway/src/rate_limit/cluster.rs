//! The cluster-wide limiter: every gateway draws on the same GCRA buckets in Redis, taken by one
//! atomic Lua script per request (Spring Cloud Gateway's `RedisRateLimiter` role), so concurrent
//! gateways share one budget.
//!
//! One multiplexed connection per gateway (redis-rs's `ConnectionManager`: cloned per request, no
//! lock; it reconnects by itself). Each check is bounded by `gateway.redis-timeout`; when Redis errs
//! or is slower than that, the route's policy decides (fail open: admit uncounted; fail closed:
//! refuse), the route's `keel_gateway_rate_limiter_unavailable` counter counts it, and for a short
//! while the next requests apply the policy without trying Redis, so a dead Redis costs no request
//! the timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use super::{Decision, Source};
use crate::filter::RateLimitSpec;

/// GCRA over Redis's own clock (`TIME`), so the gateways' clocks do not matter. `KEYS[1]` holds the
/// key's theoretical arrival time in microseconds and expires when the bucket is full again.
/// `ARGV`: emission interval (µs per token), burst capacity and requested tokens.
/// Returns `{allowed, remaining tokens, µs until full, µs until a retry can pass}`.
const SCRIPT: &str = r"
local emission = tonumber(ARGV[1])
local capacity = emission * tonumber(ARGV[2])
local cost = emission * tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next = tat + cost
if next - now > capacity then
  return {0, math.max(0, math.floor((capacity - (tat - now)) / emission)), tat - now, next - now - capacity}
end
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.ceil((next - now) / 1000) + 1)
return {1, math.max(0, math.floor((capacity - (next - now)) / emission)), next - now, 0}
";

/// After a failed check, requests apply their policy without trying Redis for this long; then the
/// next request probes it again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(200);

/// The connection to Redis the `redis` backend's routes share.
pub struct RedisStore {
    conn: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
    /// Where Redis is, without credentials, for logs.
    addr: String,
    origin: Instant,
    /// Nanoseconds after `origin` before which Redis is not tried (0: try).
    skip_until: AtomicU64,
    /// Whether the last check got an answer (logs only the changes).
    up: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Parses `url` (`redis://[:password@]host:port[/db]`, `unix:///path`) and connects in the
    /// background, so the gateway starts whether or not Redis is up. Call inside a tokio runtime.
    pub fn open(url: &str, timeout: Duration) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("invalid value for setting `gateway.redis-url`: {e}"))?;
        let addr = client.get_connection_info().addr().to_string();
        // One attempt per connect: while Redis is down the store retries on its own schedule
        // (`RETRY_AFTER_FAILURE`), not inside a request.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(timeout));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("gateway.redis-url: {e}"))?;
        let store = Arc::new(RedisStore {
            conn,
            script: redis::Script::new(SCRIPT),
            timeout,
            addr,
            origin: Instant::now(),
            skip_until: AtomicU64::new(0),
            up: AtomicBool::new(true),
        });
        // Connect (and load the script) now rather than on the first limited request.
        let warm = store.clone();
        tokio::spawn(async move {
            let mut conn = warm.conn.clone();
            let loaded = tokio::time::timeout(
                Duration::from_secs(5),
                warm.script.prepare_invoke().load_async(&mut conn),
            )
            .await;
            match loaded {
                Ok(Ok(_)) => tracing::info!(redis = %warm.addr, "rate limiter connected to Redis"),
                Ok(Err(e)) => warm.failed(&e.to_string()),
                Err(_) => warm.failed("no answer within 5s"),
            }
        });
        Ok(store)
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn failed(&self, why: &str) {
        let until = self.now() + RETRY_AFTER_FAILURE.as_nanos() as u64;
        self.skip_until.store(until, Ordering::Relaxed);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(redis = %self.addr, error = why,
                "Redis is unavailable: Redis-backed rate limits fail open or closed per route until it answers");
        }
    }

    fn answered(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(redis = %self.addr, "Redis answers again: Redis-backed rate limits apply");
        }
    }

    /// Runs the script for `key`; `None` when Redis erred, was too slow, or is being skipped.
    async fn take(&self, key: &str, spec: &RateLimitSpec) -> Option<[i64; 4]> {
        if self.now() < self.skip_until.load(Ordering::Relaxed) {
            return None;
        }
        let emission_us = (1_000_000 / u64::from(spec.replenish_rate.max(1))).max(1);
        let mut invocation = self.script.key(key);
        invocation
            .arg(emission_us)
            .arg(spec.burst_capacity)
            .arg(spec.requested_tokens);
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.timeout,
            invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn),
        )
        .await
        {
            Ok(Ok((a, b, c, d))) => {
                self.answered();
                Some([a, b, c, d])
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }
}

/// One route's view of the store: its key prefix, policy and counter.
#[derive(Debug)]
pub struct RedisRoute {
    store: Arc<RedisStore>,
    /// `keel:rl:{route}/`: route ids contain no `/`, so no route's keys collide with another's.
    prefix: String,
    fail_open: bool,
    unavailable: Counter,
}

impl RedisRoute {
    pub fn new(store: Arc<RedisStore>, route: &str, fail_open: bool, unavailable: Counter) -> Self {
        RedisRoute {
            store,
            prefix: format!("keel:rl:{route}/"),
            fail_open,
            unavailable,
        }
    }

    pub async fn check(&self, spec: &RateLimitSpec, key: &str) -> Decision {
        let limit = spec.burst_capacity;
        let redis_key = [self.prefix.as_str(), key].concat();
        let secs = |us: i64| (us.max(0) as u64).div_ceil(1_000_000);
        if let Some([allowed, remaining, reset_us, retry_us]) =
            self.store.take(&redis_key, spec).await
        {
            return Decision {
                allowed: allowed == 1,
                limit,
                remaining: remaining.clamp(0, i64::from(limit)) as u32,
                reset_secs: secs(reset_us),
                retry_after_secs: if allowed == 1 {
                    0
                } else {
                    secs(retry_us).max(1)
                },
                source: Source::Redis,
            };
        }
        self.unavailable.inc();
        Decision {
            allowed: self.fail_open,
            limit,
            remaining: 0,
            reset_secs: 0,
            retry_after_secs: if self.fail_open { 0 } else { 1 },
            source: if self.fail_open {
                Source::RedisFailOpen
            } else {
                Source::RedisFailClosed
            },
        }
    }
}
