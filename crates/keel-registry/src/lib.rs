//! The registry component: Eureka's REST API over a lease engine with exact expiry, sane
//! self-preservation, never-stale reads and a push watch stream.
//!
//! API boundary: [`Registry`] (the engine: writes, snapshots, delta, change events, replicated
//! operations) and [`router`] (Eureka's routes under `/eureka/` and `/eureka/v2/`, plus
//! `GET /keel/v1/watch`).

mod clock;
mod config;
mod engine;
mod http;

pub use clock::{Clock, SystemClock, TokioClock};
pub use config::{AuthConfig, RegistryConfig, SelfPreservationConfig, UsersFileError};
pub use engine::{
    AppSnapshot, Change, ChangeEvent, Delta, LocalWrite, Origin, PreservationStatus, Record,
    Registry, RenewOutcome, Snapshot, Watch, WatchStart, WriteObserver,
};
pub use http::router;
