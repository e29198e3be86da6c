//! Integration tests for keel-registry: engine under a paused clock, HTTP API, watch, property
//! test, and the real py-eureka-client.

mod cluster;
mod engine;
mod http;
mod prop;
mod py_client;
mod sim;
mod support;
mod watch;
mod wire;
