//! Criterion benches of the resilience and balancing hot paths (see `benches/`), built without tokio's `test-util`.
