//! Registry URLs, parsed once, and the failover cursor the agent and the cache move along.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Url;

/// One registry node: its Eureka service URL (`http://host:8761/eureka/`) and its watch URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUrl {
    eureka: Url,
    watch: Url,
}

/// A registry URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registry URL {url:?}: {reason}")]
pub struct RegistryUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl RegistryUrl {
    /// Accepts a Eureka service URL as Spring writes it (`http://host:8761/eureka/`), or a bare
    /// origin (`http://host:8761`), which means `/eureka/` on it. The watch stream is always at
    /// `/keel/v1/watch` on the same origin, whatever path the Eureka API sits under.
    pub fn parse(raw: &str) -> Result<Self, RegistryUrlError> {
        let err = |reason| RegistryUrlError {
            url: raw.to_owned(),
            reason,
        };
        let mut eureka = Url::parse(raw.trim()).map_err(|_| err("not a URL"))?;
        if !matches!(eureka.scheme(), "http" | "https") {
            return Err(err("scheme must be http or https"));
        }
        if eureka.host_str().is_none() {
            return Err(err("no host"));
        }
        eureka.set_query(None);
        eureka.set_fragment(None);
        if eureka.path() == "/" {
            eureka.set_path("/eureka/");
        } else if !eureka.path().ends_with('/') {
            // Url::join would replace the last segment otherwise.
            let path = format!("{}/", eureka.path());
            eureka.set_path(&path);
        }
        let mut watch = eureka.clone();
        watch.set_path("/keel/v1/watch");
        Ok(Self { eureka, watch })
    }

    /// `base` joined with a relative Eureka path such as `apps/ORDER/ID`.
    pub(crate) fn eureka(&self, relative: &str) -> Url {
        // A relative path with no scheme and no leading slash always joins.
        self.eureka
            .join(relative)
            .unwrap_or_else(|_| self.eureka.clone())
    }

    /// `base` followed by path segments, each percent-encoded (instance ids may hold `:` or `?`).
    pub(crate) fn eureka_segments(&self, segments: &[&str]) -> Url {
        let mut url = self.eureka.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) fn watch(&self) -> &Url {
        &self.watch
    }

    pub fn as_str(&self) -> &str {
        self.eureka.as_str()
    }
}

impl std::fmt::Display for RegistryUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.eureka.as_str())
    }
}

impl std::str::FromStr for RegistryUrl {
    type Err = RegistryUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Several registry nodes and which one is in use. A node that fails is left for the next one;
/// the cursor is shared by clones.
#[derive(Debug, Clone)]
pub struct RegistryUrls {
    urls: Arc<[RegistryUrl]>,
    current: Arc<AtomicUsize>,
}

impl RegistryUrls {
    /// At least one URL is required.
    pub fn new(urls: Vec<RegistryUrl>) -> Result<Self, RegistryUrlError> {
        if urls.is_empty() {
            return Err(RegistryUrlError {
                url: String::new(),
                reason: "at least one registry URL is needed",
            });
        }
        Ok(Self {
            urls: urls.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Parses a comma-separated list, as `eureka.client.serviceUrl.defaultZone` is written.
    pub fn parse_list(raw: &str) -> Result<Self, RegistryUrlError> {
        let urls = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(RegistryUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(urls)
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// The local IP this host reaches a registry from (a route lookup; nothing is sent): the
    /// first node whose address resolves, or `None` when none does. A service bound to
    /// `0.0.0.0` advertises this, Spring's `preferIpAddress`: in a container it is the
    /// container's address on the registry's network, which other containers can reach; on one
    /// machine it is 127.0.0.1.
    pub async fn source_ip(&self) -> Option<std::net::IpAddr> {
        for node in self.urls.iter() {
            if let Some(ip) = route_from(&node.eureka).await {
                return Some(ip);
            }
        }
        None
    }

    /// [`source_ip`](Self::source_ip), asked again every 250 ms for up to `wait`: in Swarm or
    /// Kubernetes a service may start before any registry task, and then the registry's name
    /// does not resolve yet. Settling for 127.0.0.1 instead would register an address nobody
    /// else can reach, the same for every replica.
    pub async fn source_ip_within(&self, wait: std::time::Duration) -> Option<std::net::IpAddr> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(ip) = self.source_ip().await {
                return Some(ip);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    pub fn all(&self) -> &[RegistryUrl] {
        &self.urls
    }

    /// The node in use.
    pub fn current(&self) -> (usize, &RegistryUrl) {
        let i = self.current.load(Ordering::Relaxed) % self.urls.len();
        (i, &self.urls[i])
    }

    /// Moves on from node `failed` (a no-op if another caller already moved on).
    pub fn failed(&self, failed: usize) {
        let next = (failed + 1) % self.urls.len();
        let _ = self
            .current
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Makes `index` the node in use (it just answered).
    pub(crate) fn settle(&self, index: usize) {
        self.current.store(index, Ordering::Relaxed);
    }

    /// Every node once, starting with the one in use.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = (usize, &RegistryUrl)> {
        let start = self.current().0;
        (0..self.urls.len()).map(move |k| {
            let i = (start + k) % self.urls.len();
            (i, &self.urls[i])
        })
    }
}

/// The local IP of a route to `url`'s host: a UDP socket connected there, which sends nothing.
async fn route_from(url: &Url) -> Option<std::net::IpAddr> {
    let port = url.port_or_known_default()?;
    // An IPv6 literal's host_str keeps its brackets, which name no host.
    let host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let target = tokio::net::lookup_host((host, port)).await.ok()?.next()?;
    let any: std::net::SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn source_ip_resolves_ip_literals_of_both_families() {
        for (raw, ip) in [
            ("http://127.0.0.1:8761/eureka/", "127.0.0.1"),
            ("http://[::1]:8761/eureka/", "::1"),
        ] {
            let urls = RegistryUrls::parse_list(raw).unwrap();
            assert_eq!(urls.source_ip().await, Some(ip.parse().unwrap()), "{raw}");
        }
        // A node whose name does not resolve (RFC 6761's .invalid) is passed over.
        let urls = RegistryUrls::parse_list(
            "http://keeltest-registry.invalid:8761/eureka/,http://127.0.0.1:8761/eureka/",
        )
        .unwrap();
        let ip = urls
            .source_ip_within(std::time::Duration::from_secs(5))
            .await;
        assert_eq!(ip, Some([127, 0, 0, 1].into()));
    }

    #[test]
    fn service_urls_keep_their_path_and_watch_sits_at_the_root() {
        let u = RegistryUrl::parse("http://r1:8761/eureka/").unwrap();
        assert_eq!(u.eureka("apps/A").as_str(), "http://r1:8761/eureka/apps/A");
        assert_eq!(u.watch().as_str(), "http://r1:8761/keel/v1/watch");
        assert_eq!(
            u.eureka_segments(&["apps", "A", "h:a?1"]).as_str(),
            "http://r1:8761/eureka/apps/A/h:a%3F1"
        );
        let bare = RegistryUrl::parse("http://r2:8761").unwrap();
        assert_eq!(bare.as_str(), "http://r2:8761/eureka/");
        let no_slash = RegistryUrl::parse("https://r3/eureka/v2").unwrap();
        assert_eq!(
            no_slash.eureka("apps/delta").as_str(),
            "https://r3/eureka/v2/apps/delta"
        );
        assert!(RegistryUrl::parse("ftp://x/").is_err());
        assert!(RegistryUrl::parse("nope").is_err());
    }

    #[test]
    fn failover_moves_along_and_wraps() {
        let urls = RegistryUrls::parse_list("http://a:1, http://b:2,,http://c:3").unwrap();
        assert_eq!(urls.len(), 3);
        assert_eq!(urls.current().0, 0);
        urls.failed(0);
        assert_eq!(urls.current().1.as_str(), "http://b:2/eureka/");
        // A stale report about node 0 does not skip node 1.
        urls.failed(0);
        assert_eq!(urls.current().0, 1);
        urls.failed(1);
        urls.failed(2);
        assert_eq!(urls.current().0, 0);
        let order: Vec<usize> = urls.rotation().map(|(i, _)| i).collect();
        assert_eq!(order, vec![0, 1, 2]);
        assert!(RegistryUrls::parse_list(" , ").is_err());
    }
}
