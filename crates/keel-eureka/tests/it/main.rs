//! Integration tests for keel-eureka: snapshots, corpus decoding, round trips, errors, fuzzing.

mod corpus;
mod errors;
mod fixtures;
mod fragments;
mod fuzz;
mod roundtrip;
mod snapshots;
