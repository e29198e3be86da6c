//! Chaos harness: containers driven through the `docker` CLI under a unique name prefix (and
//! removed with their networks and volumes on drop, even when a scenario panics), plus a load
//! generator that counts what clients see.

mod docker;
mod load;

pub use docker::{Docker, EngineCheck, engine_check};
pub use load::{Load, LoadCounts};
