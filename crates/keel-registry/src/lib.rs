//! The registry component: Eureka's REST API over a lease engine with exact expiry, sane
//! self-preservation, never-stale reads and a push watch stream.
//!
//! API boundary: [`Registry`] (the engine: writes, snapshots, delta, change events, replicated
//! operations) and [`router`] (Eureka's routes under `/eureka/` and `/eureka/v2/`, plus
//! `GET /keel/v1/watch`), and [`Cluster`] (replication to peers, start-up sync, anti-entropy;
//! its transport is a [`PeerConnector`] so a simulation can drive it).

mod clock;
mod cluster;
mod config;
mod engine;
mod http;

pub use clock::{Clock, SystemClock, TokioClock};
pub use cluster::{
    Cluster, ClusterConfig, ConnectFuture, NODE_HEADER, PeerConnector, PeerError, PeerIo,
    PeerStatus, PeerUrl, PeerUrlError, PeersDns, PeersDnsError, REPLICATION_HEADER, TcpConnector,
};
pub use config::{AuthConfig, RegistryConfig, SelfPreservationConfig, UsersFileError};
pub use engine::{
    AppSnapshot, Change, ChangeEvent, Delta, LeaseTimes, LocalWrite, Origin, PreservationStatus,
    Record, Registry, RenewOutcome, Snapshot, Watch, WatchStart, WriteObserver,
};
pub use http::router;
