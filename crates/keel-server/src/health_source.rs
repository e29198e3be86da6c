//! Reading a component's health in-process or over HTTP, through one trait.
//!
//! The dashboard and `keel health` read health through [`HealthSource`]. Standalone mode hands
//! them the in-process [`LocalHealthSource`]; separate processes use [`HttpHealthSource`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{HealthRegistry, HealthReport, Shutdown};

/// A boxed future, so that health sources can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum HealthSourceError {
    #[error("invalid health URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url} did not answer within {0:?}", timeout)]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered {status} with a body that is not a health document: {reason}")]
    BadBody {
        url: String,
        status: u16,
        reason: String,
    },
}

/// Where a component's health can be read.
pub trait HealthSource: Send + Sync {
    /// The component's aggregated health. A DOWN component is `Ok` with status DOWN;
    /// `Err` means the health could not be read at all.
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, HealthSourceError>>;
}

/// Reads health from the indicators of this process.
#[derive(Clone, Debug)]
pub struct LocalHealthSource {
    registry: HealthRegistry,
    shutdown: Shutdown,
}

impl LocalHealthSource {
    pub fn new(registry: HealthRegistry, shutdown: Shutdown) -> Self {
        Self { registry, shutdown }
    }
}

impl HealthSource for LocalHealthSource {
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, HealthSourceError>> {
        let report = self.registry.report(self.shutdown.is_ready());
        Box::pin(async move { Ok(report) })
    }
}

/// Reads health from `GET <url>` (normally `http://host:port/actuator/health`).
#[derive(Clone, Debug)]
pub struct HttpHealthSource {
    url: http::Uri,
    timeout: Duration,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl HttpHealthSource {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, HealthSourceError> {
        let bad = |reason: String| HealthSourceError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// URLs are supported".into()));
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            url: uri,
            timeout,
            client,
        })
    }
}

impl HealthSource for HttpHealthSource {
    fn health(&self) -> BoxFuture<'_, Result<HealthReport, HealthSourceError>> {
        Box::pin(async move {
            let url = self.url.to_string();
            let fetch = async {
                let response = self.client.get(self.url.clone()).await.map_err(|e| {
                    HealthSourceError::Unreachable {
                        url: url.clone(),
                        source: Box::new(e),
                    }
                })?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| HealthSourceError::Unreachable {
                        url: url.clone(),
                        source: Box::new(e),
                    })?
                    .to_bytes();
                serde_json::from_slice::<HealthReport>(&body).map_err(|e| {
                    HealthSourceError::BadBody {
                        url: url.clone(),
                        status,
                        reason: e.to_string(),
                    }
                })
            };
            tokio::time::timeout(self.timeout, fetch)
                .await
                .map_err(|_| HealthSourceError::Timeout {
                    url: url.clone(),
                    timeout: self.timeout,
                })?
        })
    }
}
