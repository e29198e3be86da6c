//! Keel's own components in the registry, through the SDK's registration agent: the config
//! server as `CONFIGSERVER` (the service id Spring's discovery-first config clients look up) and
//! the gateway as `KEEL-GATEWAY` (so the dashboard finds it).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use keel_client::{InstanceConfig, RegistrationAgent, RegistrationConfig, RegistryUrls};
use keel_eureka::AppName;

/// A component that registers itself.
#[derive(Clone, Copy, Debug)]
pub struct SelfId {
    /// The app name, upper-cased as Eureka stores application names.
    pub service_id: &'static str,
    /// The setting naming its registries, for error messages.
    pub setting: &'static str,
    /// The component, for log lines.
    pub what: &'static str,
}

/// Spring Cloud Config's `spring.cloud.config.discovery.service-id` default.
pub const CONFIG_SERVER: SelfId = SelfId {
    service_id: "CONFIGSERVER",
    setting: "config.registry-url",
    what: "config server",
};

/// The gateway, as the dashboard looks it up.
pub const GATEWAY: SelfId = SelfId {
    service_id: "KEEL-GATEWAY",
    setting: "gateway.registry-url",
    what: "gateway",
};

/// How long shutdown waits for the DOWN-then-cancel pair before going on without it.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts registering the component `who` bound at `bound` in `registries`. Bound to an
/// unspecified address, it advertises the host of `public_url` (`config.url`, `gateway.url`),
/// which is where the operator says clients reach it.
pub fn start(
    who: SelfId,
    registries: &str,
    bound: SocketAddr,
    public_url: &str,
) -> anyhow::Result<(SelfId, RegistrationAgent)> {
    let urls = RegistryUrls::parse_list(registries)
        .with_context(|| format!("{} {registries:?}", who.setting))?;
    let host = advertised_host(bound, public_url);
    let app = AppName::parse(who.service_id)
        .with_context(|| format!("{} is a valid app name", who.service_id))?;
    let instance = InstanceConfig::new(app, &host, bound.port());
    tracing::info!(registry = %registries, host = %host, port = bound.port(), "registering the {} as {}", who.what, who.service_id);
    let agent = RegistrationAgent::start(RegistrationConfig::new(urls, instance))
        .with_context(|| format!("start the {}'s registration", who.what))?;
    Ok((who, agent))
}

/// Status DOWN, then cancel, within [`DEREGISTER_TIMEOUT`]; failures are logged, not fatal.
pub async fn stop((who, agent): (SelfId, RegistrationAgent)) {
    match tokio::time::timeout(DEREGISTER_TIMEOUT, agent.deregister()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "{} deregistration failed", who.what),
        Err(_) => tracing::warn!("{} deregistration timed out", who.what),
    }
}

fn advertised_host(bound: SocketAddr, public_url: &str) -> String {
    if !bound.ip().is_unspecified() {
        return bound.ip().to_string();
    }
    public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_the_bound_ip_else_the_public_url_host() {
        let any: SocketAddr = "0.0.0.0:8888".parse().unwrap();
        let one: SocketAddr = "10.1.2.3:8888".parse().unwrap();
        assert_eq!(advertised_host(one, "http://cfg.example:8888"), "10.1.2.3");
        assert_eq!(
            advertised_host(any, "http://cfg.example:8888"),
            "cfg.example"
        );
        assert_eq!(advertised_host(any, "not a url"), "127.0.0.1");
    }
}
