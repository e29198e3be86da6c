//! Circuit-breaker layer: short-circuits while open, classifies each result into a breaker outcome.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::BoxError;
use crate::breaker::{CircuitBreaker, Permit};
use crate::clock::Listen;
use crate::error::{
    BulkheadFull, LimitExceeded, PoolRejected, RateLimited, ShortCircuited, TimedOut,
};
use crate::event::Outcome;

/// Maps a call's result to a breaker [`Outcome`] (e.g. HTTP 5xx = failure, 4xx = bad request).
pub trait Classify<Res, E> {
    /// The outcome of `result`.
    fn classify(&self, result: &Result<Res, E>) -> Outcome;
}

impl<Res, E, F> Classify<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> Outcome,
{
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        self(result)
    }
}

/// Default classifier: `Ok` is success; errors are failures, except our own timeouts and rejections
/// (seen through a `BoxError` from inner layers), which get their own outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

fn outcome_of(e: &(dyn std::error::Error + 'static)) -> Outcome {
    if e.is::<TimedOut>() {
        Outcome::Timeout
    } else if e.is::<BulkheadFull>() || e.is::<LimitExceeded>() || e.is::<RateLimited>() {
        Outcome::SemaphoreRejected
    } else if e.is::<PoolRejected>() {
        Outcome::ThreadPoolRejected
    } else {
        Outcome::Failure
    }
}

impl<Res, E: 'static> Classify<Res, E> for ErrorsAreFailures {
    fn classify(&self, result: &Result<Res, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(e) => match (e as &dyn Any).downcast_ref::<BoxError>() {
                Some(b) => outcome_of(b.as_ref()),
                None => Outcome::Failure,
            },
        }
    }
}

/// One per-thread handle on a breaker (see [`Handles`]). Aligned past a cache line (two, for
/// adjacent-line prefetch): its `Arc`'s reference counts are what a thread's calls write.
#[derive(Debug)]
#[repr(align(128))]
struct Handle(Arc<CircuitBreaker>);

/// Every call's future keeps the breaker alive until it has recorded the outcome. Cloning the one
/// shared `Arc` for that would bounce its reference count between the cores of concurrent callers
/// (twice per call); each thread clones the handle of its own stripe instead.
#[derive(Debug)]
struct Handles(Box<[Arc<Handle>]>);

impl Handles {
    fn new(breaker: &Arc<CircuitBreaker>) -> Arc<Self> {
        let n = crate::window::cpu_stripes();
        Arc::new(Handles(
            (0..n)
                .map(|_| Arc::new(Handle(Arc::clone(breaker))))
                .collect(),
        ))
    }

    /// This thread's handle.
    #[inline]
    fn local(&self) -> Arc<Handle> {
        // The length is a power of two.
        Arc::clone(&self.0[crate::window::thread_stripe() & (self.0.len() - 1)])
    }
}

/// Wraps services with a shared [`CircuitBreaker`].
#[derive(Debug, Clone)]
pub struct BreakerLayer<C = ErrorsAreFailures> {
    breaker: Arc<CircuitBreaker>,
    handles: Arc<Handles>,
    classify: C,
}

impl BreakerLayer {
    /// A layer using the default classifier.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        BreakerLayer {
            handles: Handles::new(&breaker),
            breaker,
            classify: ErrorsAreFailures,
        }
    }
}

impl<C> BreakerLayer<C> {
    /// Replaces the classifier.
    pub fn classify<C2>(self, classify: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            breaker: self.breaker,
            handles: self.handles,
            classify,
        }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = BreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: Arc::clone(&self.breaker),
            handles: Arc::clone(&self.handles),
            classify: self.classify.clone(),
        }
    }
}

/// See [`BreakerLayer`].
#[derive(Debug, Clone)]
pub struct BreakerService<S, C> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    handles: Arc<Handles>,
    classify: C,
}

impl<S, C> BreakerService<S, C> {
    /// The breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

/// Cancels the permit if the response future is dropped before completion.
#[derive(Debug)]
struct Guard {
    breaker: Arc<Handle>,
    permit: Option<Permit>,
    /// When the call started, if a timeout below read the clock (see `CircuitBreaker::start_hint`).
    hint: Option<u64>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.breaker.0.cancel(p);
        }
    }
}

pin_project! {
    /// Response future of [`BreakerService`].
    #[project = BreakerProj]
    #[derive(Debug)]
    pub enum BreakerFuture<F, C> {
        /// Admitted and running.
        Running { #[pin] fut: F, guard: Guard, classify: C },
        /// Short-circuited.
        Rejected { err: Option<ShortCircuited> },
    }
}

impl<F, C, Res, E> Future for BreakerFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    E: Into<BoxError>,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            BreakerProj::Running {
                fut,
                guard,
                classify,
            } => {
                let result = ready!(fut.poll(cx));
                if let Some(p) = guard.permit.take() {
                    guard
                        .breaker
                        .0
                        .record_hinted(p, classify.classify(&result), guard.hint);
                }
                Poll::Ready(result.map_err(Into::into))
            }
            BreakerProj::Rejected { err } => {
                Poll::Ready(Err(Box::new(err.take().unwrap_or(ShortCircuited))))
            }
        }
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BreakerFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.breaker.try_acquire() {
            Ok(permit) => {
                // Borrow the start a timeout below reads instead of reading the clock at the end.
                // Fields are evaluated in order: `finish` runs after the inner call.
                let listen = Listen::start();
                BreakerFuture::Running {
                    fut: self.inner.call(req),
                    guard: Guard {
                        hint: self.breaker.start_hint(listen.finish()),
                        breaker: self.handles.local(),
                        permit: Some(permit),
                    },
                    classify: self.classify.clone(),
                }
            }
            Err(e) => BreakerFuture::Rejected { err: Some(e) },
        }
    }
}
