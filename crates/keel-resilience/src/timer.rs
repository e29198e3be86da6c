//! Call timeouts armed in a per-thread deadline queue driven by one tokio sleep, instead of one runtime timer per call.
//!
//! Registering a `tokio::time::Sleep` and removing it again costs about 100 ns (the time driver's
//! sharded lock, a heavy entry, a clone of the runtime handle). A timeout layer arms a timer for every
//! call that is pending once, and all its calls share one limit, so their deadlines arrive in
//! non-decreasing order (Netty's `HashedWheelTimer` and Finagle make the same bet). Each thread keeps,
//! per runtime and per limit, a [`Shard`]: slots for armed timers and a deque of their deadlines in
//! order. Arming takes the shard's lock (uncontended in the common case: only its own thread arms
//! there) and pushes at the back. One driver task per shard sleeps (`tokio::time::sleep_until`, so a
//! paused clock auto-advances to it) until the earliest live deadline, fires those timers and wakes
//! their tasks; it is spawned when the first timer is armed and exits when nothing is left. A call
//! that completes on its first poll never gets here.
//!
//! Disarming (the call completed, or was dropped) takes no lock: one compare-and-swap on the slot's
//! state claims it back from the driver. The slot, its deque entry and the task's waker are reclaimed
//! later under the lock, by the next arms (a few entries from the front of the deque, where the oldest
//! calls are), by a sweep when the deque has grown, or by the driver when it reaches them, by the
//! deadline at the latest. Only a timer that actually fired goes through the lock to be freed.
//!
//! A task making calls one after another (the common case) arms each timer after the last one was
//! disarmed: the new timer re-arms that slot without the lock. The thread remembers the timer its
//! task armed last (slot, word, deadline, waker); one compare-and-swap on the slot's word, against
//! the driver's reclaiming it, takes the slot back, and the new deadline (no earlier than the old) is
//! stored in the slot. The deque entry stays where it is, with the deadline it was queued with: a
//! lower bound, so the driver wakes no later than the timer's deadline, and when it reaches an entry
//! whose slot now has a later deadline it moves the entry back to where that deadline belongs. No
//! slot changes hands, nothing is reclaimed, and the kept waker stays (the fast path is taken only
//! for the same task and waker; a waker change moves the slot's arming sequence on). Under the lock,
//! a timer armed by another task takes over the disarmed entry at the back of the deque the same way.
//!
//! Deadlines are nanoseconds on the crate's one clock origin (`crate::clock`), so that arming,
//! firing and the breaker's window share one reading of the clock per call and compare plain integers.
//!
//! Finding the runtime clones its handle (two atomic operations on a line all its workers share), so
//! the runtime and shard are remembered per thread for the task that last armed a timer: task ids are
//! never reused, and a task runs in the runtime it was spawned on. (A `LocalSet` driven by one runtime and later by
//! another would keep its tasks' timers on the first one's queue.)
//!
//! Shards are never freed, so a timer holds a plain `&'static` reference to its shard and slot (no
//! reference count to bump per call). A shard a thread lets go of (the thread exits, or moves to
//! another runtime) goes to a global pool and is handed to the next thread that needs one, once it has
//! drained; the number of shards is bounded by the peak of threads × limits × runtimes in use at once.
//!
//! A shard is `Sync` because work-stealing runtimes may move a task, so a timer can be polled or
//! dropped on another thread, and the driver may run anywhere in the runtime. It is keyed by runtime
//! because the driver must sleep on the clock of the runtime the call runs in (a paused test clock
//! only advances to that runtime's timers).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, RawWakerVTable, Waker};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::task;
use tokio::time::Sleep;

use crate::clock;
use try_lock::{Locked, TryLock};

/// Shards a thread keeps at most (distinct limits × runtimes); older ones go back to the pool.
const MAX_SHARDS: usize = 16;

/// Shards no thread holds; each is reused once it has drained (or at once by a thread wanting its key).
static POOL: Mutex<Vec<&'static Shard>> = Mutex::new(Vec::new());

/// This thread's shards, by limit and runtime. Returned to the pool when the thread exits.
struct Local(Vec<(Duration, Id, &'static Shard)>);

impl Drop for Local {
    fn drop(&mut self) {
        LAST.set(None);
        RECENT.set(None);
        let mut pool = lock(&POOL);
        pool.extend(self.0.drain(..).map(|(_, _, s)| s));
    }
}

/// What the task that last armed a timer on this thread armed it in (see the module docs).
#[derive(Clone, Copy)]
struct Last {
    task: task::Id,
    runtime: Id,
    limit: Duration,
    /// One of this thread's shards (cleared when it lets go of it).
    shard: &'static Shard,
}

thread_local! {
    static SHARDS: RefCell<Local> = const { RefCell::new(Local(Vec::new())) };
    static LAST: Cell<Option<Last>> = const { Cell::new(None) };
}

/// The shard for a timer of `limit` armed now, and the runtime's handle if it had to be looked up.
#[inline]
fn shard_for(limit: Duration) -> (&'static Shard, Option<Handle>) {
    let task = task::try_id();
    if let Some(t) = task
        && let Some(last) = LAST.get()
        && last.task == t
    {
        if last.limit == limit {
            return (last.shard, None);
        }
        let (shard, own) = shard(limit, last.runtime);
        LAST.set(own.then_some(Last {
            limit,
            shard,
            ..last
        }));
        return (shard, None);
    }
    let handle = Handle::try_current().unwrap_or_else(|e| no_runtime(e));
    let runtime = handle.id();
    let (shard, own) = shard(limit, runtime);
    if let Some(task) = task
        && own
    {
        LAST.set(Some(Last {
            task,
            runtime,
            limit,
            shard,
        }));
    }
    (shard, Some(handle))
}

#[cold]
#[inline(never)]
fn no_runtime(e: tokio::runtime::TryCurrentError) -> ! {
    panic!("a keel-resilience timeout must be polled inside a tokio runtime: {e}")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; if something did, the state is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Called after the guarded future returned `Pending`: arms the timer for `deadline` (nanoseconds
    /// on the clock's origin, for a call bounded by `limit`) on the first call, later refreshes the
    /// waker. `Ready` once the deadline has passed; the timer is then disarmed. Reads no clock, and
    /// uses no coop budget (a future that always exhausts the budget still times out).
    #[inline]
    pub(crate) fn poll(
        &mut self,
        deadline: u64,
        limit: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        match &mut self.0 {
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

// A slot's word packs its generation (the high 32 bits, moved on each time the slot is freed, so that
// a deque entry of an earlier use is seen as stale), an arming sequence (moved on each re-arm and each
// change of the kept waker, so that nobody acts on a reading of an earlier arming) and its state.
//
// A slot's life: FREE (on the free list, or never used) → ARMED by `arm_new`, under the lock. Then
// either the timer's owner disarms it without the lock, ARMED → DEAD; or the driver fires it under the
// lock, ARMED → FIRED (taking the waker), and the owner frees it under the lock. The one
// compare-and-swap each side makes on ARMED decides between them. A DEAD slot is either reclaimed
// under the lock once its deque entry is reached (DEAD → FREE, with the waker the shard kept for it),
// or re-armed, by the thread that armed it last without the lock (`Ticket::arm`'s fast path) or by
// `rearm_back` under it: DEAD → ARMING, the new deadline is stored, → ARMED. Again one
// compare-and-swap on DEAD decides between reclaiming and re-arming.
const FREE: u64 = 0;
const ARMED: u64 = 1;
const FIRED: u64 = 2;
const DEAD: u64 = 3;
/// Being re-armed: its deadline is being written (a few instructions; the driver waits).
const ARMING: u64 = 4;
const STATE: u64 = 0b111;
const SEQ: u64 = 0xffff_fff8;
const GEN_SHIFT: u32 = 32;

fn state(word: u64) -> u64 {
    word & STATE
}

fn generation(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32
}

fn with_state(word: u64, state: u64) -> u64 {
    (word & !STATE) | state
}

/// The same slot and generation, a new arming sequence.
fn next_seq(word: u64) -> u64 {
    (word & !SEQ) | (word.wrapping_add(STATE + 1) & SEQ)
}

/// Free, with the next generation.
fn freed(word: u64) -> u64 {
    with_state(word, FREE).wrapping_add(1 << GEN_SHIFT)
}

struct Slot {
    word: AtomicU64,
    /// The deadline while armed (nanoseconds on the clock's origin): written before the word says
    /// ARMED, by whoever owns the slot then (under the lock, or in the ARMING state).
    deadline: AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            word: AtomicU64::new(FREE),
            deadline: AtomicU64::new(0),
        }
    }

    /// Re-arms a slot last seen as `dead` for `deadline`; the armed word, or `None` if it has moved
    /// on (reclaimed, or re-armed by someone else).
    #[inline]
    fn rearm(&self, dead: u64, deadline: u64) -> Option<u64> {
        self.word
            .compare_exchange(
                dead,
                with_state(dead, ARMING),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        self.deadline.store(deadline, Ordering::Relaxed);
        let armed = with_state(next_seq(dead), ARMED);
        self.word.store(armed, Ordering::Release);
        Some(armed)
    }
}

/// Slots of the first segment; segment `k` has `SEGMENT << k`, so 27 of them cover `u32` indices.
const SEGMENT: usize = 32;
const SEGMENTS: usize = 27;

/// Slots at addresses that never move, so a timer can reach its own without the lock.
struct Slots([OnceLock<Box<[Slot]>>; SEGMENTS]);

impl Slots {
    fn locate(i: u32) -> (usize, usize) {
        let j = i as usize + SEGMENT;
        let k = (j.ilog2() - SEGMENT.ilog2()) as usize;
        (k, j - (SEGMENT << k))
    }

    /// Slot `i`, allocated under the lock before its index was handed out.
    fn get(&self, i: u32) -> &Slot {
        let (k, at) = Self::locate(i);
        &self.0[k].get().expect("slot allocated")[at]
    }

    /// Slot `i`, allocating its segment (under the lock).
    fn alloc(&self, i: u32) -> &Slot {
        let (k, at) = Self::locate(i);
        &self.0[k].get_or_init(|| (0..SEGMENT << k).map(|_| Slot::new()).collect())[at]
    }
}

/// Armed timers of one limit in one runtime, mostly one thread's. Aligned past a cache line (two,
/// for adjacent-line prefetch) so that two threads' shards never share one.
#[repr(align(128))]
struct Shard {
    /// Mostly taken by one thread, briefly: a lock whose release is a plain store (a std mutex's
    /// release is an atomic swap, as costly as its acquisition).
    state: TryLock<State>,
    slots: Slots,
}

#[derive(Default)]
struct State {
    /// The limit and runtime this shard serves.
    key: Option<(Duration, Id)>,
    /// The task waker of each slot, while armed or disarmed but not yet reclaimed.
    wakers: Vec<Option<Waker>>,
    free: Vec<u32>,
    /// Deadlines in order (ties in arming order), each no later than its slot's deadline: a slot
    /// re-armed since it was queued has a later one, and is moved back when the driver reaches it.
    /// Entries of disarmed timers stay until reached.
    order: VecDeque<Entry>,
    /// Sweep the whole deque for disarmed entries once it grows past this.
    sweep_at: usize,
    /// The deadline the driver sleeps until, `None` when there is no driver. There is one whenever
    /// the deque is not empty.
    driver_at: Option<u64>,
    /// Wakes the driver when a timer is armed before `driver_at` (rare: out-of-order arming).
    driver: Option<Waker>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    deadline: u64,
    slot: u32,
    generation: u32,
}

/// At most this many disarmed entries are reclaimed per arm (each arm adds one), so that their
/// wakers fit on the stack. Reclaimed wakers are always dropped once the lock is released: a waker's
/// drop may free its task, and with it a timer that takes the lock.
const RECLAIM_PER_ARM: usize = 4;

/// Retries `attempt` until it gives a value: spinning a little, then yielding (whoever holds things
/// up is a few instructions from done, unless it was preempted).
fn spin_until<T>(mut attempt: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Waits out a slot's ARMING state (its re-armer writes a deadline and a word, without the lock).
#[cold]
fn wait_armed(slot: &Slot) -> u64 {
    spin_until(|| {
        let w = slot.word.load(Ordering::Acquire);
        (state(w) != ARMING).then_some(w)
    })
}

impl Shard {
    fn new(key: (Duration, Id)) -> &'static Shard {
        Box::leak(Box::new(Shard {
            state: TryLock::new(State {
                key: Some(key),
                ..State::default()
            }),
            slots: Slots(std::array::from_fn(|_| OnceLock::new())),
        }))
    }

    fn lock(&self) -> Locked<'_, State> {
        // Held for a few hundred instructions at most.
        spin_until(|| self.state.try_lock())
    }

    /// Frees slot `i`, whose word was `word`, under the lock; its waker, if still kept.
    fn free(st: &mut State, slot: &Slot, i: u32, word: u64) -> Option<Waker> {
        slot.word.store(freed(word), Ordering::Relaxed);
        st.free.push(i);
        st.wakers[i as usize].take()
    }

    /// Under the lock: `Ok` with the slot's word and deadline if the entry is still armed. Otherwise
    /// it is to be dropped: a disarmed timer's slot is freed, and its waker returned.
    #[inline]
    fn armed(&self, st: &mut State, e: &Entry) -> Result<(u64, u64), Option<Waker>> {
        let slot = self.slots.get(e.slot);
        let mut w = slot.word.load(Ordering::Acquire);
        loop {
            if generation(w) != e.generation {
                return Err(None);
            }
            match state(w) {
                ARMED => return Ok((w, slot.deadline.load(Ordering::Relaxed))),
                // Reclaim it, unless its last owner re-arms it first.
                DEAD => match slot.word.compare_exchange(
                    w,
                    freed(w),
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        st.free.push(e.slot);
                        return Err(st.wakers[e.slot as usize].take());
                    }
                    Err(now) => w = now,
                },
                ARMING => w = wait_armed(slot),
                // Fired entries leave the deque when fired.
                _ => return Err(None),
            }
        }
    }

    /// Drops a few entries of disarmed timers from the front (under the lock).
    #[inline]
    fn pop_stale(&self, st: &mut State, dead: &mut [Option<Waker>; RECLAIM_PER_ARM]) {
        for d in dead {
            let Some(e) = st.order.front().copied() else {
                return;
            };
            match self.armed(st, &e) {
                Ok(_) => return,
                Err(w) => *d = w,
            }
            st.order.pop_front();
        }
    }

    /// Drops every entry of a disarmed timer (under the lock), when a long-running call at the front
    /// holds many behind it.
    #[cold]
    fn sweep(&self, st: &mut State) -> Vec<Waker> {
        let mut dead = Vec::new();
        let mut order = std::mem::take(&mut st.order);
        order.retain(|e| match self.armed(st, e) {
            Ok(_) => true,
            Err(w) => {
                dead.extend(w);
                false
            }
        });
        st.order = order;
        st.sweep_at = 2 * st.order.len() + 64;
        dead
    }
}

/// A shard of this key for a thread that has none: one of the pool's, or a new one.
fn claim(limit: Duration, runtime: Id) -> &'static Shard {
    let key = Some((limit, runtime));
    let mut pool = lock(&POOL);
    let at = pool.iter().position(|s| s.lock().key == key).or_else(|| {
        // One with nothing queued and no driver can serve a new key.
        pool.iter().position(|s| {
            let mut st = s.lock();
            let mut dead = Vec::new();
            while let Some(e) = st.order.front().copied() {
                match s.armed(&mut st, &e) {
                    Ok(_) => break,
                    Err(w) => dead.extend(w),
                }
                st.order.pop_front();
            }
            let drained = st.order.is_empty() && st.driver_at.is_none();
            if drained {
                st.key = key;
            }
            drop(st);
            drained
        })
    });
    match at {
        Some(i) => pool.swap_remove(i),
        None => Shard::new((limit, runtime)),
    }
}
/// The shard used for a timer armed on this thread now, and whether it is one of this thread's own.
fn shard(limit: Duration, runtime: Id) -> (&'static Shard, bool) {
    SHARDS
        .try_with(|shards| {
            let mut shards = shards.borrow_mut();
            let shards = &mut shards.0;
            if let Some(&(_, _, s)) = shards.iter().find(|(l, r, _)| *l == limit && *r == runtime) {
                return (s, true);
            }
            // A new runtime on this thread replaces the old one's shard of this limit (the old shard
            // goes to the pool; its timers and its driver carry on until they are done).
            let s = claim(limit, runtime);
            let old = match shards.iter_mut().find(|(l, _, _)| *l == limit) {
                Some(old) => Some(std::mem::replace(old, (limit, runtime, s))),
                None => {
                    let old = (shards.len() == MAX_SHARDS).then(|| shards.remove(0));
                    shards.push((limit, runtime, s));
                    old
                }
            };
            if let Some((_, _, old)) = old {
                if LAST.get().is_some_and(|l| std::ptr::eq(l.shard, old)) {
                    LAST.set(None);
                }
                lock(&POOL).push(old);
            }
            (s, true)
        })
        // The thread is exiting: use a pool shard and leave it there for others.
        .unwrap_or_else(|_| {
            let s = claim(limit, runtime);
            lock(&POOL).push(s);
            (s, false)
        })
}

/// What arming a timer asks of the driver.
enum Driver {
    Nothing,
    Spawn,
    Wake(Waker),
}

/// An armed timer: its shard and slot, and the slot's word as armed.
struct Ticket {
    shard: &'static Shard,
    slot: &'static Slot,
    index: u32,
    word: u64,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("slot", &self.index)
            .finish_non_exhaustive()
    }
}

/// The timer armed last on this thread, by a task: the next timer that task arms with the same limit
/// and waker, once this one is disarmed, re-arms its slot without the lock (see `Ticket::arm`).
#[derive(Clone, Copy)]
struct Recent {
    task: task::Id,
    limit: Duration,
    shard: &'static Shard,
    slot: &'static Slot,
    index: u32,
    /// The word it was armed with.
    word: u64,
    deadline: u64,
    /// The waker the shard keeps for the slot (compared, never used: `Waker::will_wake`'s test).
    waker: (*const (), *const RawWakerVTable),
}

thread_local! {
    static RECENT: Cell<Option<Recent>> = const { Cell::new(None) };
}

fn waker_id(w: &Waker) -> (*const (), *const RawWakerVTable) {
    (w.data(), w.vtable())
}

impl Ticket {
    #[inline]
    fn arm(deadline: u64, limit: Duration, waker: &Waker) -> Ticket {
        // A task making calls one after another: its last timer's slot, disarmed since, is armed
        // again for the later deadline. Its deque entry stays where it is; the driver, which sleeps
        // until no later than the entry's deadline, moves it back when it gets there.
        if let Some(r) = RECENT.get()
            && r.limit == limit
            && deadline >= r.deadline
            && r.waker == waker_id(waker)
            && task::try_id() == Some(r.task)
            && let Some(word) = r.slot.rearm(with_state(r.word, DEAD), deadline)
        {
            RECENT.set(Some(Recent {
                word,
                deadline,
                ..r
            }));
            return Ticket {
                shard: r.shard,
                slot: r.slot,
                index: r.index,
                word,
            };
        }
        Self::arm_locked(deadline, limit, waker)
    }

    /// [`arm`](Self::arm) under the shard's lock.
    #[inline(never)]
    fn arm_locked(deadline: u64, limit: Duration, waker: &Waker) -> Ticket {
        let (shard, handle) = shard_for(limit);
        let mut st = shard.lock();
        let (ticket, old) = match Self::rearm_back(shard, &mut st, deadline, waker) {
            Some(armed) => {
                drop(st);
                // A waker's drop may free its task, and with it a timer that takes this lock.
                armed
            }
            None => (Self::arm_new(shard, handle, st, deadline, waker), None),
        };
        drop(old);
        if let Some(task) = task::try_id() {
            RECENT.set(Some(Recent {
                task,
                limit,
                shard,
                slot: ticket.slot,
                index: ticket.index,
                word: ticket.word,
                deadline,
                waker: waker_id(waker),
            }));
        }
        ticket
    }

    /// [`arm`](Self::arm) with a slot of its own and a new deque entry (under the lock, released here).
    #[inline(never)]
    fn arm_new(
        shard: &'static Shard,
        handle: Option<Handle>,
        mut st: Locked<'_, State>,
        deadline: u64,
        waker: &Waker,
    ) -> Ticket {
        let mut dead: [Option<Waker>; RECLAIM_PER_ARM] = Default::default();
        shard.pop_stale(&mut st, &mut dead);
        let (index, slot) = match st.free.pop() {
            Some(i) => (i, shard.slots.get(i)),
            None => {
                let i = u32::try_from(st.wakers.len()).expect("fewer than 2^32 timers");
                st.wakers.push(None);
                (i, shard.slots.alloc(i))
            }
        };
        st.wakers[index as usize] = Some(waker.clone());
        // Free slots are touched under the lock only.
        let word = with_state(slot.word.load(Ordering::Relaxed), ARMED);
        slot.deadline.store(deadline, Ordering::Relaxed);
        slot.word.store(word, Ordering::Release);
        let entry = Entry {
            deadline,
            slot: index,
            generation: generation(word),
        };
        match st.order.back() {
            Some(b) if b.deadline > deadline => {
                // Armed out of order (created earlier but first polled later, or moved across threads).
                let at = st.order.partition_point(|e| e.deadline <= deadline);
                st.order.insert(at, entry);
            }
            _ => st.order.push_back(entry),
        }
        // Disarmed entries behind a long-running call: swept, amortised over the arms that made them.
        let swept = (st.order.len() > st.sweep_at).then(|| shard.sweep(&mut st));
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
        drop(dead);
        drop(swept);
        // Made before the driver is spawned: if spawning panics, unwinding disarms it.
        let ticket = Ticket {
            shard,
            slot,
            index,
            word,
        };
        match driver {
            Driver::Nothing => {}
            Driver::Wake(w) => w.wake(),
            Driver::Spawn => {
                let rt = handle
                    .unwrap_or_else(|| Handle::try_current().unwrap_or_else(|e| no_runtime(e)));
                spawn_driver(shard, &rt, deadline);
            }
        }
        ticket
    }

    /// Under the lock: when the timer armed last here has been disarmed since (calls made one after
    /// another by tasks taking turns on a thread), its entry at the back of the deque is armed again
    /// for `deadline` instead of being reclaimed and replaced, and keeps `waker`. Returns the waker
    /// it kept before, to be dropped once the lock is released.
    #[inline]
    fn rearm_back(
        shard: &'static Shard,
        st: &mut State,
        deadline: u64,
        waker: &Waker,
    ) -> Option<(Ticket, Option<Waker>)> {
        let back = *st.order.back()?;
        let slot = shard.slots.get(back.slot);
        let w = slot.word.load(Ordering::Acquire);
        // A stale entry's slot has moved on (or is free): its generation tells. The entry's deadline
        // must stay no later than the slot's. No driver (its spawning panicked: a runtime without
        // time): leave it to `arm_new`, which tries again.
        if back.deadline > deadline
            || generation(w) != back.generation
            || state(w) != DEAD
            || st.driver_at.is_none()
        {
            return None;
        }
        let word = slot.rearm(w, deadline)?;
        let kept = &mut st.wakers[back.slot as usize];
        let old = match kept {
            Some(k) if k.will_wake(waker) => None,
            _ => kept.replace(waker.clone()),
        };
        let ticket = Ticket {
            shard,
            slot,
            index: back.slot,
            word,
        };
        Some((ticket, old))
    }

    /// `Ready` if the driver fired this timer; otherwise keeps the task's waker.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if state(self.slot.word.load(Ordering::Acquire)) == FIRED {
            return Poll::Ready(());
        }
        let mut st = self.shard.lock();
        // The driver fires under the lock: this reading stands until it is released.
        if state(self.slot.word.load(Ordering::Acquire)) == FIRED {
            return Poll::Ready(());
        }
        let kept = &mut st.wakers[self.index as usize];
        let old = match kept {
            Some(w) if w.will_wake(cx.waker()) => None,
            _ => {
                // A new waker: whoever remembers the old one must not re-arm without the lock.
                // Only the driver (under the lock) or this owner change an armed slot's word.
                let word = next_seq(self.word);
                self.slot.word.store(word, Ordering::Release);
                self.word = word;
                kept.replace(cx.waker().clone())
            }
        };
        drop(st);
        drop(old);
        Poll::Pending
    }
}

impl Drop for Ticket {
    #[inline]
    fn drop(&mut self) {
        // Disarmed: the shard reclaims the slot, and drops the waker, when it reaches its entry (unless
        // it is armed again first).
        if self
            .slot
            .word
            .compare_exchange(
                self.word,
                with_state(self.word, DEAD),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            self.fired();
        }
    }
}

impl Ticket {
    /// Frees a slot the driver fired (its entry has left the deque).
    #[cold]
    #[inline(never)]
    fn fired(&self) {
        let mut st = self.shard.lock();
        let word = self.slot.word.load(Ordering::Relaxed);
        debug_assert_eq!(state(word), FIRED);
        let waker = Shard::free(&mut st, self.slot, self.index, word);
        drop(st);
        drop(waker);
    }
}

#[cold]
#[inline(never)]
fn spawn_driver(shard: &'static Shard, rt: &Handle, deadline: u64) {
    // The guard first: if there is no time driver, `sleep_until` panics here (as a timeout always
    // did in such a runtime) and the guard lets the next timer try again.
    let guard = DriverGuard(Some(shard));
    let sleep = Box::pin(tokio::time::sleep_until(clock::instant(deadline)));
    // Detached: it ends by itself once the shard is empty, or with the runtime.
    drop(rt.spawn(Drive {
        guard,
        sleep,
        until: deadline,
        wake: Vec::new(),
        dead: Vec::new(),
    }));
}

/// Clears the shard's driver if the driver task is dropped before it finished (runtime shutdown).
struct DriverGuard(Option<&'static Shard>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(shard) = self.0.take() {
            let mut st = shard.lock();
            st.driver_at = None;
            let driver = st.driver.take();
            drop(st);
            drop(driver);
        }
    }
}

/// The driver task of one shard.
struct Drive {
    guard: DriverGuard,
    sleep: Pin<Box<Sleep>>,
    /// What `sleep` sleeps until, on the clock's origin.
    until: u64,
    /// Wakers of fired timers, woken outside the lock (kept to reuse its allocation).
    wake: Vec<Waker>,
    /// Wakers of reclaimed disarmed timers, dropped outside the lock.
    dead: Vec<Waker>,
}

impl Drive {
    /// Fires every expired timer at the front (under the lock); the next live deadline, if any.
    fn fire(&mut self, shard: &Shard, st: &mut State, now: u64) -> Option<u64> {
        while let Some(e) = st.order.front().copied() {
            match shard.armed(st, &e) {
                Err(w) => self.dead.extend(w),
                Ok((_, deadline)) if deadline > e.deadline => {
                    // Re-armed since it was queued: back to where its deadline now puts it.
                    st.order.pop_front();
                    let at = st.order.partition_point(|x| x.deadline <= deadline);
                    st.order.insert(at, Entry { deadline, ..e });
                    continue;
                }
                Ok((_, deadline)) if deadline > now => return Some(deadline),
                Ok((word, _)) => {
                    let slot = shard.slots.get(e.slot);
                    match slot.word.compare_exchange(
                        word,
                        with_state(word, FIRED),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => self.wake.extend(st.wakers[e.slot as usize].take()),
                        // Disarmed just now (and perhaps re-armed): look again.
                        Err(_) => continue,
                    }
                }
            }
            st.order.pop_front();
        }
        None
    }
}

impl Future for Drive {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(shard) = this.guard.0 else {
            return Poll::Ready(());
        };
        loop {
            let now = clock::now();
            let mut st = shard.lock();
            let next = this.fire(shard, &mut st, now);
            match next {
                // Empty: the next armed timer spawns a new driver.
                None => {
                    st.driver_at = None;
                    st.driver = None;
                }
                Some(next) => {
                    st.driver_at = Some(next);
                    if !st.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        st.driver = Some(cx.waker().clone());
                    }
                }
            }
            drop(st);
            this.dead.clear();
            this.wake.drain(..).for_each(Waker::wake);
            let Some(next) = next else {
                this.guard.0 = None;
                return Poll::Ready(());
            };
            // An elapsed sleep with nothing due: tokio's clock ran ahead of ours (the counter's rate
            // differs from it by some parts per million); sleep again rather than spin.
            if this.until != next || this.sleep.is_elapsed() {
                this.until = next;
                this.sleep.as_mut().reset(clock::instant(next));
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}
