//! Integration tests for keel-eureka.
