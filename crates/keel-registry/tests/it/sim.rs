//! Deterministic simulation of replication and anti-entropy under turmoil.
