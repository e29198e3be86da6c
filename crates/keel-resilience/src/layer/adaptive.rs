//! Adaptive concurrency layer: admits under the live AIMD limit and feeds each call's RTT back into it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::BoxError;
use crate::adaptive::{AdaptiveLimit, LimitToken};

/// Limits concurrency with a shared [`AdaptiveLimit`]; errors count as drops (back off).
#[derive(Debug, Clone)]
pub struct AdaptiveLimitLayer {
    limit: Arc<AdaptiveLimit>,
}

impl AdaptiveLimitLayer {
    /// A layer over a shared limit (read its live value with [`AdaptiveLimit::limit`]).
    pub fn new(limit: Arc<AdaptiveLimit>) -> Self {
        AdaptiveLimitLayer { limit }
    }
}

impl<S> Layer<S> for AdaptiveLimitLayer {
    type Service = AdaptiveLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimitService {
            inner,
            limit: Arc::clone(&self.limit),
        }
    }
}

/// See [`AdaptiveLimitLayer`].
#[derive(Debug, Clone)]
pub struct AdaptiveLimitService<S> {
    inner: S,
    limit: Arc<AdaptiveLimit>,
}

pin_project! {
    /// Response future of [`AdaptiveLimitService`].
    #[project = AdaptiveProj]
    #[derive(Debug)]
    pub enum AdaptiveFuture<F> {
        /// Admitted.
        Running { #[pin] fut: F, token: Option<LimitToken> },
        /// Over the limit.
        Rejected { err: Option<BoxError> },
    }
}

impl<F, T, E> Future for AdaptiveFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdaptiveProj::Running { fut, token } => {
                let r = ready!(fut.poll(cx));
                if let Some(t) = token.take() {
                    if r.is_ok() { t.success() } else { t.dropped() }
                }
                Poll::Ready(r.map_err(Into::into))
            }
            AdaptiveProj::Rejected { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| "adaptive future polled after completion".into()))),
        }
    }
}

impl<S: Service<Req>, Req> Service<Req> for AdaptiveLimitService<S>
where
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AdaptiveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limit.try_acquire() {
            Ok(token) => AdaptiveFuture::Running {
                fut: self.inner.call(req),
                token: Some(token),
            },
            Err(e) => AdaptiveFuture::Rejected {
                err: Some(Box::new(e)),
            },
        }
    }
}
