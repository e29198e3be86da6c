//! The SDK's management routes, merged into a service's own router: `/hystrix.stream` over the
//! process's command registry (the one its [`crate::LbClient`] uses).

use keel_resilience::CommandRegistry;

/// `GET /hystrix.stream` (Hystrix Dashboard and Turbine read it as they read a Java service's).
pub fn router(commands: CommandRegistry) -> axum::Router {
    keel_resilience::hystrix::hystrix_stream_router(commands)
}
