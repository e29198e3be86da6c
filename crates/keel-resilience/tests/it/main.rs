//! Integration tests for keel-resilience, one binary with a module per concern.

mod breaker;
mod command;
mod layers;
mod stream;
mod timeout;
mod window;
