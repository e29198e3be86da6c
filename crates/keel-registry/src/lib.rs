//! The registry component: Eureka's role. Issue 3 fills in leases, replication and watch.

use axum::Router;
use keel_server::{Health, HealthRegistry};

/// Settings for one registry node.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {}

/// One registry node's state, shared by its HTTP routes.
#[derive(Clone, Debug)]
pub struct Registry {
    _config: RegistryConfig,
}

impl Registry {
    pub fn new(config: RegistryConfig, health: &HealthRegistry) -> Self {
        health.register("registry", Health::up, false);
        Self { _config: config }
    }
}

/// The registry's HTTP routes.
pub fn router(_registry: Registry) -> Router {
    Router::new()
}
