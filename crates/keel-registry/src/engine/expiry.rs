//! Lease expiry with millisecond precision: a deadline heap driven by `tokio::time`.
//!
//! Renewals never touch the heap; they move a lease's deadline by updating an atomic. When a
//! heap entry comes due, the driver re-reads the lease's real deadline and either re-queues
//! it or expires it, so each lease costs one heap operation per lease duration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::Inner;
use super::lease::Lease;

/// How often self-preservation is re-evaluated.
const TICK_MS: u64 = 500;

#[derive(Debug)]
struct Due {
    at: u64,
    seq: u64,
    lease: Arc<Lease>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Debug)]
pub(crate) struct Expiry {
    heap: Mutex<BinaryHeap<Reverse<Due>>>,
    seq: AtomicU64,
    notify: Arc<Notify>,
}

impl Expiry {
    pub fn new() -> Self {
        Self {
            heap: Mutex::new(BinaryHeap::new()),
            seq: AtomicU64::new(0),
            notify: Arc::new(Notify::new()),
        }
    }

    pub fn schedule(&self, at: u64, lease: Arc<Lease>) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let earlier = heap.peek().is_none_or(|Reverse(d)| at < d.at);
        heap.push(Reverse(Due { at, seq, lease }));
        drop(heap);
        if earlier {
            self.notify.notify_one();
        }
    }

    fn next_due(&self) -> Option<u64> {
        let heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        heap.peek().map(|Reverse(d)| d.at)
    }

    fn pop_due(&self, now: u64) -> Vec<Arc<Lease>> {
        let mut heap = self.heap.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(d)) = heap.pop() {
                due.push(d.lease);
            }
        }
        due
    }
}

/// Starts the driver. It holds the registry weakly and stops once the registry is dropped.
pub(crate) fn spawn_driver(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let notify = inner.expiry.notify.clone();
    tokio::spawn(drive(weak, notify));
}

async fn drive(weak: Weak<Inner>, notify: Arc<Notify>) {
    let mut next_tick = 0u64;
    loop {
        let wake = {
            let Some(inner) = weak.upgrade() else { return };
            let now = inner.now_ms();
            if now >= next_tick {
                inner.evaluate_preservation(now);
                next_tick = now + TICK_MS;
            }
            inner.expire_due(now);
            let wake = inner
                .expiry
                .next_due()
                .map_or(next_tick, |d| d.min(next_tick));
            inner.epoch + Duration::from_millis(wake)
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = notify.notified() => {}
        }
    }
}

impl Inner {
    fn evaluate_preservation(&self, now: u64) {
        let (status, flipped) = self.preservation.evaluate(&self.index, now);
        self.metrics.record_preservation(&status);
        if flipped && status.engaged {
            tracing::warn!(
                instances = status.instances,
                expected_per_minute = status.expected_per_minute,
                arriving_per_minute = status.arriving_per_minute,
                threshold = status.threshold,
                "self-preservation engaged: renewals fell below the threshold; leases are not expired"
            );
        } else if flipped {
            tracing::info!(
                instances = status.instances,
                arriving_per_minute = status.arriving_per_minute,
                "self-preservation disengaged: expiring overdue leases again"
            );
        }
    }

    fn expire_due(&self, now: u64) {
        let mut evaluated = false;
        for lease in self.expiry.pop_due(now) {
            if lease.is_removed() {
                continue;
            }
            let deadline = lease.deadline();
            if deadline > now {
                self.expiry.schedule(deadline, lease);
                continue;
            }
            // A real expiry: decide with fresh renewal figures, once per wake-up.
            if !evaluated {
                self.evaluate_preservation(now);
                evaluated = true;
            }
            let held_until = deadline.saturating_add(self.preservation.max_hold_ms());
            if self.preservation.is_engaged() && now < held_until {
                self.expiry.schedule(held_until.min(now + TICK_MS), lease);
                continue;
            }
            self.expire(&lease, now);
        }
    }
}
