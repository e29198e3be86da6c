//! Command paths under a paused clock: success, failure, timeout, short-circuit, rejections, fallback, sharing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use keel_resilience::{
    BreakerConfig, Cause, CauseKind, CommandConfig, CommandError, CommandRegistry, Event,
    PoolConfig, State,
};

#[derive(Debug, PartialEq)]
enum Err {
    Down,
    Invalid,
}

impl std::fmt::Display for Err {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Sets its flag when dropped, to prove a timed-out future was cancelled.
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn counts(reg: &CommandRegistry, key: &str) -> [u64; Event::COUNT] {
    reg.get(key).unwrap().breaker().rolling_counts()
}

#[tokio::test(start_paused = true)]
async fn success_and_fallback_on_failure() {
    let reg = CommandRegistry::new();
    let cmd = reg.command("GetUser", CommandConfig::default());
    let v = cmd.call(async { Ok::<_, Err>(7) }).queue().await.unwrap();
    assert_eq!(v, 7);
    let v = cmd
        .call(async { Err::<u32, _>(Err::Down) })
        .fallback(|cause| async move {
            assert!(matches!(cause, Cause::Failure(Err::Down)));
            Ok(0)
        })
        .queue()
        .await
        .unwrap();
    assert_eq!(v, 0);
    let c = counts(&reg, "GetUser");
    assert_eq!(
        (
            c[Event::Success.index()],
            c[Event::Failure.index()],
            c[Event::FallbackSuccess.index()]
        ),
        (1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn failure_without_fallback_reaches_the_caller() {
    let cmd = CommandRegistry::new().command("c", CommandConfig::default());
    let e = cmd
        .call(async { Err::<u32, _>(Err::Down) })
        .queue()
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        CommandError::Failed {
            cause: Cause::Failure(Err::Down),
            ..
        }
    ));
    assert_eq!(
        cmd.breaker().rolling_counts()[Event::FallbackMissing.index()],
        1
    );
}

#[tokio::test(start_paused = true)]
async fn bad_request_skips_fallback_and_health() {
    let cmd = CommandRegistry::new().command("c", CommandConfig::default());
    let fallback_ran = AtomicBool::new(false);
    for _ in 0..30 {
        let e = cmd
            .call(async { Err::<u32, _>(Err::Invalid) })
            .bad_request(|e: &Err| *e == Err::Invalid)
            .fallback(|_| async {
                fallback_ran.store(true, Ordering::SeqCst);
                Ok(1)
            })
            .queue()
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::BadRequest(Err::Invalid)));
    }
    assert!(!fallback_ran.load(Ordering::SeqCst));
    assert_eq!(cmd.breaker().state(), State::Closed);
    assert_eq!(cmd.breaker().health().total, 0);
}

#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_work_and_falls_back() {
    let cmd = CommandRegistry::new().command("slow", CommandConfig::default());
    let dropped = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (d, f) = (DropFlag(Arc::clone(&dropped)), Arc::clone(&finished));
    let v = cmd
        .call(async move {
            let _d = d;
            tokio::time::sleep(Duration::from_secs(2)).await;
            f.store(true, Ordering::SeqCst);
            Ok::<u32, Err>(1)
        })
        .fallback(|cause| async move {
            assert_eq!(cause.kind(), CauseKind::Timeout);
            Ok(99)
        })
        .queue()
        .await
        .unwrap();
    assert_eq!(v, 99);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the timed-out future was dropped"
    );
    assert!(
        !finished.load(Ordering::SeqCst),
        "and never ran to completion"
    );
    assert_eq!(cmd.bulkhead().in_flight(), 0, "its permit was freed");
    assert_eq!(cmd.breaker().rolling_counts()[Event::Timeout.index()], 1);
}

#[tokio::test(start_paused = true)]
async fn open_breaker_short_circuits_to_fallback_then_recovers() {
    let reg = CommandRegistry::new();
    let cmd = reg.command("dep", CommandConfig::default());
    let mut events = cmd.breaker().subscribe();
    for _ in 0..20 {
        let _ = cmd.call(async { Err::<u32, _>(Err::Down) }).queue().await;
    }
    assert_eq!(cmd.breaker().state(), State::Open);
    let ran = AtomicUsize::new(0);
    let v = cmd
        .call(async {
            ran.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, Err>(1)
        })
        .fallback(|cause| async move {
            assert_eq!(cause.kind(), CauseKind::ShortCircuited);
            Ok(2)
        })
        .queue()
        .await
        .unwrap();
    assert_eq!(
        (v, ran.load(Ordering::SeqCst)),
        (2, 0),
        "run is not attempted while open"
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(
        cmd.call(async { Ok::<u32, Err>(3) }).queue().await.unwrap(),
        3
    );
    assert_eq!(cmd.breaker().state(), State::Closed);
    let seen: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        seen,
        vec![
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn semaphore_rejection_falls_back_and_dropping_frees_the_permit() {
    let cmd = CommandRegistry::new().command(
        "sem",
        CommandConfig {
            max_concurrent_requests: 1,
            timeout: None,
            ..Default::default()
        },
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let c2 = cmd.clone();
    let holder = tokio::spawn(async move {
        c2.call(async move {
            let _ = rx.await;
            Ok::<u32, Err>(1)
        })
        .queue()
        .await
    });
    while cmd.bulkhead().in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let e = cmd
        .call(async { Ok::<u32, Err>(2) })
        .queue()
        .await
        .unwrap_err();
    assert_eq!(e.cause_kind(), Some(CauseKind::SemaphoreRejected));
    let v = cmd
        .call(async { Ok::<u32, Err>(2) })
        .fallback(|c| async move {
            assert_eq!(c.kind(), CauseKind::SemaphoreRejected);
            Ok(3)
        })
        .queue()
        .await
        .unwrap();
    assert_eq!(v, 3);
    holder.abort();
    let _ = holder.await;
    drop(tx);
    assert_eq!(
        cmd.bulkhead().in_flight(),
        0,
        "aborting the holder freed its permit"
    );
    assert_eq!(
        cmd.call(async { Ok::<u32, Err>(4) }).queue().await.unwrap(),
        4
    );
    assert_eq!(
        cmd.breaker().rolling_counts()[Event::SemaphoreRejected.index()],
        2
    );
}

#[tokio::test]
async fn pool_rejection_and_blocking_run() {
    let config = CommandConfig {
        pool: PoolConfig {
            core_size: 1,
            max_queue_size: None,
            ..Default::default()
        },
        timeout: None,
        ..Default::default()
    };
    let cmd = CommandRegistry::new().command("blocking", config);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let c2 = cmd.clone();
    let busy = tokio::spawn(async move {
        c2.call_blocking(move || {
            let _ = rx.recv();
            Ok::<u32, Err>(1)
        })
        .queue()
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cmd.pool().snapshot().active == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pool task never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let v = cmd
        .call_blocking(|| Ok::<u32, Err>(2))
        .fallback(|c| async move {
            assert_eq!(c.kind(), CauseKind::ThreadPoolRejected);
            Ok(5)
        })
        .queue()
        .await
        .unwrap();
    assert_eq!(v, 5);
    tx.send(()).unwrap();
    assert_eq!(busy.await.unwrap().unwrap(), 1);
    assert_eq!(
        cmd.call_blocking(|| Ok::<u32, Err>(6))
            .queue()
            .await
            .unwrap(),
        6
    );
    let snap = cmd.pool().snapshot();
    assert_eq!((snap.rolling_rejected, snap.completed), (1, 2));
    assert!(cmd.uses_pool());
}

#[tokio::test]
async fn blocking_panic_becomes_a_failure() {
    let cmd = CommandRegistry::new().command("p", CommandConfig::default());
    let e = cmd
        .call_blocking(|| -> Result<u32, Err> { panic!("boom") })
        .queue()
        .await
        .unwrap_err();
    assert_eq!(e.cause_kind(), Some(CauseKind::Panicked));
}

#[tokio::test(start_paused = true)]
async fn same_key_shares_breaker_and_metrics() {
    let reg = CommandRegistry::new();
    let a = reg.command("shared", CommandConfig::default());
    let b = reg.command(
        "shared",
        CommandConfig {
            breaker: BreakerConfig {
                force_open: true,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    for _ in 0..20 {
        let _ = a.call(async { Err::<u32, _>(Err::Down) }).queue().await;
    }
    assert_eq!(b.breaker().state(), State::Open, "b sees a's breaker");
    assert_eq!(reg.commands().len(), 1);
    let c = reg.command("other", CommandConfig::default());
    assert_eq!(c.breaker().state(), State::Closed);
}

#[test]
fn execute_blocks_outside_async() {
    let reg = CommandRegistry::new();
    let cmd = reg.command(
        "sync",
        CommandConfig {
            timeout: Some(Duration::from_millis(50)),
            ..Default::default()
        },
    );
    assert_eq!(cmd.call(async { Ok::<u32, Err>(1) }).execute().unwrap(), 1);
    let v = cmd
        .call(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u32, Err>(1)
        })
        .fallback(|c| async move {
            assert_eq!(c.kind(), CauseKind::Timeout);
            Ok(2)
        })
        .execute()
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(
        cmd.call_blocking(|| Ok::<u32, Err>(3)).execute().unwrap(),
        3
    );
}

#[tokio::test(start_paused = true)]
async fn queued_calls_are_send_and_spawnable() {
    let reg = CommandRegistry::new();
    let cmd = reg.command("spawned", CommandConfig::default());
    // Pool threads run in real time: no timeout, or the paused clock would fire it while they work.
    let pooled = reg.command(
        "spawned-blocking",
        CommandConfig {
            timeout: None,
            ..Default::default()
        },
    );
    let (c1, c2, c3) = (cmd.clone(), cmd.clone(), pooled.clone());
    // Each future must be `Send + 'static` for tokio::spawn: the permit borrows live inside the task.
    let ok = tokio::spawn(async move { c1.call(async { Ok::<u32, Err>(1) }).queue().await });
    let fell_back = tokio::spawn(async move {
        c2.call(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u32, Err>(1)
        })
        .bad_request(|e: &Err| *e == Err::Invalid)
        .fallback(|cause| async move {
            assert_eq!(cause.kind(), CauseKind::Timeout);
            Ok(2)
        })
        .queue()
        .await
    });
    let blocking =
        tokio::spawn(async move { c3.call_blocking(|| Ok::<u32, Err>(3)).queue().await });
    assert_eq!(ok.await.unwrap().unwrap(), 1);
    assert_eq!(fell_back.await.unwrap().unwrap(), 2);
    assert_eq!(blocking.await.unwrap().unwrap(), 3);
    let snap = cmd.snapshot();
    assert_eq!(snap.latency_total.count, 2, "every call is timed");
    assert_eq!(snap.latency_execute.count, 2);
    assert_eq!(pooled.snapshot().latency_execute.count, 1);
}

#[tokio::test(start_paused = true)]
async fn queued_calls_with_boxed_errors_are_send() {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let cmd = CommandRegistry::new().command("boxed", CommandConfig::default());
    let owned = cmd
        .call(async { Err::<u32, BoxError>("down".into()) })
        .fallback(|cause: Cause<BoxError>| async move {
            assert_eq!(cause.kind(), CauseKind::Failure);
            Ok::<u32, BoxError>(9)
        })
        .queue_owned();
    assert_eq!(tokio::spawn(owned).await.unwrap().unwrap(), 9);
    let c = cmd.clone();
    let borrowed = tokio::spawn(async move {
        c.call(async { Ok::<u32, BoxError>(1) })
            .bad_request(|_: &BoxError| false)
            .queue()
            .await
    });
    assert_eq!(borrowed.await.unwrap().unwrap(), 1);
}
