//! Gateway settings with their defaults (the README's defaults table mirrors `Default`).

use std::path::PathBuf;
use std::time::Duration;

use keel_balance::BalancerConfig;
use keel_resilience::{AimdConfig, BreakerConfig};

use crate::access_log::AccessLogTarget;
use crate::forwarded::TrustedProxies;

/// Settings for one gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// A route file (YAML, JSON or `.properties`) in Spring Cloud Gateway's shape; watched for changes.
    pub routes_file: Option<PathBuf>,
    /// How often the route file is checked for changes.
    pub watch_interval: Duration,
    /// Peers whose `X-Forwarded-*`/`Forwarded` headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// PEM files of certificate authorities trusted for `https://` upstreams, besides the system's
    /// root certificates.
    pub upstream_trusted_ca: Vec<PathBuf>,
    /// The certificate chain and key the gateway presents to `https://` upstreams that ask for one
    /// (mutual TLS); `None`: it presents none.
    pub upstream_client_cert: Option<crate::tls::CertPair>,
    /// Upstream connect timeout (Ribbon's `ConnectTimeout` is 1 s; Zuul's URL routes use 2 s).
    pub connect_timeout: Duration,
    /// Idle upstream connections unused this long are closed (nginx's upstream
    /// `keepalive_timeout` is 60 s), so connections to instances that went away do not linger.
    pub upstream_idle_timeout: Duration,
    /// Default time to the upstream response head, per attempt; routes override with metadata `response-timeout` (ms).
    pub response_timeout: Duration,
    /// Default further instances tried after a failure (Ribbon's `MaxAutoRetriesNextServer`).
    pub retries: u32,
    /// Bodies up to this size are buffered so a failed attempt can be replayed elsewhere.
    pub max_replay_body: usize,
    /// Largest request body proxied (413 above it); `None` leaves it to each route's `RequestSize`
    /// filter, as Spring Cloud Gateway and Zuul do. Independent of `http.max-body-bytes`, which
    /// caps the other components.
    pub max_body_bytes: Option<u64>,
    /// Per-service circuit breaker (Hystrix defaults).
    pub breaker: BreakerConfig,
    /// Per-service balancing (P2C peak-EWMA) and outlier ejection.
    pub balancer: BalancerConfig,
    /// Per-service adaptive concurrency limit; `None` disables it.
    pub concurrency_limit: Option<AimdConfig>,
    /// Retry budget: `ratio` of recent calls plus `min_per_sec`, over 10 s.
    pub retry_budget_ratio: f32,
    pub retry_budget_min_per_sec: u32,
    /// Access log destination.
    pub access_log: AccessLogTarget,
    /// Headers not forwarded to `http(s)://` routes unless the route lists its own `sensitive-headers`.
    pub sensitive_headers: Vec<String>,
    /// Whether the gateway is reached over TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// Bearer token the admin API requires; without one it answers loopback clients only.
    pub admin_token: Option<String>,
    /// The admin API is served on its own listener ([`admin_router`](crate::admin_router)), not
    /// beside the proxy, whose `/keel/v1/gateway/**` paths are then ordinary proxied paths.
    pub admin_separate: bool,
    /// Redis for `RequestRateLimiter`'s `backend: redis` (`redis://[:password@]host:port[/db]`);
    /// `None`: routes may use only the local limiter.
    pub redis_url: Option<String>,
    /// Longest wait for Redis per rate-limit check before the route's fail policy applies.
    pub redis_timeout: Duration,
    /// With Redis unreachable or slow: admit requests uncounted (true, as Spring Cloud Gateway
    /// does) or refuse them with 503; routes override with `failMode`.
    pub redis_fail_open: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            routes_file: None,
            watch_interval: Duration::from_secs(1),
            trusted_proxies: TrustedProxies::default(),
            upstream_trusted_ca: Vec::new(),
            upstream_client_cert: None,
            connect_timeout: Duration::from_secs(1),
            upstream_idle_timeout: Duration::from_secs(60),
            response_timeout: Duration::from_secs(15),
            retries: 1,
            max_replay_body: 64 * 1024,
            max_body_bytes: None,
            breaker: BreakerConfig::default(),
            balancer: BalancerConfig {
                slow_start: Duration::ZERO,
                ..BalancerConfig::default()
            },
            concurrency_limit: Some(AimdConfig {
                initial: 200,
                min: 20,
                max: 1000,
                ..AimdConfig::default()
            }),
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            access_log: AccessLogTarget::Off,
            sensitive_headers: vec!["cookie".into(), "set-cookie".into(), "authorization".into()],
            tls: false,
            admin_token: None,
            admin_separate: false,
            redis_url: None,
            redis_timeout: Duration::from_millis(100),
            redis_fail_open: true,
        }
    }
}
