//! Why one attempt to read the registry failed (the updater logs it and fails over).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: keel_eureka::DecodeError,
    },
    #[error("{url}: no data for {idle:?}, presumed dead")]
    Idle { url: String, idle: Duration },
    #[error("{url}: the stream ended before its snapshot")]
    EndedEarly { url: String },
}
