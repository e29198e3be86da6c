//! Breaker state machine under a paused clock: every transition, exact trip point, forced states.

use std::time::Duration;

use keel_resilience::{BreakerConfig, CircuitBreaker, Outcome, SlowCallConfig, State, Transition};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::time::advance;

fn call(b: &CircuitBreaker, outcome: Outcome) {
    let p = b.try_acquire().expect("breaker should admit");
    b.record(p, outcome);
}

fn next(rx: &mut Receiver<Transition>) -> (State, State) {
    let t = rx.try_recv().expect("a transition event");
    (t.from, t.to)
}

#[tokio::test(start_paused = true)]
async fn trips_on_exactly_the_twentieth_failing_call() {
    let b = CircuitBreaker::new(BreakerConfig::default());
    let mut rx = b.subscribe();
    for i in 1..20 {
        call(&b, Outcome::Failure);
        assert_eq!(
            b.state(),
            State::Closed,
            "below volume threshold after {i} calls"
        );
    }
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
    assert_eq!(next(&mut rx), (State::Closed, State::Open));
    assert!(b.try_acquire().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_success_completing_the_volume_trips_at_fifty_percent() {
    let b = CircuitBreaker::new(BreakerConfig::default());
    for _ in 0..10 {
        call(&b, Outcome::Failure);
    }
    for _ in 0..9 {
        call(&b, Outcome::Success);
    }
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Success);
    assert_eq!(b.state(), State::Open, "20 calls, 10 errors");
}

#[tokio::test(start_paused = true)]
async fn trips_at_fifty_percent_with_truncated_percentage() {
    let b = CircuitBreaker::new(BreakerConfig::default());
    for _ in 0..11 {
        call(&b, Outcome::Success);
    }
    for _ in 0..9 {
        call(&b, Outcome::Failure);
    }
    // 20 calls, 9 errors = 45 %.
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Timeout);
    // 21 calls, 10 errors = 47.6 % -> 47.
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.health().error_percentage(), 47);
    call(&b, Outcome::SemaphoreRejected);
    // 22 calls, 11 errors = 50 %.
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_and_short_circuits_do_not_count() {
    let b = CircuitBreaker::new(BreakerConfig::default());
    for _ in 0..100 {
        call(&b, Outcome::BadRequest);
    }
    assert_eq!(b.health().total, 0);
    assert_eq!(b.state(), State::Closed);
    b.force_open(true);
    for _ in 0..50 {
        assert!(b.try_acquire().is_err());
    }
    b.force_open(false);
    assert_eq!(b.health().total, 0);
    let counts = b.rolling_counts();
    assert_eq!(counts[keel_resilience::Event::ShortCircuited.index()], 50);
    assert_eq!(counts[keel_resilience::Event::BadRequest.index()], 100);
}

async fn tripped() -> (CircuitBreaker, Receiver<Transition>) {
    let b = CircuitBreaker::new(BreakerConfig::default());
    let mut rx = b.subscribe();
    for _ in 0..20 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(next(&mut rx), (State::Closed, State::Open));
    (b, rx)
}

#[tokio::test(start_paused = true)]
async fn open_half_open_closed() {
    let (b, mut rx) = tripped().await;
    advance(Duration::from_millis(4_999)).await;
    assert!(b.try_acquire().is_err(), "still inside the sleep window");
    advance(Duration::from_millis(1)).await;
    let trial = b.try_acquire().expect("one trial after the sleep window");
    assert!(trial.is_trial());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(next(&mut rx), (State::Open, State::HalfOpen));
    assert!(b.try_acquire().is_err(), "only one trial while half-open");
    b.record(trial, Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(next(&mut rx), (State::HalfOpen, State::Closed));
    assert_eq!(b.health().total, 0, "counts reset on close");
    // Closed again: a full new volume is needed to re-trip.
    for _ in 0..19 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn half_open_failure_reopens_for_a_full_sleep_window() {
    let (b, mut rx) = tripped().await;
    advance(Duration::from_secs(5)).await;
    let trial = b.try_acquire().unwrap();
    assert_eq!(next(&mut rx), (State::Open, State::HalfOpen));
    advance(Duration::from_secs(1)).await;
    b.record(trial, Outcome::Timeout);
    assert_eq!(b.state(), State::Open);
    assert_eq!(next(&mut rx), (State::HalfOpen, State::Open));
    advance(Duration::from_millis(4_999)).await;
    assert!(
        b.try_acquire().is_err(),
        "sleep window restarts at the failed trial"
    );
    advance(Duration::from_millis(1)).await;
    assert!(b.try_acquire().unwrap().is_trial());
    assert!(matches!(
        rx.try_recv(),
        Ok(Transition {
            from: State::Open,
            to: State::HalfOpen,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn cancelled_trial_frees_the_half_open_slot() {
    let (b, mut rx) = tripped().await;
    advance(Duration::from_secs(5)).await;
    let trial = b.try_acquire().unwrap();
    let _ = next(&mut rx);
    b.cancel(trial);
    assert_eq!(b.state(), State::HalfOpen);
    let again = b.try_acquire().expect("the slot is free again");
    assert!(again.is_trial());
    b.record(again, Outcome::BadRequest);
    assert_eq!(b.state(), State::HalfOpen, "a bad request is no verdict");
    b.record(b.try_acquire().unwrap(), Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(next(&mut rx), (State::HalfOpen, State::Closed));
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test(start_paused = true)]
async fn failures_age_out_of_the_rolling_window() {
    let b = CircuitBreaker::new(BreakerConfig::default());
    for _ in 0..19 {
        call(&b, Outcome::Failure);
    }
    advance(Duration::from_secs(10)).await;
    assert_eq!(b.health().total, 0, "all buckets expired");
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Closed);
    // Half the window later, the partial window still holds the recent one.
    advance(Duration::from_secs(5)).await;
    for _ in 0..19 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn forced_states() {
    let b = CircuitBreaker::new(BreakerConfig {
        force_closed: true,
        ..Default::default()
    });
    for _ in 0..100 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Closed, "forced closed never trips");
    assert_eq!(b.health().errors, 100, "but still records");
    b.force_closed(false);
    b.force_open(true);
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire().is_err());
    b.force_open(false);
    // Released: health is evaluated on the next outcome.
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_when_configured() {
    let b = CircuitBreaker::new(BreakerConfig {
        slow_call: Some(SlowCallConfig {
            duration: Duration::from_millis(100),
            rate_threshold_percentage: 50,
        }),
        ..Default::default()
    });
    for i in 0..20 {
        let p = b.try_acquire().unwrap();
        if i % 2 == 0 {
            advance(Duration::from_millis(101)).await;
        }
        b.record(p, Outcome::Success);
    }
    assert_eq!(b.health().slow, 10);
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn count_window_judges_the_last_n_calls() {
    let b = CircuitBreaker::new(BreakerConfig {
        count_window: Some(10),
        request_volume_threshold: 10,
        ..Default::default()
    });
    for _ in 0..100 {
        call(&b, Outcome::Success);
    }
    for _ in 0..4 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.health().total, 10);
    assert_eq!(b.state(), State::Closed);
    call(&b, Outcome::Failure);
    assert_eq!(b.state(), State::Open, "5 of the last 10 failed");
}

#[tokio::test(start_paused = true)]
async fn disabled_breaker_always_admits() {
    let b = CircuitBreaker::new(BreakerConfig {
        enabled: false,
        ..Default::default()
    });
    for _ in 0..100 {
        call(&b, Outcome::Failure);
    }
    assert_eq!(b.state(), State::Closed);
}
