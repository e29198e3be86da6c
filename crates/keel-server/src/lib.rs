//! HTTP scaffolding shared by every Keel component: bind, serve, shut down, report health and metrics.
//!
//! Every component exposes `router(state) -> axum::Router`; this crate wraps it with the
//! actuator endpoints, request limits and tracing, and serves it with a graceful shutdown that
//! follows the order documented on [`Shutdown`].

mod bind;
mod h1;
mod health;
mod health_source;
mod limits;
mod metrics;
mod serve;
mod shutdown;
mod spare;
mod spread;

pub use bind::{BoundListener, bind};
pub use h1::RawHeaders;
pub use health::{Health, HealthIndicator, HealthRegistry, HealthReport, Status};
pub use health_source::{HealthSource, HealthSourceError, HttpHealthSource, LocalHealthSource};
pub use limits::HttpLimits;
pub use metrics::{HttpMetrics, MetricsRegistry};
pub use serve::{Common, Handler, app, serve, serve_handler, serve_tls, serve_workers};
pub use shutdown::{Shutdown, ShutdownConfig};
pub use spare::{header_map, recycle_header_map};
