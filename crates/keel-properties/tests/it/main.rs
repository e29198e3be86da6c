//! Integration tests for keel-properties: a fixture repository tree through the public API.

mod environment;
mod fixture;
mod renderings;
mod validation;
