//! The production clock: keel-resilience reads the CPU's time-stamp counter, and its timeouts sleep on
//! tokio's clock. These run in this crate, whose graph leaves keel-resilience's `paused-clock` feature
//! off, with `cargo nextest run -p keel-resilience-bench` (a workspace-wide run unifies that feature
//! on, for the paused-clock tests). `cargo xtask ci` runs them that way, with `KEELTEST_COUNTER_CLOCK=1`.

use std::future::{Future, Pending, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use keel_resilience::layer::{BoxError, BreakerLayer, TimeoutLayer};
use keel_resilience::{
    BreakerConfig, CircuitBreaker, ShortCircuited, State, TimedOut, follows_paused_clock,
};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Never answers.
#[derive(Clone)]
struct Never;

impl Service<()> for Never {
    type Response = ();
    type Error = BoxError;
    type Future = Pending<Result<(), BoxError>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, (): ()) -> Self::Future {
        pending()
    }
}

/// Fails when asked to, after yielding once (so a timeout below really arms its timer).
#[derive(Clone)]
struct Answer;

impl Service<bool> for Answer {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, fail: bool) -> Self::Future {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if fail { Err("refused".into()) } else { Ok(()) }
        })
    }
}

#[test]
fn ci_runs_these_on_the_counter_clock() {
    if std::env::var_os("KEELTEST_COUNTER_CLOCK").is_some() {
        assert!(
            !follows_paused_clock(),
            "KEELTEST_COUNTER_CLOCK is set but keel-resilience was built with `paused-clock`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_never_fire_early() {
    const LIMIT: Duration = Duration::from_millis(7);
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(LIMIT))
        .service(Never);
    // One call after another from one task: each re-arms the last one's timer slot.
    for i in 0..40 {
        let started = Instant::now();
        let call = svc.ready().await.expect("ready").call(());
        let err = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .unwrap_or_else(|_| panic!("call {i} never timed out"))
            .expect_err("a call that never answers times out");
        let took = started.elapsed();
        assert!(err.is::<TimedOut>(), "call {i}: {err}");
        assert!(
            took >= LIMIT,
            "call {i} timed out after {took:?}, before its limit {LIMIT:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_counts_from_the_call_not_from_its_first_poll() {
    const LIMIT: Duration = Duration::from_secs(2);
    const WAIT: Duration = Duration::from_secs(2);
    let mut svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(LIMIT))
        .service(Never);
    let started = Instant::now();
    let call = svc.ready().await.expect("ready").call(());
    tokio::time::sleep(WAIT).await;
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call times out")
        .expect_err("a call that never answers times out");
    let took = started.elapsed();
    assert!(err.is::<TimedOut>(), "{err}");
    // Counted from the call, its deadline has passed when it is first polled, WAIT after the call;
    // counted from the first poll, it would take WAIT + LIMIT. Halfway between leaves a second of slack.
    assert!(
        took < WAIT + LIMIT / 2,
        "timed out {took:?} after the call: counted from its first poll, {WAIT:?} later"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_trips_and_recovers_on_the_real_clock() {
    let breaker = Arc::new(CircuitBreaker::new(BreakerConfig {
        sleep_window: Duration::from_millis(50),
        ..BreakerConfig::default()
    }));
    let mut svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&breaker)))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(Answer);
    // Successes first, then errors: 20 of 40 trips at 50 %.
    for fail in [false, true] {
        for _ in 0..20 {
            let r = svc.ready().await.expect("ready").call(fail).await;
            assert_eq!(r.is_err(), fail, "{r:?}");
        }
    }
    assert_eq!(breaker.state(), State::Open);
    let err = svc
        .ready()
        .await
        .expect("ready")
        .call(false)
        .await
        .expect_err("open");
    assert!(err.is::<ShortCircuited>(), "{err}");
    // After the sleep window, a trial success closes it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match svc.ready().await.expect("ready").call(false).await {
            Ok(()) => break,
            Err(e) if e.is::<ShortCircuited>() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("no trial admitted within 10 s: {e}"),
        }
    }
    assert_eq!(breaker.state(), State::Closed);
}
