//! One protected execution of a command: the builder (`bad_request`, `fallback`) and `queue` / `execute`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::{Cause, Command, CommandError};
use crate::bulkhead::BulkheadPermit;
use crate::error::TaskPanicked;
use crate::pool::PoolTask;

/// Primary work of a call plus the isolation it runs under.
///
/// `Running` has no lifetime on purpose: a borrowed isolation slot travels next to it in [`Started`]
/// instead. rustc cannot prove an async body `Send` when it holds a lifetime-generic associated type
/// (`Running<'c>`), which made `queue()` futures unusable in `tokio::spawn` and tower services.
pub trait Work<T, E> {
    /// The running work.
    type Running: Future<Output = Result<Result<T, E>, Cause<E>>>;

    /// Takes an isolation slot and starts the work, or says why it cannot.
    fn start(self, cmd: &Command) -> Result<Started<'_, Self::Running>, Cause<E>>;
}

/// Work that has started, with the semaphore slot it holds (blocking work holds a pool slot itself).
#[derive(Debug)]
pub struct Started<'c, R> {
    pub(super) running: R,
    pub(super) slot: Option<BulkheadPermit<'c>>,
}

impl<'c, R> Started<'c, R> {
    /// Work holding no slot of the command's (or one it owns, like a pool task).
    pub fn new(running: R) -> Self {
        Started {
            running,
            slot: None,
        }
    }

    /// Work holding a slot of the command's semaphore bulkhead until it ends.
    pub fn with_slot(running: R, slot: BulkheadPermit<'c>) -> Self {
        Started {
            running,
            slot: Some(slot),
        }
    }
}

/// Async work under the command's semaphore bulkhead.
#[derive(Debug)]
pub struct Async<Fut>(pub(crate) Fut);

/// Blocking work on the command's bounded pool.
#[derive(Debug)]
pub struct Blocking<F>(pub(crate) F);

pin_project! {
    /// An async call's `run`, its result wrapped for the command.
    #[derive(Debug)]
    pub struct AsyncRun<F> {
        #[pin]
        fut: F,
    }
}

impl<F: Future<Output = Result<T, E>>, T, E> Future for AsyncRun<F> {
    type Output = Result<Result<T, E>, Cause<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().fut.poll(cx).map(Ok)
    }
}

impl<Fut, T, E> Work<T, E> for Async<Fut>
where
    Fut: Future<Output = Result<T, E>>,
{
    type Running = AsyncRun<Fut>;

    #[inline]
    fn start(self, cmd: &Command) -> Result<Started<'_, Self::Running>, Cause<E>> {
        let permit = cmd
            .inner
            .bulkhead
            .try_acquire()
            .map_err(Cause::SemaphoreRejected)?;
        Ok(Started {
            running: AsyncRun { fut: self.0 },
            slot: Some(permit),
        })
    }
}

/// A blocking call's result, with panics mapped to [`Cause::Panicked`].
#[derive(Debug)]
pub struct PoolRun<T, E>(PoolTask<Result<T, E>>);

impl<T, E> Future for PoolRun<T, E> {
    type Output = Result<Result<T, E>, Cause<E>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|p: TaskPanicked| Cause::Panicked(p)))
    }
}

impl<F, T, E> Work<T, E> for Blocking<F>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    type Running = PoolRun<T, E>;

    fn start(self, cmd: &Command) -> Result<Started<'_, Self::Running>, Cause<E>> {
        cmd.inner
            .used_pool
            .store(true, std::sync::atomic::Ordering::Relaxed);
        cmd.inner
            .pool
            .submit(self.0)
            .map(|task| Started {
                running: PoolRun(task),
                slot: None,
            })
            .map_err(Cause::ThreadPoolRejected)
    }
}

/// What to do when the primary path fails.
pub trait Fallback<T, E> {
    /// The fallback's future.
    type Future: Future<Output = Result<T, E>>;

    /// Starts the fallback, or hands the cause back when there is none.
    fn call(self, cause: Cause<E>) -> Result<Self::Future, Cause<E>>;
}

/// No fallback: failures reach the caller (`FALLBACK_MISSING`).
#[derive(Debug, Clone, Copy)]
pub struct NoFallback;

impl<T, E> Fallback<T, E> for NoFallback {
    type Future = std::future::Ready<Result<T, E>>;

    fn call(self, cause: Cause<E>) -> Result<Self::Future, Cause<E>> {
        Err(cause)
    }
}

/// A fallback closure receiving the cause.
#[derive(Debug, Clone, Copy)]
pub struct WithFallback<G>(G);

impl<T, E, G, Fut> Fallback<T, E> for WithFallback<G>
where
    G: FnOnce(Cause<E>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Future = Fut;

    fn call(self, cause: Cause<E>) -> Result<Self::Future, Cause<E>> {
        Ok((self.0)(cause))
    }
}

/// A call being configured; finish with [`queue`](Call::queue) or [`execute`](Call::execute).
#[must_use = "a call does nothing until queued or executed"]
#[derive(Debug)]
pub struct Call<'c, W, C, F> {
    cmd: &'c Command,
    work: W,
    bad_request: C,
    fallback: F,
}

fn never<E>(_: &E) -> bool {
    false
}

impl<'c, W, E> Call<'c, W, fn(&E) -> bool, NoFallback> {
    pub(crate) fn new(cmd: &'c Command, work: W) -> Self {
        Call {
            cmd,
            work,
            bad_request: never::<E>,
            fallback: NoFallback,
        }
    }
}

impl<'c, W, C, F> Call<'c, W, C, F> {
    /// Classifies errors that are the caller's fault: they skip health accounting and the fallback.
    pub fn bad_request<C2, T, E>(self, is_bad_request: C2) -> Call<'c, W, C2, F>
    where
        W: Work<T, E>,
        C2: Fn(&E) -> bool,
    {
        Call {
            cmd: self.cmd,
            work: self.work,
            bad_request: is_bad_request,
            fallback: self.fallback,
        }
    }

    /// Runs `fallback(cause)` on failure, timeout, short-circuit and rejection (never on a bad request).
    pub fn fallback<G, Fut, T, E>(self, fallback: G) -> Call<'c, W, C, WithFallback<G>>
    where
        W: Work<T, E>,
        G: FnOnce(Cause<E>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        Call {
            cmd: self.cmd,
            work: self.work,
            bad_request: self.bad_request,
            fallback: WithFallback(fallback),
        }
    }

    /// Any [`Fallback`], e.g. one that may be absent (the command layer's per-request fallback).
    pub(crate) fn fallback_with<F2>(self, fallback: F2) -> Call<'c, W, C, F2> {
        Call {
            cmd: self.cmd,
            work: self.work,
            bad_request: self.bad_request,
            fallback,
        }
    }

    pub(super) fn into_parts(self) -> (&'c Command, W, C, F) {
        (self.cmd, self.work, self.bad_request, self.fallback)
    }

    /// Runs the call to completion on the calling thread (Hystrix `execute()`), for code outside async.
    ///
    /// Timers are driven by a small shared runtime. Panics if called from inside an async task, like any
    /// blocking call would deadlock there: use [`queue`](Call::queue) instead.
    pub fn execute<T, E>(self) -> Result<T, CommandError<E>>
    where
        W: Work<T, E>,
        C: Fn(&E) -> bool,
        F: Fallback<T, E>,
        F::Future: Future<Output = Result<T, E>>,
    {
        match runtime() {
            // Queued inside the runtime: the timeout needs its timer.
            Ok(handle) => handle.block_on(async move { self.queue().await }),
            Err(e) => Err(CommandError::Runtime(e)),
        }
    }
}

type RuntimeResult = Result<tokio::runtime::Runtime, Arc<std::io::Error>>;

/// Shared runtime whose worker drives timers for `execute` callers blocking outside async code.
fn runtime() -> Result<tokio::runtime::Handle, Arc<std::io::Error>> {
    static RT: OnceLock<RuntimeResult> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("keel-command-timer")
            .enable_time()
            .build()
            .map_err(Arc::new)
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
    .map_err(Arc::clone)
}
