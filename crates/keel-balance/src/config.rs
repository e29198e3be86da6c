//! Balancer settings: strategy, zone preference, availability limits, outlier ejection, slow start.

use std::time::Duration;

/// How to choose among available instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Power of two choices: sample two, take the lower `rtt_ewma * (pending + 1)` (Finagle/linkerd/tower).
    #[default]
    PeakEwmaP2c,
    /// Ribbon's `RoundRobinRule`.
    RoundRobin,
    /// Ribbon's `RandomRule`.
    Random,
    /// Ribbon's `WeightedResponseTimeRule`: weight = Σrtt − rtt_i.
    WeightedResponseTime,
}

/// Passive health: eject instances after consecutive failures (Envoy-style, with Ribbon's growing trip time).
#[derive(Debug, Clone, Copy)]
pub struct OutlierConfig {
    /// Consecutive failures before ejection (0 disables ejection).
    pub consecutive_failures: u32,
    /// First ejection length; the n-th ejection lasts `n * base`, capped by `max_ejection`.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// At most this share of instances is ejected at once; at least one instance always stays in.
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejection_percent: 50,
        }
    }
}

/// Balancer settings.
#[derive(Debug, Clone)]
pub struct BalancerConfig {
    /// Choice strategy.
    pub strategy: Strategy,
    /// Prefer instances in this zone while any of them is available (Spring's `ZonePreferenceServerListFilter`).
    pub local_zone: Option<String>,
    /// Skip instances with this many requests in flight (Ribbon's `ActiveConnectionsLimit`); `None` = no cap.
    pub max_pending_per_instance: Option<u32>,
    /// Outlier ejection.
    pub outlier: OutlierConfig,
    /// New and returning instances ramp up over this long (zero disables).
    pub slow_start: Duration,
    /// RTT assumed before the first sample (linkerd: 30 ms).
    pub default_rtt: Duration,
    /// Peak-EWMA decay time (linkerd: 10 s).
    pub decay: Duration,
    /// RTT recorded for a failed call when larger than the measured one, so fast failures do not attract traffic.
    pub failure_penalty: Duration,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        BalancerConfig {
            strategy: Strategy::default(),
            local_zone: None,
            max_pending_per_instance: None,
            outlier: OutlierConfig::default(),
            slow_start: Duration::from_secs(30),
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
            failure_penalty: Duration::from_secs(1),
        }
    }
}
