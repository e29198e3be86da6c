//! Command layer: runs each call as one execution of a keyed [`Command`] (breaker, bulkhead, timeout,
//! fallback, rolling counts and latency percentiles for `/hystrix.stream`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::BoxError;
use crate::command::{AsyncRun, Cause, Command, CommandError, Fallback, Queued};
use crate::error::ShortCircuited;

/// A boxed, sendable future, as the command layer's response future and a request's fallback.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A fallback a request carries for its own call: receives why the primary path failed.
pub type BoxFallback<Res> =
    Box<dyn FnOnce(Cause<BoxError>) -> BoxFuture<Result<Res, BoxError>> + Send>;

/// How the command layer finds a request's fallback.
pub trait RequestFallback<Req, Res> {
    /// Takes the fallback out of `req`, if it carries one.
    fn take(&self, req: &mut Req) -> Option<BoxFallback<Res>>;
}

/// Requests carry no fallback: failures reach the caller (counted as `FALLBACK_MISSING`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFallbacks;

impl<Req, Res> RequestFallback<Req, Res> for NoFallbacks {
    fn take(&self, _: &mut Req) -> Option<BoxFallback<Res>> {
        None
    }
}

impl<Req, Res, F> RequestFallback<Req, Res> for F
where
    F: Fn(&mut Req) -> Option<BoxFallback<Res>>,
{
    fn take(&self, req: &mut Req) -> Option<BoxFallback<Res>> {
        self(req)
    }
}

fn never(_: &BoxError) -> bool {
    false
}

/// Wraps services with a shared [`Command`]; every inner error is a failure unless `bad_request` says
/// it is the caller's fault. Errors come back as the primitive's own error ([`ShortCircuited`],
/// `BulkheadFull`, `TimedOut`, ...) or the inner error itself, so callers downcast as with the other layers.
#[derive(Debug, Clone)]
pub struct CommandLayer<B = fn(&BoxError) -> bool, G = NoFallbacks> {
    command: Command,
    bad_request: B,
    fallback: G,
}

impl CommandLayer {
    /// A layer running calls under `command`, without bad-request classification or fallbacks.
    pub fn new(command: Command) -> Self {
        CommandLayer {
            command,
            bad_request: never,
            fallback: NoFallbacks,
        }
    }
}

impl<B, G> CommandLayer<B, G> {
    /// Errors that are the caller's fault: not counted against health, no fallback.
    pub fn bad_request<B2>(self, bad_request: B2) -> CommandLayer<B2, G>
    where
        B2: Fn(&BoxError) -> bool,
    {
        CommandLayer {
            command: self.command,
            bad_request,
            fallback: self.fallback,
        }
    }

    /// Where each request's own fallback comes from (e.g. a field the caller filled in).
    pub fn fallback<G2>(self, fallback: G2) -> CommandLayer<B, G2> {
        CommandLayer {
            command: self.command,
            bad_request: self.bad_request,
            fallback,
        }
    }
}

impl<S, B: Clone, G: Clone> Layer<S> for CommandLayer<B, G> {
    type Service = CommandService<S, B, G>;

    fn layer(&self, inner: S) -> Self::Service {
        CommandService {
            inner,
            command: self.command.clone(),
            bad_request: self.bad_request.clone(),
            fallback: self.fallback.clone(),
        }
    }
}

/// See [`CommandLayer`].
#[derive(Debug, Clone)]
pub struct CommandService<S, B, G> {
    inner: S,
    command: Command,
    bad_request: B,
    fallback: G,
}

impl<S, B, G> CommandService<S, B, G> {
    /// The command.
    pub fn command(&self) -> &Command {
        &self.command
    }
}

pin_project! {
    /// The inner service's future with its error boxed, as the command's `run`.
    #[derive(Debug)]
    pub struct IntoBoxError<F> {
        #[pin]
        fut: F,
    }
}

impl<F, T, E> Future for IntoBoxError<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().fut.poll(cx).map_err(Into::into)
    }
}

/// A request's own fallback, if it carried one.
pub struct MaybeFallback<Res>(Option<BoxFallback<Res>>);

impl<Res> std::fmt::Debug for MaybeFallback<Res> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MaybeFallback")
            .field(&self.0.is_some())
            .finish()
    }
}

impl<Res> Fallback<Res, BoxError> for MaybeFallback<Res> {
    type Future = BoxFuture<Result<Res, BoxError>>;

    fn call(self, cause: Cause<BoxError>) -> Result<Self::Future, Cause<BoxError>> {
        match self.0 {
            Some(f) => Ok(f(cause)),
            None => Err(cause),
        }
    }
}

type CommandQueued<F, B, Res> = Queued<
    'static,
    AsyncRun<IntoBoxError<F>>,
    B,
    MaybeFallback<Res>,
    BoxFuture<Result<Res, BoxError>>,
    Res,
    BoxError,
>;

pin_project! {
    /// Response future of [`CommandService`]: one queued command execution, unboxed.
    pub struct CommandFuture<F, B, Res> {
        #[pin]
        queued: CommandQueued<F, B, Res>,
    }
}

impl<F, B, Res> std::fmt::Debug for CommandFuture<F, B, Res> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandFuture")
            .field("queued", &self.queued)
            .finish()
    }
}

impl<F, B, Res, E> Future for CommandFuture<F, B, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    B: Fn(&BoxError) -> bool,
{
    type Output = Result<Res, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .queued
            .poll(cx)
            .map_err(CommandError::into_box_error)
    }
}

impl<S, B, G, Req> Service<Req> for CommandService<S, B, G>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    B: Fn(&BoxError) -> bool + Clone + Send + Sync + 'static,
    G: RequestFallback<Req, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = CommandFuture<S::Future, B, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut req: Req) -> Self::Future {
        let fallback = MaybeFallback(self.fallback.take(&mut req));
        let fut = self.inner.call(req);
        let queued = self
            .command
            .call(IntoBoxError { fut })
            .bad_request(self.bad_request.clone())
            .fallback_with(fallback)
            .queue_owned();
        CommandFuture { queued }
    }
}

impl CommandError<BoxError> {
    /// The error behind this one: the primitive's own error for timeouts and rejections, the inner
    /// error for failures and bad requests, the fallback's error when the fallback failed.
    pub fn into_box_error(self) -> BoxError {
        match self {
            CommandError::BadRequest(e) => e,
            CommandError::Failed { cause, .. } => cause.into_box_error(),
            CommandError::FallbackFailed { fallback, .. } => fallback,
            CommandError::Runtime(e) => Box::new(ArcIoError(e)),
        }
    }
}

impl Cause<BoxError> {
    /// The error behind this cause (see [`CommandError::into_box_error`]).
    pub fn into_box_error(self) -> BoxError {
        match self {
            Cause::Failure(e) => e,
            Cause::Timeout(t) => Box::new(t),
            Cause::ShortCircuited => Box::new(ShortCircuited),
            Cause::SemaphoreRejected(b) => Box::new(b),
            Cause::ThreadPoolRejected(p) => Box::new(p),
            Cause::Panicked(p) => Box::new(p),
        }
    }
}

/// `execute`'s runtime error, shared behind an `Arc`, as a boxable error.
#[derive(Debug, thiserror::Error)]
#[error("command runtime unavailable: {0}")]
struct ArcIoError(std::sync::Arc<std::io::Error>);
