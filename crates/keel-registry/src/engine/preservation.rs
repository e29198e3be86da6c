//! Self-preservation: stop expiring leases when renewals drop as if the registry were cut off.
//!
//! Each lease is expected to renew every `renewalIntervalInSecs`, so it contributes
//! `60 / interval` expected renewals per minute. A lease whose last renewal (its own or a
//! replicated one) is not late contributes the same to the renewals actually arriving.
//! Preservation engages only when the registry holds at least `floor` instances and arriving
//! renewals fall below `threshold` of expected ones, so a small registry still expires a
//! crashed instance. It recovers by itself: when renewals come back, or, for leases that
//! never come back, after `max_hold` past their deadline.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::SelfPreservationConfig;

use super::lease::LeaseIndex;

/// The current state, as shown in health details, metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PreservationStatus {
    pub enabled: bool,
    pub engaged: bool,
    pub instances: usize,
    pub floor: usize,
    pub threshold: f64,
    /// Renewals per minute the registered leases should send.
    pub expected_per_minute: f64,
    /// Renewals per minute from leases that are renewing on time.
    pub arriving_per_minute: f64,
}

impl PreservationStatus {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": self.enabled,
            "engaged": self.engaged,
            "instances": self.instances,
            "floor": self.floor,
            "threshold": self.threshold,
            "expectedRenewalsPerMinute": self.expected_per_minute,
            "arrivingRenewalsPerMinute": self.arriving_per_minute,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Preservation {
    config: SelfPreservationConfig,
    engaged: AtomicBool,
    status: Mutex<PreservationStatus>,
}

impl Preservation {
    pub fn new(config: &SelfPreservationConfig) -> Self {
        Self {
            config: config.clone(),
            engaged: AtomicBool::new(false),
            status: Mutex::new(PreservationStatus {
                enabled: config.enabled,
                floor: config.floor,
                threshold: config.threshold,
                ..PreservationStatus::default()
            }),
        }
    }

    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::Acquire)
    }

    pub fn max_hold_ms(&self) -> u64 {
        u64::try_from(self.config.max_hold.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn status(&self) -> PreservationStatus {
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recomputes the state at monotonic time `now`; returns it and whether it flipped.
    pub fn evaluate(&self, index: &LeaseIndex, now: u64) -> (PreservationStatus, bool) {
        let mut instances = 0usize;
        let mut expected = 0.0f64;
        let mut arriving = 0.0f64;
        index.for_each(|lease| {
            if lease.is_removed() {
                return;
            }
            instances += 1;
            let per_minute = 60_000.0 / lease.interval_ms as f64;
            expected += per_minute;
            if now <= lease.late_after() {
                arriving += per_minute;
            }
        });
        let engaged = self.config.enabled
            && instances >= self.config.floor
            && arriving < self.config.threshold * expected;
        let status = PreservationStatus {
            enabled: self.config.enabled,
            engaged,
            instances,
            floor: self.config.floor,
            threshold: self.config.threshold,
            expected_per_minute: expected,
            arriving_per_minute: arriving,
        };
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
        let was = self.engaged.swap(engaged, Ordering::AcqRel);
        (status, was != engaged)
    }
}
