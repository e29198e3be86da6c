//! Call timeouts armed in a per-thread deadline queue driven by one tokio sleep, instead of one runtime timer per call.
//!
//! Registering a `tokio::time::Sleep` and removing it again costs about 100 ns (the time driver's
//! sharded lock, a heavy entry, a clone of the runtime handle). A timeout layer arms a timer for every
//! call that is pending once, and all its calls share one limit, so their deadlines arrive in
//! non-decreasing order (Netty's `HashedWheelTimer` and Finagle make the same bet). Each thread keeps,
//! per runtime and per limit, a [`Shard`]: a slab of armed timers and a deque of their deadlines in
//! order. Arming pushes at the back, completing frees the slab slot (its deque entry goes stale and is
//! skipped later, no search), and one driver task per shard sleeps (`tokio::time::sleep_until`, so a
//! paused clock auto-advances to it) until the earliest live deadline, marks those timers fired and
//! wakes their tasks. The driver is spawned when the first timer is armed and exits when nothing is
//! left. A call that completes on its first poll never gets here.
//!
//! A shard is `Sync` (a mutex, uncontended in the common case: only its own thread arms timers there)
//! because work-stealing runtimes may move a task, so a timer can be polled or dropped on another
//! thread, and the driver may run anywhere in the runtime. It is keyed by runtime because the driver
//! must sleep on the clock of the runtime the call runs in (a paused test clock only advances to that
//! runtime's timers).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::time::{Instant, Sleep};

/// Shards a thread keeps at most (distinct limits × runtimes); older ones are forgotten, not broken.
const MAX_SHARDS: usize = 16;

thread_local! {
    static SHARDS: RefCell<Vec<Arc<Shard>>> = const { RefCell::new(Vec::new()) };
}

/// A call's timeout: nothing until the guarded future is first pending, then an armed timer.
#[derive(Debug, Default)]
pub(crate) struct Timer(Option<Ticket>);

impl Timer {
    /// An unarmed timer.
    pub(crate) const fn new() -> Self {
        Timer(None)
    }

    /// Whether the timer is armed.
    pub(crate) fn is_armed(&self) -> bool {
        self.0.is_some()
    }

    /// Called after the guarded future returned `Pending`: arms the timer for `deadline` (a call
    /// bounded by `limit`) on the first call, later refreshes the waker. `Ready` once the deadline
    /// has passed; the timer is then disarmed. Reads no clock, and uses no coop budget (a future that
    /// always exhausts the budget still times out).
    #[inline]
    pub(crate) fn poll(
        &mut self,
        deadline: Instant,
        limit: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match &self.0 {
            None => {
                self.0 = Some(Ticket::arm(deadline, limit, cx.waker()));
                Poll::Pending
            }
            Some(t) => {
                let fired = t.poll(cx);
                if fired.is_ready() {
                    self.0 = None;
                }
                fired
            }
        }
    }

    /// Disarms the timer (the call completed); no-op when unarmed.
    #[inline]
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

/// One thread's armed timers of one limit in one runtime.
struct Shard {
    limit: Duration,
    runtime: Id,
    state: Mutex<State>,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held; if something did, the state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shard used for a timer armed on this thread now.
fn shard(limit: Duration, runtime: Id) -> Arc<Shard> {
    let new = || {
        Arc::new(Shard {
            limit,
            runtime,
            state: Mutex::new(State::default()),
        })
    };
    SHARDS
        .try_with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some(s) = shards
                .iter()
                .find(|s| s.limit == limit && s.runtime == runtime)
            {
                return Arc::clone(s);
            }
            // A new runtime on this thread replaces the old one's shard of this limit (the old shard
            // lives on, through its timers and its driver, until they are done).
            let s = new();
            match shards.iter_mut().find(|s| s.limit == limit) {
                Some(old) => *old = Arc::clone(&s),
                None => {
                    if shards.len() == MAX_SHARDS {
                        shards.remove(0);
                    }
                    shards.push(Arc::clone(&s));
                }
            }
            s
        })
        // The thread is exiting: a shard of its own still works.
        .unwrap_or_else(|_| new())
}

#[derive(Default)]
struct State {
    /// Armed timers; a slot's generation moves on when it is freed.
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Deadlines in order (ties in arming order). Entries whose slot moved on are stale and skipped.
    order: VecDeque<Entry>,
    /// The deadline the driver sleeps until, `None` when there is no driver.
    driver_at: Option<Instant>,
    /// Wakes the driver when a timer is armed before `driver_at` (rare: out-of-order arming).
    driver: Option<Waker>,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    waker: Option<Waker>,
    fired: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline: Instant,
    slot: u32,
    generation: u32,
}

impl State {
    fn is_live(&self, e: &Entry) -> bool {
        self.slots[e.slot as usize].generation == e.generation
    }

    fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Drops stale entries at the front.
    fn pop_stale(&mut self) {
        while let Some(e) = self.order.front() {
            if self.is_live(e) {
                break;
            }
            self.order.pop_front();
        }
    }
}

/// What arming a timer asks of the driver.
enum Driver {
    Nothing,
    Spawn,
    Wake(Waker),
}

/// An armed timer: its shard and slab slot.
struct Ticket {
    shard: Arc<Shard>,
    slot: u32,
    generation: u32,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("limit", &self.shard.limit)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Ticket {
    #[cold]
    #[inline(never)]
    fn no_runtime(e: tokio::runtime::TryCurrentError) -> ! {
        panic!("a keel-resilience timeout must be polled inside a tokio runtime: {e}")
    }

    fn arm(deadline: Instant, limit: Duration, waker: &Waker) -> Ticket {
        let rt = Handle::try_current().unwrap_or_else(|e| Self::no_runtime(e));
        let shard = shard(limit, rt.id());
        let mut st = shard.lock();
        st.pop_stale();
        let slot = match st.free.pop() {
            Some(i) => i,
            None => {
                st.slots.push(Slot::default());
                (st.slots.len() - 1) as u32
            }
        };
        let s = &mut st.slots[slot as usize];
        s.waker = Some(waker.clone());
        let entry = Entry {
            deadline,
            slot,
            generation: s.generation,
        };
        match st.order.back() {
            Some(b) if b.deadline > deadline => {
                // Armed out of order (created earlier but first polled later, or moved across threads).
                let at = st.order.partition_point(|e| e.deadline <= deadline);
                st.order.insert(at, entry);
            }
            _ => st.order.push_back(entry),
        }
        // Stale entries behind a long-running call: compact, amortised over the arms that made them.
        if st.order.len() > 2 * st.live() + 64 {
            let State { slots, order, .. } = &mut *st;
            order.retain(|e| slots[e.slot as usize].generation == e.generation);
        }
        let driver = match st.driver_at {
            None => {
                st.driver_at = Some(deadline);
                Driver::Spawn
            }
            Some(at) if deadline < at => {
                st.driver_at = Some(deadline);
                st.driver.take().map_or(Driver::Nothing, Driver::Wake)
            }
            Some(_) => Driver::Nothing,
        };
        drop(st);
        let ticket = Ticket {
            shard,
            slot,
            generation: entry.generation,
        };
        match driver {
            Driver::Nothing => {}
            Driver::Wake(w) => w.wake(),
            Driver::Spawn => ticket.spawn_driver(&rt, deadline),
        }
        ticket
    }

    #[cold]
    #[inline(never)]
    fn spawn_driver(&self, rt: &Handle, deadline: Instant) {
        // The guard first: if there is no time driver, `sleep_until` panics here (as a timeout always
        // did in such a runtime) and the guard lets the next timer try again.
        let guard = DriverGuard(Some(Arc::clone(&self.shard)));
        let sleep = Box::pin(tokio::time::sleep_until(deadline));
        // Detached: it ends by itself once the shard is empty, or with the runtime.
        drop(rt.spawn(Drive {
            guard,
            sleep,
            wake: Vec::new(),
        }));
    }

    /// `Ready` if the driver fired this timer; otherwise keeps the task's waker.
    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.shard.lock();
        let s = &mut st.slots[self.slot as usize];
        debug_assert_eq!(s.generation, self.generation);
        if s.fired {
            return Poll::Ready(());
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => {
                let old = w.replace(cx.waker().clone());
                drop(st);
                drop(old);
            }
        }
        Poll::Pending
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.shard.lock();
        let s = &mut st.slots[self.slot as usize];
        debug_assert_eq!(s.generation, self.generation);
        s.generation = s.generation.wrapping_add(1);
        s.fired = false;
        let waker = s.waker.take();
        st.free.push(self.slot);
        drop(st);
        // A waker's drop may free its task: outside the lock.
        drop(waker);
    }
}

/// Clears the shard's driver if the driver task is dropped before it finished (runtime shutdown).
struct DriverGuard(Option<Arc<Shard>>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take() {
            let mut st = shard.lock();
            st.driver_at = None;
            st.driver = None;
        }
    }
}

/// The driver task of one shard.
struct Drive {
    guard: DriverGuard,
    sleep: Pin<Box<Sleep>>,
    /// Wakers of fired timers, woken outside the lock (kept to reuse its allocation).
    wake: Vec<Waker>,
}

impl Future for Drive {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(shard) = this.guard.0.as_ref() else {
            return Poll::Ready(());
        };
        loop {
            let now = Instant::now();
            let mut st = shard.lock();
            let next = loop {
                let Some(e) = st.order.front().copied() else {
                    break None;
                };
                if st.is_live(&e) {
                    if e.deadline > now {
                        break Some(e.deadline);
                    }
                    let s = &mut st.slots[e.slot as usize];
                    s.fired = true;
                    this.wake.extend(s.waker.take());
                }
                st.order.pop_front();
            };
            let Some(next) = next else {
                // Empty: the next armed timer spawns a new driver.
                st.driver_at = None;
                st.driver = None;
                drop(st);
                this.guard.0 = None;
                this.wake.drain(..).for_each(Waker::wake);
                return Poll::Ready(());
            };
            st.driver_at = Some(next);
            if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.driver = Some(cx.waker().clone());
            }
            drop(st);
            this.wake.drain(..).for_each(Waker::wake);
            if this.sleep.deadline() != next {
                this.sleep.as_mut().reset(next);
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}
