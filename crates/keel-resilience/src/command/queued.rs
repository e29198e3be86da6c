//! The future of `Call::queue`: breaker permit and isolation slot taken at once, then the timed run,
//! the verdict and the fallback.
//!
//! A hand-written state machine, generic over concrete types only (the running work `R`, the fallback
//! `F` and its future `G`), on purpose. rustc checks an async body's auto traits on a witness with
//! erased lifetimes and then cannot normalise projections such as `<Async<Fut> as Work<T, E>>::Running`
//! when `E` holds a lifetime (any `Box<dyn Error + Send + Sync>`), so an `async fn` here was not
//! provably `Send`. This struct's `Send` is structural.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;

use super::call::{Fallback, Started, Work};
use super::{Cause, CauseKind, Command, CommandError};
use crate::breaker::Permit;
use crate::error::TimedOut;
use crate::event::{Event, Outcome};
use crate::timer::Timer;

/// The command a call runs under: borrowed (`Call::queue`) or owned (`Call::queue_owned`).
#[derive(Debug)]
enum CommandRef<'c> {
    Borrowed(&'c Command),
    Owned(Command),
}

impl std::ops::Deref for CommandRef<'_> {
    type Target = Command;

    #[inline]
    fn deref(&self) -> &Command {
        match self {
            CommandRef::Borrowed(c) => c,
            CommandRef::Owned(c) => c,
        }
    }
}

pin_project! {
    #[project = StageProj]
    enum Stage<R, G> {
        // The timer is armed on the first `Pending` only (see `layer::timeout`).
        Timed {
            #[pin] fut: R,
            timer: Timer,
            // Nanoseconds on the clock's origin.
            deadline: Option<u64>,
            limit: Duration,
        },
        Untimed { #[pin] fut: R },
        Fallback { #[pin] fut: G, kind: CauseKind },
        Ready,
        Done,
    }
}

pin_project! {
    /// One call in flight (Hystrix `queue()`): admitted when created, run when polled. Dropping it
    /// cancels the work and frees its slots.
    #[must_use = "futures do nothing unless polled"]
    pub struct Queued<'c, R, C, F, G, T, E> {
        cmd: CommandRef<'c>,
        bad_request: C,
        fallback: Option<F>,
        permit: Option<Permit>,
        // A detached semaphore slot of `cmd`'s bulkhead (a borrow could not live next to an owned command).
        slot: bool,
        started: u64,
        answer: Option<Result<T, CommandError<E>>>,
        #[pin]
        stage: Stage<R, G>,
        _out: PhantomData<fn() -> (T, E)>,
    }

    impl<'c, R, C, F, G, T, E> PinnedDrop for Queued<'c, R, C, F, G, T, E> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            release(this.cmd, this.slot);
            // Dropped mid-flight: hand the permit back unjudged (a half-open trial slot is freed).
            if let Some(p) = this.permit.take() {
                this.cmd.inner.breaker.cancel(p);
            }
        }
    }
}

impl<R, C, F, G, T, E> std::fmt::Debug for Queued<'_, R, C, F, G, T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("command", self.cmd.key())
            .finish_non_exhaustive()
    }
}

fn release(cmd: &Command, slot: &mut bool) {
    if std::mem::take(slot) {
        cmd.inner.bulkhead.release_detached();
    }
}

impl<'c, R, C, F, G, T, E> Queued<'c, R, C, F, G, T, E>
where
    R: Future<Output = Result<Result<T, E>, Cause<E>>>,
    F: Fallback<T, E, Future = G>,
{
    /// Takes the breaker permit and the isolation slot, and starts the work (or the fallback).
    fn start<W: Work<T, E, Running = R>>(
        cmd: CommandRef<'c>,
        work: W,
        bad_request: C,
        fallback: F,
    ) -> Self {
        // The clock is read twice per call: here, and when the run ends.
        let started = crate::clock::now();
        let mut q = Queued {
            started,
            cmd,
            bad_request,
            fallback: Some(fallback),
            permit: None,
            slot: false,
            answer: None,
            stage: Stage::Ready,
            _out: PhantomData,
        };
        let inner = &*q.cmd.inner;
        let Ok(permit) = inner.breaker.try_acquire_at(started) else {
            q.stage = q.fall_back(Cause::ShortCircuited);
            return q;
        };
        q.permit = Some(permit);
        let (stage, slot) = match work.start(&q.cmd) {
            Ok(Started { running, slot }) => {
                let held = slot.map(|s| s.detach()).is_some();
                if held {
                    inner
                        .breaker
                        .observe_concurrency_at(inner.bulkhead.in_flight() as u32, started);
                }
                let stage = match inner.config.timeout {
                    Some(limit) => Stage::Timed {
                        fut: running,
                        timer: Timer::new(),
                        deadline: crate::clock::deadline(started, limit),
                        limit,
                    },
                    None => Stage::Untimed { fut: running },
                };
                (Ok(stage), held)
            }
            Err(cause) => (Err(cause), false),
        };
        q.slot = slot;
        match stage {
            Ok(stage) => q.stage = stage,
            Err(cause) => {
                let outcome = match cause {
                    Cause::SemaphoreRejected(_) => Outcome::SemaphoreRejected,
                    Cause::ThreadPoolRejected(_) => Outcome::ThreadPoolRejected,
                    _ => Outcome::Failure,
                };
                finish(&q.cmd, &mut q.permit, outcome, started);
                q.stage = q.fall_back(cause);
            }
        }
        q
    }

    /// The fallback stage, or the answer at once when there is none or fallbacks are off.
    fn fall_back(&mut self, cause: Cause<E>) -> Stage<R, G> {
        let (stage, answer) = fall_back(&self.cmd, &mut self.fallback, cause);
        self.answer = answer;
        stage
    }
}

impl<'c, R, C, F, G, T, E> Future for Queued<'c, R, C, F, G, T, E>
where
    R: Future<Output = Result<Result<T, E>, Cause<E>>>,
    C: Fn(&E) -> bool,
    F: Fallback<T, E, Future = G>,
    G: Future<Output = Result<T, E>>,
{
    type Output = Result<T, CommandError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let cmd: &Command = this.cmd;
        let inner = &*cmd.inner;
        // When the run ended, if it ran (then the total latency needs no second reading).
        let mut ended = None;
        let answer = 'answer: loop {
            let result = match this.stage.as_mut().project() {
                StageProj::Timed {
                    fut,
                    timer,
                    deadline,
                    limit,
                } => match fut.poll(cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        // No deadline: the limit is too large to be represented.
                        let Some(deadline) = *deadline else {
                            return Poll::Pending;
                        };
                        match timer.poll(deadline, *limit, cx) {
                            Poll::Ready(()) => Err(Cause::Timeout(TimedOut(*limit))),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                },
                StageProj::Untimed { fut } => ready!(fut.poll(cx)),
                StageProj::Fallback { fut, kind } => {
                    let kind = *kind;
                    let r = ready!(fut.poll(cx));
                    break 'answer match r {
                        Ok(v) => {
                            inner.breaker.count(Event::FallbackSuccess);
                            Ok(v)
                        }
                        Err(e) => {
                            inner.breaker.count(Event::FallbackFailure);
                            inner.breaker.count(Event::ExceptionThrown);
                            Err(CommandError::FallbackFailed {
                                key: inner.key.clone(),
                                cause: kind,
                                fallback: e,
                            })
                        }
                    };
                }
                StageProj::Ready => match this.answer.take() {
                    Some(a) => break 'answer a,
                    None => panic!("`Queued` polled after completion"),
                },
                StageProj::Done => panic!("`Queued` polled after completion"),
            };
            // The run ended: drop it and free its slot before judging it.
            this.stage.set(Stage::Done);
            release(cmd, this.slot);
            let (outcome, cause) = match result {
                Ok(Ok(v)) => (Outcome::Success, Ok(v)),
                Ok(Err(e)) if (this.bad_request)(&e) => (Outcome::BadRequest, Err(Err(e))),
                Ok(Err(e)) => (Outcome::Failure, Err(Ok(Cause::Failure(e)))),
                Err(cause @ Cause::Timeout(_)) => (Outcome::Timeout, Err(Ok(cause))),
                Err(cause) => (Outcome::Failure, Err(Ok(cause))),
            };
            let now = crate::clock::now();
            ended = Some(now);
            if let Some(elapsed) = finish(cmd, this.permit, outcome, now) {
                inner.latency_execute.record(elapsed, now);
            }
            match cause {
                Ok(v) => break Ok(v),
                Err(Err(bad)) => {
                    inner.breaker.count(Event::ExceptionThrown);
                    break Err(CommandError::BadRequest(bad));
                }
                Err(Ok(cause)) => {
                    let (stage, answer) = fall_back(cmd, this.fallback, cause);
                    this.stage.set(stage);
                    if let Some(a) = answer {
                        break a;
                    }
                    // The fallback runs: poll it now; its time counts in the total.
                    ended = None;
                }
            }
        };
        this.stage.set(Stage::Done);
        let now = ended.unwrap_or_else(crate::clock::now);
        inner
            .latency_total
            .record(Duration::from_nanos(now.saturating_sub(*this.started)), now);
        Poll::Ready(answer)
    }
}

fn finish(
    cmd: &Command,
    permit: &mut Option<Permit>,
    outcome: Outcome,
    now: u64,
) -> Option<Duration> {
    permit
        .take()
        .and_then(|p| cmd.inner.breaker.record_at(p, outcome, now))
}

/// The fallback stage, or the answer at once when there is none or fallbacks are off.
#[allow(
    clippy::type_complexity,
    reason = "the next stage and maybe the answer"
)]
fn fall_back<T, E, F: Fallback<T, E>, R>(
    cmd: &Command,
    fallback: &mut Option<F>,
    cause: Cause<E>,
) -> (Stage<R, F::Future>, Option<Result<T, CommandError<E>>>) {
    let inner = &*cmd.inner;
    let kind = cause.kind();
    let fail = |cause| {
        inner.breaker.count(Event::ExceptionThrown);
        let answer = Err(CommandError::Failed {
            key: inner.key.clone(),
            cause,
        });
        (Stage::Ready, Some(answer))
    };
    let Some(fallback) = fallback.take().filter(|_| inner.config.fallback_enabled) else {
        return fail(cause);
    };
    match fallback.call(cause) {
        Err(cause) => {
            inner.breaker.count(Event::FallbackMissing);
            fail(cause)
        }
        Ok(fut) => (Stage::Fallback { fut, kind }, None),
    }
}

impl<'c, W, C, F> super::Call<'c, W, C, F> {
    /// Runs the call asynchronously (Hystrix `queue()`): admission (breaker, isolation slot) happens now,
    /// the work runs when the future is polled. Call it inside a tokio runtime (the timeout's timer). Dropping the future cancels the work and frees its slots.
    ///
    /// The future is a plain struct, `Send` whenever the work, classifier and fallback are, so it can be
    /// spawned or returned from a tower service.
    #[allow(
        clippy::type_complexity,
        reason = "the future names its concrete parts so it stays Send"
    )]
    pub fn queue<T, E>(self) -> Queued<'c, W::Running, C, F, F::Future, T, E>
    where
        W: Work<T, E>,
        F: Fallback<T, E>,
    {
        let (cmd, work, bad_request, fallback) = self.into_parts();
        Queued::start(CommandRef::Borrowed(cmd), work, bad_request, fallback)
    }

    /// Like [`queue`](Self::queue), holding its own handle on the command so the future is `'static`
    /// (for `tokio::spawn` or a tower service without boxing).
    #[allow(
        clippy::type_complexity,
        reason = "the future names its concrete parts so it stays Send"
    )]
    pub fn queue_owned<T, E>(self) -> Queued<'static, W::Running, C, F, F::Future, T, E>
    where
        W: Work<T, E>,
        F: Fallback<T, E>,
    {
        let (cmd, work, bad_request, fallback) = self.into_parts();
        Queued::start(CommandRef::Owned(cmd.clone()), work, bad_request, fallback)
    }
}
