//! One peer as the cluster sees it: its queue, its sender task's state and its counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::peer_url::PeerUrl;
use super::queue::Queue;

#[derive(Debug)]
pub(crate) struct PeerLink {
    pub url: PeerUrl,
    pub queue: Queue,
    /// Stops this peer's sender (peer removed, or the cluster shut down).
    pub stop: CancellationToken,
    /// The URL turned out to be this very node; nothing is sent to it.
    is_self: AtomicBool,
    /// Whether the last exchange with the peer failed.
    failing: AtomicBool,
    sent: AtomicU64,
    failed_batches: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A peer's replication state, for health details and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    pub url: String,
    /// `ok`, `failing` or `self`.
    pub state: &'static str,
    pub queued: usize,
    pub dropped: u64,
    pub sent: u64,
    pub failed_batches: u64,
    pub last_error: Option<String>,
}

impl PeerLink {
    pub fn new(url: PeerUrl, capacity: usize, stop: CancellationToken) -> Self {
        Self {
            url,
            queue: Queue::new(capacity),
            stop,
            is_self: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn is_self(&self) -> bool {
        self.is_self.load(Ordering::Acquire)
    }

    pub fn mark_self(&self) {
        if !self.is_self.swap(true, Ordering::AcqRel) {
            tracing::info!(peer = %self.url, "peer is this node; not replicating to it");
        }
        self.queue.clear();
    }

    pub fn succeeded(&self, items: usize) {
        self.sent.fetch_add(items as u64, Ordering::Relaxed);
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(peer = %self.url, "peer reachable again");
        }
    }

    pub fn failed(&self, error: String) {
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::warn!(peer = %self.url, error = %error, "replication to peer failing");
        }
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub fn status(&self) -> PeerStatus {
        let state = if self.is_self() {
            "self"
        } else if self.failing.load(Ordering::Acquire) {
            "failing"
        } else {
            "ok"
        };
        PeerStatus {
            url: self.url.to_string(),
            state,
            queued: self.queue.len(),
            dropped: self.queue.dropped(),
            sent: self.sent.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
