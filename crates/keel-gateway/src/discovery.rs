//! Instances from the SDK's [`Discovery`] (the registry's watch stream, or a fixed list): each app's
//! UP instances are pushed into [`Services`](crate::Services) the moment discovery publishes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keel_balance::InstanceSpec;
use keel_client::{Discovery, ServiceInstance};

use crate::Gateway;
use crate::upstream::Endpoint;

/// An instance with its secure port enabled is reached over https on that port, as Spring Cloud's
/// load balancer does (`isSecure()`); otherwise over http on its plain port.
fn spec(i: &ServiceInstance) -> Option<InstanceSpec<Endpoint>> {
    let (scheme, port) = match (i.secure_port, i.port) {
        (Some(p), _) => (http::uri::Scheme::HTTPS, p),
        (None, Some(p)) => (http::uri::Scheme::HTTP, p),
        (None, None) => return None,
    };
    // A certificate names the host, so https goes to `hostName` (the IP when the instance registered
    // with `preferIpAddress`); plain http goes straight to the IP.
    let host = if i.ip.is_empty() || scheme == http::uri::Scheme::HTTPS {
        &i.host
    } else {
        &i.ip
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = Endpoint {
        h2c: scheme == http::uri::Scheme::HTTP
            && i.metadata
                .get("protocol")
                .is_some_and(|p| p.eq_ignore_ascii_case("h2c")),
        scheme,
        authority: authority.parse().ok()?,
    };
    let spec = InstanceSpec::new(i.id.as_str(), endpoint);
    Some(match &i.zone {
        Some(z) => spec.zone(z.clone()),
        None => spec,
    })
}

impl Gateway {
    /// Follows `discovery` until the gateway is dropped: every app it lists gets a subscription that
    /// replaces the service's instances on each change; the app list is rescanned every `rescan`.
    pub fn follow(
        &self,
        discovery: Arc<dyn Discovery>,
        rescan: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut followed: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
            let mut tick = tokio::time::interval(rescan);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if weak.strong_count() == 0 {
                    for (_, t) in followed {
                        t.abort();
                    }
                    return;
                }
                for app in discovery.apps() {
                    if followed.contains_key(app.as_str()) {
                        continue;
                    }
                    let mut rx = discovery.subscribe(&app);
                    let weak = weak.clone();
                    let id = app.as_str().to_ascii_lowercase();
                    followed.insert(
                        app.as_str().to_owned(),
                        tokio::spawn(async move {
                            loop {
                                let list: Vec<_> =
                                    rx.borrow_and_update().iter().filter_map(spec).collect();
                                let Some(inner) = weak.upgrade() else { return };
                                inner.services.set_instances(&id, list);
                                drop(inner);
                                if rx.changed().await.is_err() {
                                    return;
                                }
                            }
                        }),
                    );
                }
            }
        })
    }
}

impl Gateway {
    /// Follows the registries at `urls` (comma-separated) through the SDK's watch-stream discovery.
    pub fn follow_registry(
        &self,
        urls: &str,
    ) -> Result<tokio::task::JoinHandle<()>, crate::GatewayError> {
        let registries = keel_client::RegistryUrls::parse_list(urls)
            .map_err(|e| crate::GatewayError::Discovery(format!("registry url `{urls}`: {e}")))?;
        let discovery =
            keel_client::RegistryDiscovery::start(keel_client::DiscoveryConfig::new(registries))
                .map_err(|e| crate::GatewayError::Discovery(e.to_string()))?;
        Ok(self.follow(Arc::new(discovery), Duration::from_millis(250)))
    }
}
