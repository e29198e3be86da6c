//! Tower layers and the remaining primitives (rate limit, retry budget, adaptive limit) under a paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_resilience::layer::{
    AdaptiveLimitLayer, BoxError, BreakerLayer, BudgetedRetry, BulkheadLayer, RateLimitLayer,
    TimeoutLayer,
};
use keel_resilience::{
    AdaptiveLimit, AimdConfig, Backoff, BreakerConfig, Bulkhead, BulkheadFull, CircuitBreaker,
    Event, RateLimited, RateLimiter, RetryBudget, ShortCircuited, State, TimedOut, retry,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

async fn echo(ms: u64) -> Result<u64, BoxError> {
    if ms == u64::MAX {
        return Err("boom".into());
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(ms)
}

#[tokio::test(start_paused = true)]
async fn breaker_bulkhead_timeout_stack() {
    let breaker = Arc::new(CircuitBreaker::new(BreakerConfig::default()));
    let bulkhead = Arc::new(Bulkhead::new(2));
    let mut svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&breaker)))
        .layer(BulkheadLayer::new(Arc::clone(&bulkhead)))
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(service_fn(echo));

    assert_eq!(svc.ready().await.unwrap().call(5).await.unwrap(), 5);
    let e = svc.ready().await.unwrap().call(500).await.unwrap_err();
    assert!(e.is::<TimedOut>(), "{e}");
    assert_eq!(
        breaker.rolling_counts()[Event::Timeout.index()],
        1,
        "timeout classified as timeout"
    );
    assert_eq!(bulkhead.in_flight(), 0, "timed-out call freed its permit");

    // Two slow calls hold the bulkhead; the third is rejected at once.
    let a = svc.ready().await.unwrap().call(50);
    let b = svc.ready().await.unwrap().call(50);
    let e = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(e.is::<BulkheadFull>(), "{e}");
    assert_eq!(
        breaker.rolling_counts()[Event::SemaphoreRejected.index()],
        1
    );
    assert_eq!((a.await.unwrap(), b.await.unwrap()), (50, 50));

    // So far 3 successes, 1 timeout, 1 rejection: 5 calls, 2 errors. The 15th failure makes 20 calls.
    for _ in 0..14 {
        let _ = svc.ready().await.unwrap().call(u64::MAX).await;
    }
    assert_eq!(breaker.state(), State::Closed);
    let _ = svc.ready().await.unwrap().call(u64::MAX).await;
    assert_eq!(breaker.state(), State::Open);
    let e = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(e.is::<ShortCircuited>());
}

#[tokio::test(start_paused = true)]
async fn through_the_layers_a_success_completing_the_volume_trips_at_fifty_percent() {
    // A timeout below the breaker: successes are counted at the call's start, read once.
    let breaker = Arc::new(CircuitBreaker::new(BreakerConfig::default()));
    let mut svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&breaker)))
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(service_fn(echo));
    for _ in 0..10 {
        let _ = svc.ready().await.unwrap().call(u64::MAX).await;
    }
    for _ in 0..9 {
        svc.ready().await.unwrap().call(1).await.unwrap();
    }
    assert_eq!(breaker.state(), State::Closed, "19 calls");
    svc.ready().await.unwrap().call(1).await.unwrap();
    assert_eq!(breaker.state(), State::Open, "20 calls, 10 errors");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_response_future_frees_bulkhead_and_trial() {
    let breaker = Arc::new(CircuitBreaker::new(BreakerConfig {
        force_open: false,
        ..Default::default()
    }));
    let bulkhead = Arc::new(Bulkhead::new(1));
    let mut svc = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&breaker)))
        .layer(BulkheadLayer::new(Arc::clone(&bulkhead)))
        .service(service_fn(echo));
    let fut = svc.ready().await.unwrap().call(1000);
    assert_eq!(bulkhead.in_flight(), 1);
    drop(fut);
    assert_eq!(bulkhead.in_flight(), 0);
    assert_eq!(breaker.health().total, 0, "a cancelled call is not counted");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_layer_and_gcra() {
    let limiter = Arc::new(RateLimiter::new(10, Duration::from_secs(1), 2));
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(Arc::clone(&limiter)))
        .service(service_fn(echo));
    svc.ready().await.unwrap().call(0).await.unwrap();
    svc.ready().await.unwrap().call(0).await.unwrap();
    let e = svc.ready().await.unwrap().call(0).await.unwrap_err();
    let rl = e.downcast_ref::<RateLimited>().expect("rate limited");
    assert_eq!(rl.retry_after, Duration::from_millis(100));
    tokio::time::advance(Duration::from_millis(99)).await;
    assert!(limiter.try_acquire().is_err());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(limiter.try_acquire().is_ok());
    assert!(limiter.try_acquire().is_err());
    // Long idle does not bank more than the burst.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(limiter.try_acquire().is_ok());
    assert!(limiter.try_acquire().is_ok());
    assert!(limiter.try_acquire().is_err());
}

#[tokio::test(start_paused = true)]
async fn retry_budget_is_ratio_plus_reserve() {
    let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
    for _ in 0..10 {
        budget.deposit();
    }
    assert!(budget.try_withdraw());
    assert!(budget.try_withdraw());
    assert!(!budget.try_withdraw(), "20 % of 10 calls is 2 retries");
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(budget.usage(), (0, 0), "window expired");
    let default = RetryBudget::default();
    let granted = (0..200).filter(|_| default.try_withdraw()).count();
    assert_eq!(granted, 100, "10/s over 10 s with no traffic");
}

#[tokio::test(start_paused = true)]
async fn retry_with_backoff_until_success() {
    let budget = RetryBudget::default();
    let backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(100),
        max_retries: 3,
    };
    let calls = AtomicUsize::new(0);
    let r: Result<u32, &str> = retry(
        &budget,
        &backoff,
        |_| true,
        |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { if attempt < 2 { Err("transient") } else { Ok(7) } }
        },
    )
    .await;
    assert_eq!(r, Ok(7));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let r: Result<u32, &str> = retry(
        &budget,
        &backoff,
        |e| *e != "fatal",
        |_| async { Err("fatal") },
    )
    .await;
    assert_eq!(r, Err("fatal"));
    assert_eq!(budget.usage(), (2, 2));
    for retry in 0..10 {
        assert!(backoff.delay(retry) <= Duration::from_millis(100));
    }
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_respects_budget() {
    let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.5));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let policy = BudgetedRetry::new(
        Arc::clone(&budget),
        Backoff {
            max_retries: 5,
            ..Default::default()
        },
        |_req: &u32, r: &Result<u32, BoxError>| r.is_err(),
    );
    let mut svc = ServiceBuilder::new()
        .retry(policy)
        .service(service_fn(move |_req: u32| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<u32, BoxError>("down".into()) }
        }));
    for _ in 0..4 {
        let _ = svc.ready().await.unwrap().call(1).await;
    }
    // 4 originals deposit 4; 50 % allows 2 retries in total.
    assert_eq!(budget.usage(), (4, 2));
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn adaptive_limit_grows_when_busy_and_backs_off_on_drops() {
    let limit = Arc::new(AdaptiveLimit::new(AimdConfig {
        initial: 4,
        min: 2,
        max: 8,
        ..Default::default()
    }));
    let tokens: Vec<_> = (0..4).map(|_| limit.try_acquire().unwrap()).collect();
    assert!(limit.try_acquire().is_err(), "at the limit");
    for t in tokens {
        t.success();
    }
    assert!(
        limit.limit() > 4,
        "grew while fully used: {}",
        limit.limit()
    );
    let grown = limit.limit();
    limit.try_acquire().unwrap().dropped();
    assert_eq!(limit.limit(), ((grown as f64 * 0.9) as usize).max(2));

    let mut svc = ServiceBuilder::new()
        .layer(AdaptiveLimitLayer::new(Arc::clone(&limit)))
        .service(service_fn(|fail: bool| async move {
            if fail {
                Err::<(), BoxError>("503".into())
            } else {
                Ok(())
            }
        }));
    let before = limit.limit();
    for _ in 0..10 {
        let _ = svc.ready().await.unwrap().call(true).await;
    }
    assert_eq!(
        limit.limit(),
        2,
        "drops pushed it to the floor (from {before})"
    );
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn command_layer_feeds_the_command_and_keeps_error_types() {
    use keel_resilience::layer::{BoxFallback, CommandLayer};
    use keel_resilience::{CommandConfig, CommandRegistry};

    let reg = CommandRegistry::new();
    let cmd = reg.command(
        "svc",
        CommandConfig {
            timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        },
    );
    let svc = ServiceBuilder::new()
        .layer(CommandLayer::new(cmd.clone()))
        .service(service_fn(echo));
    assert_eq!(svc.clone().oneshot(5).await.unwrap(), 5);
    let e = svc.clone().oneshot(500).await.unwrap_err();
    assert!(e.is::<TimedOut>(), "{e}");
    let e = svc.clone().oneshot(u64::MAX).await.unwrap_err();
    assert_eq!(e.to_string(), "boom", "the inner error comes back as is");
    // The future is Send: it runs in a spawned task.
    let spawned = tokio::spawn(svc.clone().oneshot(7));
    assert_eq!(spawned.await.unwrap().unwrap(), 7);

    // A request carrying its own fallback.
    let with_fallback = ServiceBuilder::new()
        .layer(
            CommandLayer::new(cmd.clone())
                .fallback(|req: &mut (u64, Option<BoxFallback<u64>>)| req.1.take()),
        )
        .service(service_fn(|(ms, _): (u64, Option<BoxFallback<u64>>)| {
            echo(ms)
        }));
    let fallback: BoxFallback<u64> = Box::new(|_cause| Box::pin(async { Ok(42) }));
    assert_eq!(
        with_fallback
            .oneshot((u64::MAX, Some(fallback)))
            .await
            .unwrap(),
        42
    );

    let snap = cmd.snapshot();
    assert_eq!(
        (
            snap.count(Event::Success),
            snap.count(Event::Timeout),
            snap.count(Event::Failure),
            snap.count(Event::FallbackMissing),
            snap.count(Event::FallbackSuccess),
        ),
        (2, 1, 2, 2, 1)
    );
    assert_eq!(snap.latency_execute.count, 5, "latency percentiles are fed");
    assert_eq!(snap.latency_total.count, 5);
}
