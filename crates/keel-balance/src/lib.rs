//! Client-side load balancing over a live instance list: strategies, outlier ejection, slow start, retry targeting.
//!
//! The balancer is generic over the endpoint type (an address, a client, a registry record), so the SDK
//! and the gateway feed it from discovery with [`Balancer::update`]. Picks read an `arc-swap` snapshot:
//! no lock and no allocation on the pick path.

mod balancer;
mod config;
mod instance;
mod retry;

pub use balancer::{Balancer, Pick};
pub use config::{BalancerConfig, OutlierConfig, Strategy};
pub use instance::{Instance, InstanceId, InstanceSpec};
pub use retry::{RetryPolicy, Safety};
