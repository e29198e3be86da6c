//! The Keel SDK: a Rust service joins the platform in a few lines.
//!
//! - [`registration`]: registers this process through Eureka's REST API (so a Java Eureka
//!   server works too), heartbeats, re-registers on 404, and deregisters gracefully.
//! - [`discovery`]: the [`Discovery`] trait and [`RegistryDiscovery`], a cache fed by the
//!   registry's watch stream, or by Eureka delta polling where there is none.
//! - [`http`]: [`LbClient`], an HTTP client for `lb://service/path` URLs whose tower stack is
//!   built in one function, [`http::service_stack`].
//! - [`config`]: [`ConfigClient`], which reads configuration from config servers (failover,
//!   disk cache, watch stream or ETag polling) and hands out typed [`ConfigSnapshot`]s.
//! - [`management`]: the SDK's management routes (`/hystrix.stream`).
//!
//! Every component fails over between several registry URLs ([`RegistryUrls`]).

pub mod config;
pub mod discovery;
pub mod http;
mod instance;
pub mod management;
pub mod registration;
mod registry_url;

pub use config::{ConfigClient, ConfigClientConfig, ConfigServerUrls, ConfigSnapshot};
pub use discovery::{Discovery, DiscoveryConfig, FixedDiscovery, RegistryDiscovery};
pub use http::{LbClient, LbClientConfig};
pub use instance::{Lease, ServiceInstance};
pub use registration::{InstanceConfig, RegistrationAgent, RegistrationConfig};
pub use registry_url::{RegistryUrl, RegistryUrlError, RegistryUrls};

use std::time::Duration;

/// An HTTP client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("build HTTP client: {0}")]
pub struct ClientBuildError(#[from] reqwest::Error);

/// Installs rustls' ring provider once: the workspace builds reqwest without a provider so
/// that aws-lc is never compiled, and reqwest needs one at hand.
pub(crate) fn ensure_crypto_provider() {
    // An Err means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client used to talk to registry nodes: gzip (Eureka gzips `/apps`), short connects.
pub(crate) fn registry_http_client(
    connect_timeout: Duration,
) -> Result<reqwest::Client, ClientBuildError> {
    ensure_crypto_provider();
    Ok(reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .gzip(true)
        .user_agent(concat!("keel-client/", env!("CARGO_PKG_VERSION")))
        .build()?)
}
