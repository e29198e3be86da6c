//! keel-config integration tests: real git repositories, real sockets, real clients.

mod api;
mod backend;
mod bus;
mod change;
mod environment;
mod fixture;
mod hook;
mod python;
mod render;
mod sse;
mod support;
mod traversal;
