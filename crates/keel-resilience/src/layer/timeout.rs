//! Timeout layer: the inner future is dropped (really cancelled, its permits freed) when time runs out.
//!
//! The deadline is fixed when the call is made, as with `tokio::time::timeout`, but the timer is armed
//! only once the inner future is pending: a call that completes on its first poll arms nothing. Armed
//! timers go to a per-thread deadline queue (`crate::timer`), not to the runtime's timer wheel.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::BoxError;
use crate::clock;
use crate::error::TimedOut;
use crate::timer::Timer;

/// Fails calls that take longer than `limit` with [`TimedOut`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// A layer with the given limit.
    pub fn new(limit: Duration) -> Self {
        crate::clock::warm();
        TimeoutLayer { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            limit: self.limit,
            limit_nanos: u64::try_from(self.limit.as_nanos()).ok(),
        }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    limit: Duration,
    /// `None` when too large for a deadline (see `clock::deadline`).
    limit_nanos: Option<u64>,
}

pin_project! {
    /// Response future of [`TimeoutService`].
    pub struct TimeoutFuture<F> {
        #[pin]
        fut: F,
        // Armed on the first `Pending`.
        timer: Timer,
        // Nanoseconds on the clock's origin.
        deadline: Option<u64>,
        limit: Duration,
    }
}

impl<F: std::fmt::Debug> std::fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutFuture")
            .field("fut", &self.fut)
            .field("armed", &self.timer.is_armed())
            .field("deadline", &self.deadline)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(r) = this.fut.poll(cx) {
            this.timer.disarm();
            return Poll::Ready(r.map_err(Into::into));
        }
        // No deadline: the limit is too large to be represented, as in `tokio::time::timeout`.
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        match this.timer.poll(deadline, *this.limit, cx) {
            Poll::Ready(()) => Poll::Ready(Err(Box::new(TimedOut(*this.limit)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Service<Req>, Req> Service<Req> for TimeoutService<S>
where
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // Read before the inner call, like `tokio::time::timeout`: the limit covers all of it.
        let start = clock::call_start(self.limit);
        let deadline = self.limit_nanos.and_then(|l| start.checked_add(l));
        TimeoutFuture {
            fut: self.inner.call(req),
            timer: Timer::new(),
            deadline,
            limit: self.limit,
        }
    }
}
