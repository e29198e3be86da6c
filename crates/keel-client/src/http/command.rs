//! The command layer: runs each call under the service's Hystrix-style command, so its breaker,
//! bulkhead, overall timeout and rolling counts (`/hystrix.stream`) cover the call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use keel_resilience::layer::BoxError;
use keel_resilience::{CircuitBreaker, Command, Event, Outcome, Permit, TimedOut};
use tower::{Layer, Service};

#[derive(Debug, Clone)]
pub struct CommandLayer {
    command: Command,
}

impl CommandLayer {
    pub fn new(command: Command) -> Self {
        Self { command }
    }
}

impl<S> Layer<S> for CommandLayer {
    type Service = CommandService<S>;
    fn layer(&self, inner: S) -> CommandService<S> {
        CommandService {
            inner,
            command: self.command.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommandService<S> {
    inner: S,
    command: Command,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, Req> Service<Req> for CommandService<S>
where
    S: Service<Req, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(run(self.command.clone(), fut))
    }
}

/// The command's protections, applied with its public primitives. `Command::call(..).queue()`
/// cannot be used here: rustc cannot prove its future `Send` (a GAT with a higher-ranked
/// lifetime), and a tower future must be. Latency histograms are therefore not fed.
async fn run<R, F>(command: Command, fut: F) -> Result<R, BoxError>
where
    F: Future<Output = Result<R, BoxError>>,
{
    let breaker = command.breaker();
    let permit = breaker.try_acquire()?;
    let mut guard = Guard {
        breaker,
        permit: Some(permit),
    };
    let _slot = match command.bulkhead().try_acquire() {
        Ok(slot) => slot,
        Err(full) => {
            guard.finish(Outcome::SemaphoreRejected);
            return Err(full.into());
        }
    };
    let result = match command.config().timeout {
        Some(limit) => tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| Err(TimedOut(limit).into())),
        None => fut.await,
    };
    guard.finish(match &result {
        Ok(_) => Outcome::Success,
        Err(e) if e.is::<TimedOut>() => Outcome::Timeout,
        Err(_) => Outcome::Failure,
    });
    if result.is_err() {
        breaker.count(Event::ExceptionThrown);
    }
    result
}

/// Gives the breaker permit back unjudged if the call is dropped mid-flight.
struct Guard<'a> {
    breaker: &'a CircuitBreaker,
    permit: Option<Permit>,
}

impl Guard<'_> {
    fn finish(&mut self, outcome: Outcome) {
        if let Some(p) = self.permit.take() {
            self.breaker.record(p, outcome);
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.breaker.cancel(p);
        }
    }
}
