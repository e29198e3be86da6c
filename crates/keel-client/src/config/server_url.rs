//! Config-server URLs, parsed once, and the failover cursor the client moves along.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::Url;

/// One config server: its base URL (`http://host:8888`, or with a path prefix), with any
/// `user:password@` taken out as HTTP Basic credentials, as Spring's client does.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigServerUrl {
    base: Url,
    basic: Option<(String, String)>,
}

impl std::fmt::Debug for ConfigServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_tuple("ConfigServerUrl")
            .field(&self.base.as_str())
            .finish()
    }
}

/// A config-server URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config server URL {url:?}: {reason}")]
pub struct ConfigServerUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl ConfigServerUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigServerUrlError> {
        let err = |reason| ConfigServerUrlError {
            url: raw.to_owned(),
            reason,
        };
        let mut base = Url::parse(raw.trim()).map_err(|_| err("not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(err("scheme must be http or https"));
        }
        if base.host_str().is_none() {
            return Err(err("no host"));
        }
        let basic = (!base.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (
                decode(base.username()),
                decode(base.password().unwrap_or("")),
            )
        });
        // Url refuses these only for cannot-be-a-base URLs, which http(s) never are.
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        base.set_fragment(None);
        let path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&path);
        Ok(Self { base, basic })
    }

    /// `GET {base}/{application}/{profile}[/{label}]`, each segment percent-encoded; a `/` in
    /// a label travels as `(_)`, as Spring's client sends it.
    pub(crate) fn environment(&self, application: &str, profile: &str, label: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(application).push(profile);
            if let Some(label) = label {
                path.push(&label.replace('/', "(_)"));
            }
        }
        url
    }

    /// Keel's watch stream for one (application, profile, label).
    pub(crate) fn watch(&self, application: &str, profile: &str, label: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["keel", "v1", "watch"]);
        }
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("application", application)
                .append_pair("profile", profile);
            if let Some(label) = label {
                q.append_pair("label", label);
            }
        }
        url
    }

    pub(crate) fn basic(&self) -> Option<&(String, String)> {
        self.basic.as_ref()
    }

    pub fn as_str(&self) -> &str {
        self.base.as_str()
    }
}

impl std::fmt::Display for ConfigServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.base.as_str())
    }
}

/// Several config servers and which one is in use; the cursor is shared by clones.
#[derive(Debug, Clone)]
pub struct ConfigServerUrls {
    urls: Arc<[ConfigServerUrl]>,
    current: Arc<AtomicUsize>,
}

impl ConfigServerUrls {
    /// At least one URL is required.
    pub fn new(urls: Vec<ConfigServerUrl>) -> Result<Self, ConfigServerUrlError> {
        if urls.is_empty() {
            return Err(ConfigServerUrlError {
                url: String::new(),
                reason: "at least one config server URL is needed",
            });
        }
        Ok(Self {
            urls: urls.into(),
            current: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Parses a comma-separated list, as `spring.cloud.config.uri` is written.
    pub fn parse_list(raw: &str) -> Result<Self, ConfigServerUrlError> {
        let urls = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(ConfigServerUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(urls)
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The node in use and its index.
    pub fn current(&self) -> (usize, &ConfigServerUrl) {
        let i = self.current.load(Ordering::Relaxed) % self.urls.len();
        (i, &self.urls[i])
    }

    /// Moves past `index` if it is still the node in use (a stale report changes nothing).
    pub(crate) fn failed(&self, index: usize) {
        let next = (index + 1) % self.urls.len();
        let _ = self
            .current
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Makes `index` the node in use (it just answered).
    pub(crate) fn settle(&self, index: usize) {
        self.current.store(index, Ordering::Relaxed);
    }

    /// Every node once, starting with the one in use.
    pub(crate) fn rotation(&self) -> impl Iterator<Item = (usize, &ConfigServerUrl)> {
        let start = self.current().0;
        (0..self.urls.len()).map(move |k| {
            let i = (start + k) % self.urls.len();
            (i, &self.urls[i])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_per_segment_and_credentials_come_out() {
        let u = ConfigServerUrl::parse("http://me:p%40ss@cfg:8888/config/").unwrap();
        assert_eq!(u.as_str(), "http://cfg:8888/config");
        assert_eq!(u.basic(), Some(&("me".to_owned(), "p@ss".to_owned())));
        assert_eq!(
            u.environment("orders", "dev,db", Some("release/1"))
                .as_str(),
            "http://cfg:8888/config/orders/dev,db/release(_)1"
        );
        assert_eq!(
            u.watch("orders", "dev", None).as_str(),
            "http://cfg:8888/config/keel/v1/watch?application=orders&profile=dev"
        );
        let bare = ConfigServerUrl::parse("http://cfg:8888").unwrap();
        assert_eq!(
            bare.environment("a b", "default", None).as_str(),
            "http://cfg:8888/a%20b/default"
        );
        assert!(format!("{u:?}").contains("cfg:8888") && !format!("{u:?}").contains("p@ss"));
        assert!(ConfigServerUrl::parse("ftp://x").is_err());
        assert!(ConfigServerUrls::parse_list(" ,").is_err());
    }

    #[test]
    fn failover_moves_along_and_wraps() {
        let urls = ConfigServerUrls::parse_list("http://a:1,http://b:2").unwrap();
        urls.failed(0);
        assert_eq!(urls.current().0, 1);
        urls.failed(0);
        assert_eq!(urls.current().0, 1);
        urls.failed(1);
        assert_eq!(urls.current().0, 0);
        let order: Vec<usize> = urls.rotation().map(|(i, _)| i).collect();
        assert_eq!(order, vec![0, 1]);
    }
}
