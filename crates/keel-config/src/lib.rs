//! The config centre: Spring Cloud Config's HTTP API, served from in-memory snapshots of a git
//! repository (or a directory), with push to watchers and last-known-good protection.
//!
//! - [`ConfigServer::start`] opens the backend, loads the first version and refreshes in the
//!   background (timer, webhook, bus); requests never wait for a fetch.
//! - [`router`] serves Spring's routes plus `/keel/v1/{watch,watchers,history,diff,status}`.

mod bus;
mod config;
mod error;
mod git;
mod http;
mod monitor;
mod native;
mod refresh;
mod response_cache;
mod sample;
mod server;
mod snapshot;
mod store;
mod time;
mod watch;

pub use config::{Backend, Clock, ConfigServerConfig, Credentials};
pub use error::ServeError;
pub use http::router;
pub use monitor::{Provider, services};
pub use sample::{SampleRepoError, ensure_sample_repo};
pub use server::{ConfigServer, ConfigServerError};
