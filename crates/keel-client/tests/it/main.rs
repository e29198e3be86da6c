//! Integration tests of the SDK over real sockets: against the real keel registry served
//! in-process, and against a stand-in Java-Eureka-like server where the registry has no watch.

mod config;
mod config_support;
mod discovery_poll;
mod discovery_watch;
mod lb;
mod registration;
mod support;
