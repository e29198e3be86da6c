//! One balanced endpoint with its live statistics: in-flight count, peak-EWMA latency, ejection state.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Stable identity of an instance across list updates (e.g. Eureka's instanceId), so stats survive refreshes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for InstanceId {
    fn from(s: &str) -> Self {
        InstanceId(s.into())
    }
}

impl From<String> for InstanceId {
    fn from(s: String) -> Self {
        InstanceId(s.into())
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the caller knows about an instance (from the registry).
#[derive(Debug, Clone)]
pub struct InstanceSpec<T> {
    /// Identity.
    pub id: InstanceId,
    /// Availability zone, for zone preference.
    pub zone: Option<String>,
    /// The address or client to call.
    pub endpoint: T,
}

impl<T> InstanceSpec<T> {
    /// An instance without a zone.
    pub fn new(id: impl Into<InstanceId>, endpoint: T) -> Self {
        InstanceSpec {
            id: id.into(),
            zone: None,
            endpoint,
        }
    }

    /// Sets the zone.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }
}

/// An instance in the balancer. Times are nanoseconds on the balancer's `tokio::time` origin.
#[derive(Debug)]
pub struct Instance<T> {
    pub(crate) id: InstanceId,
    pub(crate) zone: Option<String>,
    pub(crate) endpoint: T,
    pub(crate) pending: AtomicU32,
    /// Peak-EWMA RTT estimate in nanoseconds, as f64 bits.
    pub(crate) ewma: AtomicU64,
    pub(crate) last_sample: AtomicU64,
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    pub(crate) probation: AtomicBool,
    /// Start of the slow-start ramp (arrival, or return from ejection).
    pub(crate) warm_from: AtomicU64,
    /// Set by an external per-instance breaker (Ribbon's "circuit tripped").
    pub(crate) tripped: AtomicBool,
}

impl<T> Instance<T> {
    pub(crate) fn new(spec: InstanceSpec<T>, default_rtt_ns: f64, warm_from: u64) -> Self {
        Instance {
            id: spec.id,
            zone: spec.zone,
            endpoint: spec.endpoint,
            pending: AtomicU32::new(0),
            ewma: AtomicU64::new(default_rtt_ns.to_bits()),
            last_sample: AtomicU64::new(warm_from),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            probation: AtomicBool::new(false),
            warm_from: AtomicU64::new(warm_from),
            tripped: AtomicBool::new(false),
        }
    }

    /// Identity.
    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    /// Zone.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    /// The endpoint to call.
    pub fn endpoint(&self) -> &T {
        &self.endpoint
    }

    /// Requests in flight.
    pub fn pending(&self) -> u32 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Current latency estimate (without idle decay).
    pub fn rtt_estimate(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(f64::from_bits(self.ewma.load(Ordering::Relaxed)) as u64)
    }

    /// Times this instance has been ejected (decays on successful probation).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Marks the instance tripped (skipped by availability filtering) or not, e.g. from a per-instance breaker.
    pub fn set_tripped(&self, tripped: bool) {
        self.tripped.store(tripped, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn is_ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }
}
