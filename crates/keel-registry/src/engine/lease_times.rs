//! Read-only lease timing for people: when an instance last renewed and when its lease runs out.

use keel_eureka::{AppName, InstanceId};

use super::Registry;

/// One lease's timing in wall-clock epoch milliseconds (from the injected clock).
///
/// Eureka's `leaseInfo.lastRenewalTimestamp` is only written at registration, so the
/// dashboard reads the lease itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimes {
    pub last_renewal_millis: i64,
    /// Last renewal + the lease's duration; in the past while self-preservation holds it.
    pub expires_at_millis: i64,
}

impl Registry {
    /// The lease timing of a registered instance; `None` if it is not registered.
    pub fn lease_times(&self, app: &AppName, id: &InstanceId) -> Option<LeaseTimes> {
        let lease = self.inner.index.get(app, id)?;
        let now_mono = self.inner.now_ms();
        let now_wall = self.inner.clock.now_millis();
        let to_wall = |mono: u64| {
            let ago = i64::try_from(now_mono.saturating_sub(mono)).unwrap_or(i64::MAX);
            let ahead = i64::try_from(mono.saturating_sub(now_mono)).unwrap_or(i64::MAX);
            now_wall.saturating_sub(ago).saturating_add(ahead)
        };
        Some(LeaseTimes {
            last_renewal_millis: to_wall(lease.last_renewal()),
            expires_at_millis: to_wall(lease.deadline()),
        })
    }
}
