//! Bounded pool of threads for blocking code: Hystrix's thread-pool isolation (core size, queue, rejection).
//!
//! Unlike Hystrix, dropping the returned future frees its capacity: a queued task is skipped and its slot
//! released at once. A task already running on a thread cannot be interrupted (no runtime can stop
//! blocking code); its slot is released when it returns.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::{PoolRejected, TaskPanicked};
use crate::window::RollingCounts;

/// Pool settings; `Default` gives Hystrix's defaults.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `coreSize`: threads (started lazily, kept for the pool's life).
    pub core_size: usize,
    /// `maxQueueSize`: `None` is Hystrix's -1, a direct hand-off with no queue.
    pub max_queue_size: Option<usize>,
    /// `queueSizeRejectionThreshold`: effective queue cap when a queue exists.
    pub queue_size_rejection_threshold: usize,
    /// `metrics.rollingStats.timeInMilliseconds`.
    pub rolling_window: Duration,
    /// `metrics.rollingStats.numBuckets`.
    pub rolling_buckets: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            core_size: 10,
            max_queue_size: None,
            queue_size_rejection_threshold: 5,
            rolling_window: Duration::from_secs(10),
            rolling_buckets: 10,
        }
    }
}

impl PoolConfig {
    fn queue_capacity(&self) -> usize {
        self.max_queue_size
            .map_or(0, |m| m.min(self.queue_size_rejection_threshold))
    }
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

struct Job {
    state: Arc<AtomicU8>,
    run: Box<dyn FnOnce() + Send>,
}

const EXECUTED: usize = 0;
const REJECTED: usize = 1;

struct Inner {
    name: String,
    config: PoolConfig,
    capacity: usize,
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    shutdown: AtomicBool,
    /// Active plus queued (not cancelled) tasks: the admission counter.
    occupied: AtomicUsize,
    active: AtomicUsize,
    queued: AtomicUsize,
    spawned: AtomicUsize,
    largest: AtomicUsize,
    completed: AtomicU64,
    submitted: AtomicU64,
    rolling: RollingCounts<2>,
}

/// A bounded pool for blocking work. Cheap to share behind an `Arc`.
pub struct BlockingPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPool")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// Numbers for the `HystrixThreadPool` stream event and Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Pool name.
    pub name: String,
    /// Tasks running now.
    pub active: usize,
    /// Tasks finished since start.
    pub completed: u64,
    /// Configured threads.
    pub core_size: usize,
    /// Most threads ever started.
    pub largest: usize,
    /// Threads started now.
    pub pool_size: usize,
    /// Tasks waiting now.
    pub queue_size: usize,
    /// Tasks accepted since start.
    pub task_count: u64,
    /// Tasks executed in the rolling window.
    pub rolling_executed: u64,
    /// Most tasks running at once in the rolling window.
    pub rolling_max_active: u32,
    /// Tasks rejected in the rolling window.
    pub rolling_rejected: u64,
    /// Effective queue cap.
    pub queue_size_rejection_threshold: usize,
    /// Rolling window in milliseconds.
    pub rolling_window_ms: u64,
}

impl BlockingPool {
    /// A pool named `name` (threads are `keel-<name>-<n>`).
    pub fn new(name: impl Into<String>, config: PoolConfig) -> Self {
        let capacity = config.core_size.max(1) + config.queue_capacity();
        BlockingPool {
            inner: Arc::new(Inner {
                name: name.into(),
                rolling: RollingCounts::new(config.rolling_window, config.rolling_buckets),
                capacity,
                config,
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                shutdown: AtomicBool::new(false),
                occupied: AtomicUsize::new(0),
                active: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
                spawned: AtomicUsize::new(0),
                largest: AtomicUsize::new(0),
                completed: AtomicU64::new(0),
                submitted: AtomicU64::new(0),
            }),
        }
    }

    /// Pool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `f` on a pool thread, or rejects at once when all threads are busy and the queue is full.
    pub fn submit<F, R>(&self, f: F) -> Result<PoolTask<R>, PoolRejected>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let inner = &self.inner;
        let n = inner.occupied.fetch_add(1, Ordering::AcqRel) + 1;
        if n > inner.capacity || inner.shutdown.load(Ordering::Acquire) {
            inner.occupied.fetch_sub(1, Ordering::AcqRel);
            inner.rolling.add(REJECTED, 1, crate::clock::now());
            return Err(PoolRejected {
                pool: inner.name.clone(),
                active: inner.active.load(Ordering::Relaxed),
                queue: inner.config.queue_capacity(),
            });
        }
        inner.submitted.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let pool = Arc::clone(inner);
        let job = Job {
            state: Arc::clone(&state),
            run: Box::new(move || {
                let out = catch_unwind(AssertUnwindSafe(f)).map_err(|_| ());
                // The slot is free before the caller hears back, so its next submit is admitted.
                pool.finish_task();
                // The receiver may be gone (caller timed out); the result is simply dropped.
                let _ = tx.send(out);
            }),
        };
        inner.queued.fetch_add(1, Ordering::AcqRel);
        inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(job);
        inner.ready.notify_one();
        self.maybe_spawn(n);
        Ok(PoolTask {
            rx,
            state,
            pool: Arc::clone(inner),
        })
    }

    fn maybe_spawn(&self, wanted: usize) {
        let inner = &self.inner;
        let core = inner.config.core_size.max(1);
        loop {
            let spawned = inner.spawned.load(Ordering::Acquire);
            if spawned >= wanted.min(core) {
                return;
            }
            if inner
                .spawned
                .compare_exchange(spawned, spawned + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            inner.largest.fetch_max(spawned + 1, Ordering::Relaxed);
            let worker = Arc::clone(inner);
            let spawned_ok = std::thread::Builder::new()
                .name(format!("keel-{}-{}", inner.name, spawned))
                .spawn(move || worker.work());
            if let Err(e) = spawned_ok {
                tracing::warn!(pool = %inner.name, error = %e, "could not start pool thread");
                inner.spawned.fetch_sub(1, Ordering::AcqRel);
                return;
            }
        }
    }

    /// Current numbers.
    pub fn snapshot(&self) -> PoolSnapshot {
        let i = &self.inner;
        let now = crate::clock::now();
        let rolling = i.rolling.sum(now);
        PoolSnapshot {
            name: i.name.clone(),
            active: i.active.load(Ordering::Relaxed),
            completed: i.completed.load(Ordering::Relaxed),
            core_size: i.config.core_size,
            largest: i.largest.load(Ordering::Relaxed),
            pool_size: i.spawned.load(Ordering::Relaxed),
            queue_size: i.queued.load(Ordering::Relaxed),
            task_count: i.submitted.load(Ordering::Relaxed),
            rolling_executed: rolling[EXECUTED],
            rolling_max_active: i.rolling.peak(now),
            rolling_rejected: rolling[REJECTED],
            queue_size_rejection_threshold: i.config.queue_size_rejection_threshold,
            rolling_window_ms: i.rolling.window().as_millis() as u64,
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        self.inner.shutdown.store(true, Ordering::Release);
        self.inner.ready.notify_all();
    }
}

impl Inner {
    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(job) = q.pop_front() {
                        break job;
                    }
                    if self.shutdown.load(Ordering::Acquire) {
                        self.spawned.fetch_sub(1, Ordering::AcqRel);
                        return;
                    }
                    q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
            };
            if job
                .state
                .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Cancelled while queued: its slot was already released by the dropped future.
                continue;
            }
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let active = self.active.fetch_add(1, Ordering::AcqRel) + 1;
            let now = crate::clock::now();
            self.rolling.observe_peak(active as u32, now);
            (job.run)();
        }
    }

    /// Bookkeeping of a finished task, run by the task itself before it hands over its result.
    fn finish_task(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.rolling.add(EXECUTED, 1, crate::clock::now());
        self.occupied.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The result of a pool task. Dropping it before the task starts cancels the task and frees its slot.
pub struct PoolTask<R> {
    rx: oneshot::Receiver<Result<R, ()>>,
    state: Arc<AtomicU8>,
    pool: Arc<Inner>,
}

impl<R> std::fmt::Debug for PoolTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolTask")
            .field("pool", &self.pool.name)
            .finish_non_exhaustive()
    }
}

impl<R> Future for PoolTask<R> {
    type Output = Result<R, TaskPanicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(v))) => Poll::Ready(Ok(v)),
            // Sender dropped without a value only if the job was discarded, which means it panicked.
            Poll::Ready(Ok(Err(()))) | Poll::Ready(Err(_)) => Poll::Ready(Err(TaskPanicked {
                pool: self.pool.name.clone(),
            })),
        }
    }
}

impl<R> Drop for PoolTask<R> {
    fn drop(&mut self) {
        if self
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.pool.queued.fetch_sub(1, Ordering::AcqRel);
            self.pool.occupied.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
