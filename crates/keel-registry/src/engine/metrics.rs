//! The registry's Prometheus metrics, all defined here (prefixed `keel_registry_` by wiring).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::preservation::PreservationStatus;

#[derive(Clone, Debug, Default)]
pub(crate) struct RegistryMetrics {
    pub instances: Gauge,
    pub registrations: Counter,
    pub renewals: Counter,
    pub renewals_not_found: Counter,
    pub cancels: Counter,
    pub expirations: Counter,
    pub watchers: Gauge,
    preservation_engaged: Gauge,
    expected_renewals: Gauge<f64, AtomicU64>,
    arriving_renewals: Gauge<f64, AtomicU64>,
}

impl RegistryMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("registry");
        r.register("instances", "Registered instances", self.instances.clone());
        r.register(
            "registrations",
            "Registrations, including re-registrations",
            self.registrations.clone(),
        );
        r.register(
            "renewals",
            "Successful lease renewals, replicated ones included",
            self.renewals.clone(),
        );
        r.register(
            "renewals_not_found",
            "Renewals answered 404 (unknown lease or status UNKNOWN), which make clients re-register",
            self.renewals_not_found.clone(),
        );
        r.register(
            "cancels",
            "Instances cancelled by a client or a peer",
            self.cancels.clone(),
        );
        r.register(
            "expirations",
            "Leases expired after their duration",
            self.expirations.clone(),
        );
        r.register("watchers", "Open watch streams", self.watchers.clone());
        r.register(
            "self_preservation_engaged",
            "1 while self-preservation stops lease expiry",
            self.preservation_engaged.clone(),
        );
        r.register(
            "expected_renewals_per_minute",
            "Renewals per minute the registered leases should send",
            self.expected_renewals.clone(),
        );
        r.register(
            "arriving_renewals_per_minute",
            "Renewals per minute from leases renewing on time",
            self.arriving_renewals.clone(),
        );
    }

    pub fn record_preservation(&self, status: &PreservationStatus) {
        self.preservation_engaged.set(i64::from(status.engaged));
        self.expected_renewals.set(status.expected_per_minute);
        self.arriving_renewals.set(status.arriving_per_minute);
    }
}
