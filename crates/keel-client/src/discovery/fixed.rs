//! `FixedDiscovery`: instances set by the program (Ribbon's configuration-based server list),
//! for services without a registry and for tests.

use keel_eureka::{AppName, InstanceInfo};

use super::Discovery;
use super::cache::{Cache, Instances, LocalCopy};

/// A [`Discovery`] whose instances are set with [`FixedDiscovery::set`].
#[derive(Debug, Default)]
pub struct FixedDiscovery {
    cache: Cache,
    copy: std::sync::Mutex<LocalCopy>,
}

impl FixedDiscovery {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the instances of `app`.
    pub fn set(&self, app: &AppName, instances: &[InstanceInfo]) {
        let mut copy = self
            .copy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        copy.replace_app(app, instances);
        copy.publish(&self.cache);
    }
}

impl Discovery for FixedDiscovery {
    fn instances(&self, app: &AppName) -> Instances {
        self.cache.instances(app)
    }

    fn subscribe(&self, app: &AppName) -> tokio::sync::watch::Receiver<Instances> {
        self.cache.subscribe(app)
    }

    fn apps(&self) -> Vec<AppName> {
        self.cache.apps()
    }
}
