//! Keel's own components in the registry, through the SDK's registration agent: the config
//! server as `CONFIGSERVER` (the service id Spring's discovery-first config clients look up) and
//! the gateway as `KEEL-GATEWAY` (so the dashboard finds it).

use std::net::{IpAddr, SocketAddr};
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

/// How long a component with no address to advertise waits for a registry's name to resolve
/// (in Swarm, registry tasks may start after it).
const ADVERTISE_WAIT: Duration = Duration::from_secs(30);

/// How long shutdown waits for the DOWN-then-cancel pair before going on without it.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts registering the component `who` bound at `bound` in `registries`, advertising the
/// host [`advertised_host`] picks.
pub async fn start(
    who: SelfId,
    registries: &str,
    bound: SocketAddr,
    public_url: &str,
) -> anyhow::Result<(SelfId, RegistrationAgent)> {
    let urls = RegistryUrls::parse_list(registries)
        .with_context(|| format!("{} {registries:?}", who.setting))?;
    let route = if bound.ip().is_unspecified() && public_host(public_url).is_none() {
        let route = urls.source_ip_within(ADVERTISE_WAIT).await;
        if route.is_none() {
            tracing::warn!(registry = %registries, "no registry address resolved within {ADVERTISE_WAIT:?}; advertising 127.0.0.1");
        }
        route
    } else {
        None
    };
    let host = advertised_host(bound, public_url, route);
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

/// The host registered for a component bound at `bound`: the bound IP; bound to an unspecified
/// address, the host of `public_url` (`config.url`, `gateway.url`) when the operator set one
/// that other hosts can reach, else `route`, the IP this host reaches the first registry from
/// (what the SDK's services advertise, Spring's `preferIpAddress`: in a container, its address on
/// the registry's network), else 127.0.0.1. A `0.0.0.0` listener takes no IPv6, so it never
/// advertises an IPv6 route.
fn advertised_host(bound: SocketAddr, public_url: &str, route: Option<IpAddr>) -> String {
    if !bound.ip().is_unspecified() {
        return bound.ip().to_string();
    }
    public_host(public_url)
        .or_else(|| {
            route
                .filter(|ip| bound.is_ipv6() || ip.is_ipv4())
                .map(|ip| ip.to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// The host of `public_url` when it is one other hosts can reach.
fn public_host(public_url: &str) -> Option<String> {
    public_url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .filter(|h| !h.is_empty() && !is_loopback(h))
}

/// `localhost` or a loopback IP: reachable from this host only.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_the_bound_ip_else_a_reachable_public_url_host_else_the_route() {
        let any: SocketAddr = "0.0.0.0:8888".parse().unwrap();
        let any6: SocketAddr = "[::]:8888".parse().unwrap();
        let one: SocketAddr = "10.1.2.3:8888".parse().unwrap();
        let route: Option<IpAddr> = Some("172.18.0.5".parse().unwrap());
        let route6: Option<IpAddr> = Some("fd00::5".parse().unwrap());
        assert_eq!(
            advertised_host(one, "http://cfg.example:8888", route),
            "10.1.2.3"
        );
        assert_eq!(
            advertised_host(any, "http://cfg.example:8888", route),
            "cfg.example"
        );
        // config.url's default (or any loopback host) reaches nobody else: the route wins.
        assert_eq!(
            advertised_host(any, "http://127.0.0.1:8888", route),
            "172.18.0.5"
        );
        assert_eq!(
            advertised_host(any, "http://localhost:8888", route),
            "172.18.0.5"
        );
        assert_eq!(
            advertised_host(any, "http://[::1]:8888", route),
            "172.18.0.5"
        );
        assert_eq!(advertised_host(any6, "not a url", route6), "fd00::5");
        // 0.0.0.0 accepts no IPv6 connections.
        assert_eq!(advertised_host(any, "not a url", route6), "127.0.0.1");
        assert_eq!(
            advertised_host(any, "http://127.0.0.1:8888", None),
            "127.0.0.1"
        );
    }
}
