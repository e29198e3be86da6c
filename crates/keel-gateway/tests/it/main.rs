//! Gateway integration tests over real sockets; backends are small in-process hyper servers.

mod admin_access;
mod auth;
mod config_routes;
mod cors;
mod limits;
mod protocols;
mod redis_limit;
mod registry;
mod reload;
mod resilience;
mod routing;
mod security;
mod support;
mod tls;
mod upstream_tls;
mod upstream_wire;
