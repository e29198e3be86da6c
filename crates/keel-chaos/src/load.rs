//! `Load`: workers sending `GET path` to one address until stopped, counting what a client sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Requests sent and failed (no answer, or a status other than 200).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadCounts {
    pub sent: u64,
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
}

/// Load running in the background.
pub struct Load {
    counters: Arc<Counters>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` loops, each sending a request every `pause` plus the response time.
    pub fn start(target: SocketAddr, path: &str, workers: usize, pause: Duration) -> Self {
        let counters = Arc::new(Counters::default());
        let workers = (0..workers)
            .map(|_| {
                let counters = counters.clone();
                let path = path.to_owned();
                tokio::spawn(async move {
                    while !counters.stop.load(Ordering::Relaxed) {
                        let answer = tokio::time::timeout(
                            Duration::from_secs(10),
                            keel_test_support::get(target, &path),
                        )
                        .await;
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                        let error = match answer {
                            Ok(Ok(r)) if r.status == 200 => None,
                            Ok(Ok(r)) => Some(format!("status {}: {}", r.status, r.body)),
                            Ok(Err(e)) => Some(e.to_string()),
                            Err(_) => Some("no answer within 10s".to_owned()),
                        };
                        if let Some(e) = error {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            *counters
                                .last_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner()) = Some(e);
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self { counters, workers }
    }

    /// Stops the workers and returns the counts and the last error seen.
    pub async fn stop(self) -> (LoadCounts, Option<String>) {
        self.counters.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            let _ = w.await;
        }
        let counts = LoadCounts {
            sent: self.counters.sent.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        };
        let last = self
            .counters
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        (counts, last)
    }
}
