//! Spring Boot's actuator health model, so existing probes and dashboards read Keel unchanged.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// Spring Boot's health statuses, in its wire spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Up,
    Down,
    OutOfService,
    Unknown,
}

impl Status {
    /// Spring's default aggregation order: the worst status wins.
    fn severity(self) -> u8 {
        match self {
            Status::Down => 3,
            Status::OutOfService => 2,
            Status::Up => 1,
            Status::Unknown => 0,
        }
    }

    pub fn is_up(self) -> bool {
        self == Status::Up
    }
}

/// One component's health, as `{"status":"UP","details":{...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: Status,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Health {
    pub fn up() -> Self {
        Self {
            status: Status::Up,
            details: serde_json::Map::new(),
        }
    }

    pub fn down() -> Self {
        Self {
            status: Status::Down,
            details: serde_json::Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Something that can report its health: a component, a backend, a start-up sync.
pub trait HealthIndicator: Send + Sync {
    fn health(&self) -> Health;
}

impl<F: Fn() -> Health + Send + Sync> HealthIndicator for F {
    fn health(&self) -> Health {
        self()
    }
}

/// The aggregated document served at `/actuator/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: Status,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub components: BTreeMap<String, Health>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

struct Entry {
    name: String,
    indicator: Arc<dyn HealthIndicator>,
    /// Whether a DOWN here also makes the readiness probe DOWN.
    gates_readiness: bool,
}

/// The health indicators of one process. Cheap to clone.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    entries: Arc<RwLock<Vec<Entry>>>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRegistry").finish_non_exhaustive()
    }
}

impl HealthRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a named indicator. With `gates_readiness`, the readiness probe is DOWN while it is.
    pub fn register(
        &self,
        name: impl Into<String>,
        indicator: impl HealthIndicator + 'static,
        gates_readiness: bool,
    ) {
        let entry = Entry {
            name: name.into(),
            indicator: Arc::new(indicator),
            gates_readiness,
        };
        // A poisoned lock only means an indicator panicked; the list itself is still valid.
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.push(entry);
    }

    /// The full report, with `livenessState` and `readinessState` as Spring Boot names them.
    pub fn report(&self, ready: bool) -> HealthReport {
        let mut components = BTreeMap::new();
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut readiness = ready;
        for entry in entries.iter() {
            let health = entry.indicator.health();
            if entry.gates_readiness && !health.status.is_up() {
                readiness = false;
            }
            components.insert(entry.name.clone(), health);
        }
        components.insert("livenessState".into(), Health::up());
        components.insert("readinessState".into(), probe_health(readiness));
        let status = aggregate(components.values().map(|h| h.status));
        HealthReport {
            status,
            components,
            groups: vec!["liveness".into(), "readiness".into()],
        }
    }

    /// Readiness: the process is not shutting down and every readiness-gating indicator is UP.
    pub fn readiness(&self, ready: bool) -> HealthReport {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let gated_up = entries
            .iter()
            .filter(|e| e.gates_readiness)
            .all(|e| e.indicator.health().status.is_up());
        single(probe_health(ready && gated_up))
    }

    /// Liveness: UP as long as the process answers at all.
    pub fn liveness(&self) -> HealthReport {
        single(Health::up())
    }
}

fn probe_health(up: bool) -> Health {
    if up { Health::up() } else { Health::down() }
}

fn single(health: Health) -> HealthReport {
    HealthReport {
        status: health.status,
        components: BTreeMap::new(),
        groups: Vec::new(),
    }
}

fn aggregate(statuses: impl Iterator<Item = Status>) -> Status {
    statuses
        .max_by_key(|s| s.severity())
        .unwrap_or(Status::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_status_wins_and_gates_readiness() {
        let registry = HealthRegistry::new();
        registry.register("registry", Health::up, false);
        registry.register(
            "sync",
            || Health::down().with_detail("reason", "syncing"),
            true,
        );
        let report = registry.report(true);
        assert_eq!(report.status, Status::Down);
        assert_eq!(report.components["readinessState"].status, Status::Down);
        assert_eq!(registry.readiness(true).status, Status::Down);
        assert_eq!(registry.liveness().status, Status::Up);
    }

    #[test]
    fn shutting_down_turns_readiness_down() {
        let registry = HealthRegistry::new();
        registry.register("config", Health::up, true);
        assert_eq!(registry.readiness(true).status, Status::Up);
        assert_eq!(registry.readiness(false).status, Status::Down);
        let json = serde_json::to_value(registry.report(true)).unwrap();
        assert_eq!(json["status"], "UP");
        assert_eq!(json["components"]["config"]["status"], "UP");
    }
}
