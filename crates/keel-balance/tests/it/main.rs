//! Integration tests for keel-balance.

mod balancer;
