//! Fail-fast admission layers: semaphore bulkhead and GCRA rate limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::BoxError;
use crate::bulkhead::{Bulkhead, Handles, OwnedBulkheadPermit};
use crate::rate_limit::RateLimiter;

pin_project! {
    /// Response future of the admission layers: the inner future holding its permit, or the rejection.
    #[project = AdmitProj]
    #[derive(Debug)]
    pub enum AdmitFuture<F, P> {
        /// Admitted.
        Running { #[pin] fut: F, permit: P },
        /// Rejected.
        Rejected { err: Option<BoxError> },
    }
}

impl<F, P, T, E> Future for AdmitFuture<F, P>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmitProj::Running { fut, .. } => fut.poll(cx).map_err(Into::into),
            AdmitProj::Rejected { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| "admission future polled after completion".into()))),
        }
    }
}

/// Caps concurrent calls with a shared [`Bulkhead`]; full means an immediate `BulkheadFull` error.
///
/// Each permit keeps the bulkhead alive through a per-thread handle, so that concurrent callers do not
/// all write one `Arc`'s reference count.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    handles: Handles,
}

impl BulkheadLayer {
    /// A layer over a shared bulkhead.
    pub fn new(bulkhead: Arc<Bulkhead>) -> Self {
        BulkheadLayer {
            handles: Handles::new(bulkhead),
        }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            handles: self.handles.clone(),
        }
    }
}

/// See [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    handles: Handles,
}

impl<S: Service<Req>, Req> Service<Req> for BulkheadService<S>
where
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AdmitFuture<S::Future, OwnedBulkheadPermit>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.handles.try_acquire() {
            Ok(permit) => AdmitFuture::Running {
                fut: self.inner.call(req),
                permit,
            },
            Err(e) => AdmitFuture::Rejected {
                err: Some(Box::new(e)),
            },
        }
    }
}

/// Rate-limits calls with a shared GCRA [`RateLimiter`]; over the rate means an immediate `RateLimited` error.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Arc<RateLimiter>,
}

impl RateLimitLayer {
    /// A layer over a shared limiter.
    pub fn new(limiter: Arc<RateLimiter>) -> Self {
        RateLimitLayer { limiter }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: Arc::clone(&self.limiter),
        }
    }
}

/// See [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Arc<RateLimiter>,
}

impl<S: Service<Req>, Req> Service<Req> for RateLimitService<S>
where
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AdmitFuture<S::Future, ()>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        match self.limiter.try_acquire() {
            Ok(()) => AdmitFuture::Running {
                fut: self.inner.call(req),
                permit: (),
            },
            Err(e) => AdmitFuture::Rejected {
                err: Some(Box::new(e)),
            },
        }
    }
}
