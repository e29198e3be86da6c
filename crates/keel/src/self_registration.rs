//! The config server's own registration as `CONFIGSERVER`, the service id Spring's
//! discovery-first config clients look up, through the SDK's registration agent.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use keel_client::{InstanceConfig, RegistrationAgent, RegistrationConfig, RegistryUrls};
use keel_eureka::AppName;

/// Spring Cloud Config's `spring.cloud.config.discovery.service-id` default, upper-cased as
/// Eureka stores application names.
pub const SERVICE_ID: &str = "CONFIGSERVER";

/// How long shutdown waits for the DOWN-then-cancel pair before going on without it.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts registering the config server bound at `bound` in `registries`. Bound to an
/// unspecified address, it advertises the host of `public_url` (`config.url`), which is where
/// the operator says clients reach it.
pub fn start(
    registries: &str,
    bound: SocketAddr,
    public_url: &str,
) -> anyhow::Result<RegistrationAgent> {
    let urls = RegistryUrls::parse_list(registries)
        .with_context(|| format!("config.registry-url {registries:?}"))?;
    let host = advertised_host(bound, public_url);
    let app = AppName::parse(SERVICE_ID).context("CONFIGSERVER is a valid app name")?;
    let instance = InstanceConfig::new(app, &host, bound.port());
    tracing::info!(registry = %registries, host = %host, port = bound.port(), "registering the config server as {SERVICE_ID}");
    RegistrationAgent::start(RegistrationConfig::new(urls, instance))
        .context("start the config server's registration")
}

/// Status DOWN, then cancel, within [`DEREGISTER_TIMEOUT`]; failures are logged, not fatal.
pub async fn stop(agent: RegistrationAgent) {
    match tokio::time::timeout(DEREGISTER_TIMEOUT, agent.deregister()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "config server deregistration failed"),
        Err(_) => tracing::warn!("config server deregistration timed out"),
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
