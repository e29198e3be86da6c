//! Semaphore bulkhead: a fail-fast cap on concurrent calls, with per-core caches of free permits.
//!
//! One shared in-flight counter would be written by every call on every core, and bounce its cache
//! line between the cores of concurrent callers. Free permits are instead kept, percpu-counter style,
//! in a shared `pool` and in one cache per stripe (`crate::window::thread_stripe`), each on a line of
//! its own, with `pool + Σ caches + in flight == max` at all times (the pool may go negative, a debt,
//! after [`Bulkhead::set_max`] lowered the limit). A call takes a permit from its own stripe's cache,
//! else from the pool, else steals one from another stripe's cache, else is rejected; a finished call
//! puts its permit in the cache of the stripe it was taken on (up to [`CACHE`], then back in the
//! pool), or pays the debt.
//! In the steady state a thread's calls touch only its own stripe's line and read the pool's, which
//! nobody writes. No permit is created out of thin air, so more than `max` calls never hold one, and
//! an idle permit in any cache is found by a caller on any thread (no rejection while one sits idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use crate::error::BulkheadFull;

/// Free permits a stripe's cache keeps before giving them back to the pool.
const CACHE: usize = 64;

/// Stripes a bulkhead has room for (`crate::window::cpu_stripes` is at most this); kept inline, so
/// that a call reaches its stripe without one more pointer to follow.
const MAX_STRIPES: usize = 16;

/// One stripe's cache of free permits. Aligned past a cache line (two, for adjacent-line prefetch)
/// so that stripes written by different threads never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    free: AtomicUsize,
}

/// The shared pool of free permits, with the limit, on lines of their own: every call reads them,
/// and only a refill, an overflow, a steal or [`Bulkhead::set_max`] writes them.
#[derive(Debug)]
#[repr(align(128))]
struct Pool {
    /// Free permits in no stripe's cache; negative = permits owed after the limit was lowered.
    free: AtomicIsize,
    max: AtomicUsize,
}

/// Caps concurrent calls (Hystrix `execution.isolation.semaphore.maxConcurrentRequests`, default 10).
/// Full means reject now, never wait: queueing in front of a sick dependency is what bulkheads prevent.
#[derive(Debug)]
pub struct Bulkhead {
    pool: Pool,
    /// The first `used` are in use.
    stripes: [Stripe; MAX_STRIPES],
    /// A power of two.
    used: usize,
}

impl Bulkhead {
    /// A bulkhead admitting at most `max` concurrent calls.
    pub fn new(max: usize) -> Self {
        Bulkhead {
            pool: Pool {
                free: AtomicIsize::new(clamp(max)),
                max: AtomicUsize::new(max),
            },
            stripes: std::array::from_fn(|_| Stripe::default()),
            used: crate::window::cpu_stripes().min(MAX_STRIPES),
        }
    }

    /// Takes a permit if one is free.
    #[inline]
    pub fn try_acquire(&self) -> Result<BulkheadPermit<'_>, BulkheadFull> {
        let stripe = self.local();
        self.admit(stripe).map(|()| BulkheadPermit {
            bulkhead: self,
            stripe,
        })
    }

    /// Like [`try_acquire`](Self::try_acquire) for futures that must be `'static`.
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        let stripe = self.local();
        self.admit(stripe).map(|()| OwnedBulkheadPermit {
            holder: Holder::Shared(Arc::clone(self), stripe),
        })
    }

    /// This thread's stripe (the number of stripes is a power of two).
    #[inline]
    fn local(&self) -> usize {
        crate::window::thread_stripe() & (self.used - 1)
    }

    /// The stripes in use.
    fn stripes(&self) -> &[Stripe] {
        &self.stripes[..self.used]
    }

    /// Takes one permit for a caller on `stripe`.
    #[inline]
    fn admit(&self, stripe: usize) -> Result<(), BulkheadFull> {
        // No cached permit may be used while the pool is in debt: it is owed to the pool.
        if self.pool.free.load(Ordering::Acquire) >= 0 {
            let own = &self.stripes[stripe % MAX_STRIPES].free;
            let n = own.load(Ordering::Relaxed);
            if n > 0
                && own
                    .compare_exchange(n, n - 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(());
            }
        }
        self.admit_slow()
    }

    #[cold]
    #[inline(never)]
    fn admit_slow(&self) -> Result<(), BulkheadFull> {
        // Twice: permits move between caches and the pool while we look.
        for _ in 0..2 {
            if self.take_from_pool() {
                return Ok(());
            }
            if self.pool.free.load(Ordering::Acquire) < 0 {
                // In debt: every cached permit goes to the pool, which pays what it can.
                self.drain();
                if self.take_from_pool() {
                    return Ok(());
                }
                continue;
            }
            for s in self.stripes() {
                if take_one(&s.free) {
                    return Ok(());
                }
            }
        }
        Err(BulkheadFull { max: self.max() })
    }

    fn take_from_pool(&self) -> bool {
        self.pool
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| {
                (p > 0).then(|| p - 1)
            })
            .is_ok()
    }

    /// Moves every cached permit to the pool.
    fn drain(&self) {
        for s in self.stripes() {
            let n = s.free.swap(0, Ordering::AcqRel);
            if n > 0 {
                self.pool.free.fetch_add(clamp(n), Ordering::AcqRel);
            }
        }
    }

    /// Gives one permit back, to `stripe`'s cache.
    #[inline]
    fn release(&self, stripe: usize) {
        let own = &self.stripes[stripe % MAX_STRIPES].free;
        if self.pool.free.load(Ordering::Relaxed) < 0 || own.load(Ordering::Relaxed) >= CACHE {
            // Pay the debt, or do not hoard.
            self.pool.free.fetch_add(1, Ordering::AcqRel);
        } else {
            own.fetch_add(1, Ordering::Release);
        }
    }

    /// Calls in flight now (exact when no call starts or ends meanwhile; at most [`max`](Self::max)).
    pub fn in_flight(&self) -> usize {
        let max = self.max();
        let free: isize = self.pool.free.load(Ordering::Acquire)
            + self
                .stripes()
                .iter()
                .map(|s| clamp(s.free.load(Ordering::Acquire)))
                .sum::<isize>();
        clamp(max).saturating_sub(free).clamp(0, clamp(max)) as usize
    }

    /// Current limit.
    pub fn max(&self) -> usize {
        self.pool.max.load(Ordering::Relaxed)
    }

    /// Changes the limit; permits already held stay valid (they pay off a lowered limit when they
    /// come back, and no call is admitted until they have).
    pub fn set_max(&self, max: usize) {
        let old = self.pool.max.swap(max, Ordering::AcqRel);
        let delta = clamp(max) - clamp(old);
        self.pool.free.fetch_add(delta, Ordering::AcqRel);
        if delta < 0 {
            // Cached permits must not be handed out while the pool is in debt.
            self.drain();
        }
    }
}

/// Limits beyond `isize::MAX` are as good as unlimited.
fn clamp(n: usize) -> isize {
    n.min(isize::MAX as usize / 2) as isize
}

/// Takes one permit from a cache, if it holds any.
fn take_one(free: &AtomicUsize) -> bool {
    free.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// Held while a call runs; dropping it frees the slot.
#[derive(Debug)]
pub struct BulkheadPermit<'a> {
    bulkhead: &'a Bulkhead,
    /// Where the permit goes back.
    stripe: usize,
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
        self.release(self.local());
    }
}

impl Drop for BulkheadPermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release(self.stripe);
    }
}

/// One per-thread handle on a shared bulkhead (see [`Handles`]). Aligned past a cache line (two,
/// for adjacent-line prefetch): its `Arc`'s reference counts are what a thread's calls write.
#[derive(Debug)]
#[repr(align(128))]
struct Handle {
    bulkhead: Arc<Bulkhead>,
    /// The stripe of the threads using this handle.
    stripe: usize,
}

/// Every permit a layer hands out keeps the bulkhead alive until it is dropped. Cloning the one
/// shared `Arc` for that would bounce its reference count between the cores of concurrent callers
/// (twice per call); each thread clones the handle of its own stripe instead.
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    bulkhead: Arc<Bulkhead>,
    /// One per stripe of the bulkhead.
    handles: Arc<[Arc<Handle>]>,
}

impl Handles {
    pub(crate) fn new(bulkhead: Arc<Bulkhead>) -> Self {
        Handles {
            handles: (0..bulkhead.used)
                .map(|stripe| {
                    Arc::new(Handle {
                        bulkhead: Arc::clone(&bulkhead),
                        stripe,
                    })
                })
                .collect(),
            bulkhead,
        }
    }

    /// Takes a permit, held through this thread's handle.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Result<OwnedBulkheadPermit, BulkheadFull> {
        let stripe = self.bulkhead.local();
        self.bulkhead.admit(stripe)?;
        Ok(OwnedBulkheadPermit {
            holder: Holder::Local(Arc::clone(&self.handles[stripe])),
        })
    }
}

#[derive(Debug)]
enum Holder {
    /// The bulkhead and the stripe to give the permit back to.
    Shared(Arc<Bulkhead>, usize),
    Local(Arc<Handle>),
}

/// An owned [`BulkheadPermit`].
#[derive(Debug)]
pub struct OwnedBulkheadPermit {
    holder: Holder,
}

impl Drop for OwnedBulkheadPermit {
    #[inline]
    fn drop(&mut self) {
        match &self.holder {
            Holder::Shared(b, stripe) => b.release(*stripe),
            Holder::Local(h) => h.bulkhead.release(h.stripe),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bulkhead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    /// Permits a thread takes, releases (some on another thread) and takes again, with `held`
    /// counting what is held at once.
    #[test]
    fn striped_permits_never_exceed_max_and_idle_ones_are_found() {
        for max in [1, 2, 10] {
            let b = Arc::new(Bulkhead::new(max));
            let held = AtomicUsize::new(0);
            let peak = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..6 {
                    let (b, held, peak) = (&b, &held, &peak);
                    s.spawn(move || {
                        for i in 0..20_000 {
                            if let Ok(p) = b.try_acquire() {
                                let n = held.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(n, Ordering::SeqCst);
                                assert!(n <= max, "{n} held with max {max}");
                                if i % 7 == 0 {
                                    std::thread::yield_now();
                                }
                                held.fetch_sub(1, Ordering::SeqCst);
                                drop(p);
                            }
                        }
                    });
                }
            });
            assert_eq!(b.in_flight(), 0);
            // Wherever the permits ended up cached, exactly `max` are admitted again, from any thread.
            for threads in [1, 3] {
                let got = AtomicUsize::new(0);
                let go = Barrier::new(threads);
                let permits = std::sync::Mutex::new(Vec::new());
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let (b, got, go, permits) = (&b, &got, &go, &permits);
                        s.spawn(move || {
                            go.wait();
                            let mine: Vec<_> =
                                std::iter::from_fn(|| b.try_acquire_owned().ok()).collect();
                            got.fetch_add(mine.len(), Ordering::SeqCst);
                            permits.lock().unwrap().extend(mine);
                        });
                    }
                });
                assert_eq!(
                    got.load(Ordering::SeqCst),
                    max,
                    "{threads} threads, max {max}"
                );
                assert_eq!(b.in_flight(), max);
                assert!(b.try_acquire().is_err());
                // Released on other threads than they were taken on.
                std::thread::scope(|s| {
                    let mut all = std::mem::take(&mut *permits.lock().unwrap());
                    let half = all.split_off(max / 2);
                    s.spawn(move || drop(all));
                    s.spawn(move || drop(half));
                });
                assert_eq!(b.in_flight(), 0);
            }
        }
    }

    #[test]
    fn set_max_up_and_down() {
        let b = Bulkhead::new(4);
        // Permits cached in this thread's stripe.
        drop((0..4).map(|_| b.try_acquire().unwrap()).collect::<Vec<_>>());
        let held: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
        assert_eq!(b.in_flight(), 3);
        b.set_max(2);
        assert_eq!(b.max(), 2);
        // Three held over a limit of two: none admitted until two came back.
        assert!(b.try_acquire().is_err(), "cached permit used despite debt");
        let mut held = held.into_iter();
        drop(held.next());
        assert!(b.try_acquire().is_err());
        drop(held.next());
        let one = b.try_acquire().expect("one below the limit");
        assert!(b.try_acquire().is_err());
        assert_eq!(b.in_flight(), 2);
        drop((one, held));
        assert_eq!(b.in_flight(), 0);
        b.set_max(5);
        let five: Vec<_> = std::iter::from_fn(|| b.try_acquire().ok()).collect();
        assert_eq!(five.len(), 5);
        assert_eq!(b.in_flight(), 5);
        drop(five);
        // Lowered while everything sits in caches, on another thread too.
        std::thread::scope(|s| {
            s.spawn(|| drop((0..3).map(|_| b.try_acquire().unwrap()).collect::<Vec<_>>()));
        });
        b.set_max(1);
        assert_eq!(b.in_flight(), 0);
        let one = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_err());
        drop(one);
        b.set_max(0);
        assert!(b.try_acquire().is_err());
        assert_eq!(b.in_flight(), 0);
    }
}
