//! Semaphore bulkhead: a fail-fast cap on concurrent calls, one atomic add per admission.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::BulkheadFull;

/// Caps concurrent calls (Hystrix `execution.isolation.semaphore.maxConcurrentRequests`, default 10).
/// Full means reject now, never wait: queueing in front of a sick dependency is what bulkheads prevent.
#[derive(Debug)]
pub struct Bulkhead {
    max: AtomicUsize,
    in_flight: AtomicUsize,
}

impl Bulkhead {
    /// A bulkhead admitting at most `max` concurrent calls.
    pub fn new(max: usize) -> Self {
        Bulkhead {
            max: AtomicUsize::new(max),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Takes a permit if one is free.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        self.admit().map(|_| BulkheadPermit { bulkhead: self })
    }

    /// Like [`try_acquire`](Self::try_acquire) for futures that must be `'static`.
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        self.admit().map(|_| OwnedBulkheadPermit {
            bulkhead: Arc::clone(self),
        })
    }

    /// Returns the number in flight after admission.
    #[inline]
    fn admit(&self) -> Result<usize, BulkheadFull> {
        // Optimistic add: one RMW on success; an over-admission is undone at once and is never observable
        // as more than `max` permits held.
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        let max = self.max.load(Ordering::Relaxed);
        if n > max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(BulkheadFull { max });
        }
        Ok(n)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed).min(self.max())
    }

    /// Current limit.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// Changes the limit; permits already held stay valid.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }
}

/// Held while a call runs; dropping it frees the slot.
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
}

impl BulkheadPermit<'_> {
    /// Keeps the slot without the borrow; give it back with [`Bulkhead::release_detached`].
    pub(crate) fn detach(self) {
        std::mem::forget(self);
    }
}

impl Bulkhead {
    /// Frees a slot whose permit was [`detach`](BulkheadPermit::detach)ed.
    pub(crate) fn release_detached(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for BulkheadPermit<'_> {
    fn drop(&mut self) {
        self.bulkhead.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An owned [`BulkheadPermit`].
#[derive(Debug)]
pub struct OwnedBulkheadPermit {
    bulkhead: Arc<Bulkhead>,
}

impl Drop for OwnedBulkheadPermit {
    fn drop(&mut self) {
        self.bulkhead.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
