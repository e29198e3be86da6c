//! Peer discovery by DNS (`--peers-dns NAME:PORT`): every A/AAAA record behind a name is a
//! peer, except this node's own addresses; re-resolved periodically as nodes come and go.
//!
//! Eureka reads TXT records; Keel reads address records because every orchestrator publishes
//! them: a Compose service with replicas, Swarm's `tasks.<service>`, a Kubernetes headless
//! Service.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::{Cluster, PeerUrl};

/// `NAME:PORT`, parsed once at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeersDns {
    name: String,
    port: u16,
}

/// A `--peers-dns` value that is not `NAME:PORT`.
#[derive(Debug, thiserror::Error)]
#[error("peers DNS name {raw:?}: expected NAME:PORT, e.g. registry:8761")]
pub struct PeersDnsError {
    pub raw: String,
}

impl PeersDns {
    pub fn parse(raw: &str) -> Result<Self, PeersDnsError> {
        let err = || PeersDnsError {
            raw: raw.to_owned(),
        };
        let (name, port) = raw.trim().rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        if name.is_empty() || name.contains(['/', '@', '[', ']']) || port == 0 {
            return Err(err());
        }
        Ok(Self {
            name: name.to_owned(),
            port,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peers behind the name now, without this node, sorted (so sets compare equal).
    pub async fn resolve(&self) -> std::io::Result<Vec<PeerUrl>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.name.as_str(), self.port))
            .await?
            .collect();
        Ok(peers_from(&addrs, is_local))
    }
}

/// Peer URLs for the resolved addresses that `is_local` does not claim, deduplicated and sorted.
fn peers_from(addrs: &[SocketAddr], is_local: impl Fn(IpAddr) -> bool) -> Vec<PeerUrl> {
    let unique: BTreeSet<SocketAddr> = addrs.iter().copied().collect();
    unique
        .into_iter()
        .filter(|a| !is_local(a.ip()))
        .filter_map(|a| PeerUrl::parse(&format!("http://{a}/eureka/")).ok())
        .collect()
}

/// Whether `ip` is one of this host's addresses: a datagram socket "connected" to a local
/// address picks that same address as its source (no packet is sent). Works for every
/// interface of a container on several networks, with no interface enumeration.
fn is_local(ip: IpAddr) -> bool {
    if ip.is_loopback() {
        return true;
    }
    let bind: SocketAddr = match ip {
        IpAddr::V4(_) => (IpAddr::from([0u8; 4]), 0).into(),
        IpAddr::V6(_) => (IpAddr::from([0u16; 8]), 0).into(),
    };
    UdpSocket::bind(bind)
        .and_then(|s| s.connect((ip, 9)).and_then(|()| s.local_addr()))
        .is_ok_and(|local| local.ip() == ip)
}

impl Cluster {
    /// Re-resolves `dns` every `every` and hands the cluster `static_peers` plus what it found,
    /// whenever that changed; `initial` is what the first lookup (before [`Cluster::start`])
    /// found. A failed lookup keeps the current set: a DNS hiccup must not empty the cluster.
    /// Stops with [`Cluster::shutdown`].
    pub fn follow_dns(
        &self,
        dns: PeersDns,
        static_peers: Vec<PeerUrl>,
        initial: Vec<PeerUrl>,
        every: Duration,
    ) {
        let cluster = self.clone();
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
            let mut current = initial;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                match dns.resolve().await {
                    Ok(found) if found != current => {
                        tracing::info!(name = %dns.name, peers = ?found, "peers DNS changed");
                        let peers = static_peers.iter().cloned().chain(found.iter().cloned());
                        cluster.set_peers(peers.collect());
                        current = found;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        name = %dns.name, error = %e,
                        "peers DNS lookup failed; keeping the current peers"
                    ),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_port() {
        let dns = PeersDns::parse("tasks.registry:8761").unwrap();
        assert_eq!(dns.name(), "tasks.registry");
        assert_eq!(dns.port, 8761);
        for bad in [
            "registry",
            "registry:",
            ":8761",
            "registry:0",
            "http://r:1",
            "r:99999",
        ] {
            assert!(PeersDns::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn drops_own_addresses_and_duplicates() {
        let addrs: Vec<SocketAddr> = [
            "10.0.0.3:8761",
            "10.0.0.2:8761",
            "10.0.0.3:8761",
            "10.0.0.9:8761",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let me: IpAddr = "10.0.0.9".parse().unwrap();
        let peers: Vec<String> = peers_from(&addrs, |ip| ip == me)
            .iter()
            .map(|p| format!("{p}"))
            .collect();
        assert_eq!(
            peers,
            [
                "http://10.0.0.2:8761/eureka/",
                "http://10.0.0.3:8761/eureka/"
            ]
        );
    }

    #[test]
    fn loopback_and_unreachable_addresses() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        // TEST-NET-3 is never assigned to a host.
        assert!(!is_local("203.0.113.7".parse().unwrap()));
    }

    #[tokio::test]
    async fn resolving_localhost_finds_only_this_node() {
        let dns = PeersDns::parse("localhost:8761").unwrap();
        assert!(dns.resolve().await.unwrap().is_empty());
    }
}
