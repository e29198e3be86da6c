//! keel-config integration tests: real git repositories, real sockets, real clients.

mod environment;
mod fixture;
mod python;
mod render;
mod support;
