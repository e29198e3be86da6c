//! The timeout layer's deadline queue through the public layer API: firing, ordering, disarming, draining.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use keel_resilience::TimedOut;
use keel_resilience::layer::{BoxError, TimeoutLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: Duration = Duration::from_millis(100);

/// Sets its flag when dropped: the work was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Work that never completes on its own.
async fn forever(_: ()) -> Result<(), BoxError> {
    std::future::pending().await
}

/// Polls until `done` holds, yielding to the runtime in between (the clock is paused, so this
/// advances virtual time only as timers demand). Panics after a generous number of rounds.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached");
}

/// Runs `fut` as a task of its own (on this thread, so it need not be `Send`).
async fn in_task(fut: impl Future<Output = ()> + 'static) {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move { tokio::task::spawn_local(fut).await.unwrap() })
        .await;
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn timeout_fires_under_a_paused_clock_and_cancels_the_work() {
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(move |()| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, BoxError>(())
        }
    }));
    let start = Instant::now();
    let e = svc.ready().await.unwrap().call(()).await.unwrap_err();
    let took = start.elapsed();
    assert!(e.is::<TimedOut>(), "{e}");
    assert!(
        (LIMIT..Duration::from_secs(5)).contains(&took),
        "fired at the deadline, not with the work: {took:?}"
    );
    assert!(dropped.load(Ordering::SeqCst), "the work was dropped");

    // Fast calls under the same layer still succeed.
    let mut fast = TimeoutLayer::new(LIMIT).layer(service_fn(|ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(ms)
    }));
    assert_eq!(fast.ready().await.unwrap().call(10).await.unwrap(), 10);
}

#[tokio::test(start_paused = true)]
async fn many_concurrent_timeouts_fire_in_deadline_order() {
    const N: usize = 40;
    let svc = TimeoutLayer::new(LIMIT).layer(service_fn(forever));
    // Each call is made 1 ms after the previous one (its deadline fixed then), and the futures are
    // first polled in reverse order, so their timers are armed out of order.
    let mut calls = Vec::new();
    for i in 0..N {
        let mut svc = svc.clone();
        calls.push((i, Instant::now(), svc.ready().await.unwrap().call(())));
        tokio::time::advance(Duration::from_millis(1)).await;
    }
    let fired = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, made, call) in calls.into_iter().rev() {
        let fired = Arc::clone(&fired);
        tasks.push(tokio::spawn(async move {
            let e = call.await.unwrap_err();
            assert!(e.is::<TimedOut>(), "{e}");
            let late = made.elapsed();
            fired.lock().unwrap().push(i);
            late
        }));
    }
    for t in tasks {
        let took = t.await.unwrap();
        assert!(
            (LIMIT..LIMIT * 2).contains(&took),
            "each call fires at its own deadline: {took:?}"
        );
    }
    assert_eq!(
        *fired.lock().unwrap(),
        (0..N).collect::<Vec<_>>(),
        "timeouts fire in deadline order"
    );
}

/// Counts wake-ups of a hand-polled future.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn completed_and_dropped_calls_do_not_fire_and_the_queue_drains() {
    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Mutex::new(Some(rx));
    let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(move |()| {
        let rx = rx.lock().unwrap().take().expect("one call");
        async move { rx.await.map_err(BoxError::from) }
    }));
    let mut done = pin!(svc.ready().await.unwrap().call(()));
    assert!(done.as_mut().poll(&mut cx).is_pending(), "timer armed");
    // A second call, dropped while pending: its timer is disarmed too.
    let mut gone = TimeoutLayer::new(LIMIT).layer(service_fn(forever));
    {
        let mut dropped = pin!(gone.ready().await.unwrap().call(()));
        assert!(dropped.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(alive_tasks(), 1, "one driver for both (same thread, limit)");

    tx.send(()).unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken by the work");
    assert!(matches!(done.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));

    // Well past the deadline: nothing fires, and the driver has exited.
    tokio::time::sleep(LIMIT * 3).await;
    until(|| alive_tasks() == 0).await;
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "no timer fired after completion or drop"
    );
    assert_eq!(
        Arc::strong_count(&wakes),
        2,
        "the queue kept no waker of a disarmed timer (only `waker` and `wakes` are left)"
    );

    // An emptied queue still works: the next timer spawns a new driver.
    let e = gone.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(e.is::<TimedOut>(), "{e}");
    until(|| alive_tasks() == 0).await;
}

/// Completes after one `Pending` (so the timeout arms its timer), or never.
struct Once(bool);

impl Future for Once {
    type Output = Result<(), BoxError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.0 {
            self.0 = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_armed_after_one_just_disarmed_fires_at_its_own_deadline() {
    // In a task (its timers re-arm their slot without the lock), and in `block_on` (under it).
    in_task(armed_after_one_just_disarmed()).await;
    armed_after_one_just_disarmed().await;
}

async fn armed_after_one_just_disarmed() {
    let svc = TimeoutLayer::new(LIMIT).layer(service_fn(|forever: bool| async move {
        if forever {
            std::future::pending::<()>().await;
        }
        Once(true).await
    }));
    // A run of calls on one task, each disarmed before the next arms (the deadline queue reuses the
    // last entry for the next timer), spread over more than one limit.
    for _ in 0..30 {
        svc.clone().oneshot(false).await.unwrap();
        tokio::time::advance(LIMIT / 10).await;
    }
    let start = Instant::now();
    let e = svc.clone().oneshot(true).await.unwrap_err();
    assert!(e.is::<TimedOut>(), "{e}");
    let took = start.elapsed();
    assert!(
        (LIMIT..LIMIT * 2).contains(&took),
        "fired at its own deadline, not an earlier call's: {took:?}"
    );

    // Another task takes over the entry this task's last call left: it is woken, not this one.
    svc.clone().oneshot(false).await.unwrap();
    let other = tokio::spawn(svc.clone().oneshot(true));
    let e = tokio::time::timeout(LIMIT * 10, other)
        .await
        .expect("the other task was woken by its timeout")
        .unwrap()
        .unwrap_err();
    assert!(e.is::<TimedOut>(), "{e}");
    until(|| alive_tasks() == 0).await;
}

/// Pending `polls` times (waking itself), then done; never done for `None`.
struct Pendings(Option<u32>);

impl Future for Pendings {
    type Output = Result<(), BoxError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Some(0) => Poll::Ready(Ok(())),
            Some(n) => {
                *n -= 1;
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_reusing_a_slot_wakes_its_own_waker_after_the_last_one_changed_wakers() {
    // In a task: a task's timers re-arm their slot without the lock.
    in_task(reuse_after_a_waker_change()).await;
    reuse_after_a_waker_change().await;
}

async fn reuse_after_a_waker_change() {
    let first = Arc::new(Wakes::default());
    let second = Arc::new(Wakes::default());
    let (w1, w2) = (
        Waker::from(Arc::clone(&first)),
        Waker::from(Arc::clone(&second)),
    );
    let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(Pendings));
    // Armed with the first waker, polled again with the second, then done: the queue kept the second.
    let mut call = pin!(svc.call(Some(2)));
    assert!(
        call.as_mut()
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        call.as_mut()
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    assert!(call.as_mut().poll(&mut Context::from_waker(&w2)).is_ready());
    // The same task arms the next timer with the first waker again, in the slot just disarmed.
    let mut hung = pin!(svc.call(None));
    assert!(
        hung.as_mut()
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    tokio::time::sleep(LIMIT * 2).await;
    assert_eq!(
        first.0.load(Ordering::SeqCst),
        1,
        "the timeout woke the waker its call was polled with"
    );
    assert_eq!(second.0.load(Ordering::SeqCst), 0, "not the earlier call's");
    let e = match hung.as_mut().poll(&mut Context::from_waker(&w1)) {
        Poll::Ready(r) => r.unwrap_err(),
        Poll::Pending => panic!("timed out"),
    };
    assert!(e.is::<TimedOut>(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_fire_on_a_multi_thread_runtime() {
    // Real clock; tasks may move between workers, so timers are polled and dropped across threads.
    let svc = TimeoutLayer::new(Duration::from_millis(20)).layer(service_fn(forever));
    let mut fast = TimeoutLayer::new(Duration::from_millis(20)).layer(service_fn(|()| async {
        tokio::task::yield_now().await;
        Ok::<_, BoxError>(())
    }));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move { svc.ready().await.unwrap().call(()).await })
        })
        .collect();
    for _ in 0..200 {
        fast.ready().await.unwrap().call(()).await.unwrap();
    }
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert!(e.is::<TimedOut>(), "{e}");
        }
    });
    all.await.expect("every call timed out");
}

#[test]
fn a_thread_running_several_runtimes_fires_each_ones_timers() {
    // Each runtime's paused clock advances only to its own timers: a timer queued behind the driver
    // of another runtime (idle meanwhile) would never fire, and `block_on` would never return.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let paused = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        };
        let call = || async {
            let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(forever));
            let e = svc.ready().await.unwrap().call(()).await.unwrap_err();
            assert!(e.is::<TimedOut>(), "{e}");
        };
        // One after the other.
        for _ in 0..3 {
            paused().block_on(call());
        }
        // Two alive at once: a call in `a` stays pending, so `a`'s driver stays armed, while `a`
        // sits idle and `b` runs calls of the same limit.
        let (a, b) = (paused(), paused());
        let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(forever));
        a.block_on(svc.ready()).unwrap();
        let mut held = {
            let _in = a.enter();
            Box::pin(svc.call(()))
        };
        {
            let _in = a.enter();
            let mut cx = Context::from_waker(Waker::noop());
            assert!(held.as_mut().poll(&mut cx).is_pending(), "armed in `a`");
        }
        for _ in 0..3 {
            b.block_on(call());
        }
        let e = a.block_on(held).unwrap_err();
        assert!(e.is::<TimedOut>(), "{e}");
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("every runtime's timeout fired");
}

#[test]
fn timers_armed_on_threads_that_have_exited_still_fire() {
    // Each thread arms a call's timer in the runtime and exits; its queue outlives it (and is handed
    // to the next thread), and the runtime's driver fires every call once the runtime runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let handle = rt.handle().clone();
            std::thread::spawn(move || {
                let _in = handle.enter();
                let mut svc = TimeoutLayer::new(LIMIT).layer(service_fn(forever));
                let mut call = Box::pin(svc.call(()));
                let mut cx = Context::from_waker(Waker::noop());
                assert!(call.as_mut().poll(&mut cx).is_pending(), "armed");
                call
            })
            .join()
            .unwrap()
        })
        .collect();
    rt.block_on(async {
        for call in calls {
            let e = tokio::time::timeout(Duration::from_secs(60), call)
                .await
                .expect("fired")
                .unwrap_err();
            assert!(e.is::<TimedOut>(), "{e}");
        }
    });
}

#[test]
fn a_runtime_without_time_panics_on_every_timer_instead_of_never_firing_one() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    for attempt in 0..3 {
        let joined = local.block_on(&rt, async {
            // Pending once: the timer is armed (the first time, its driver cannot be spawned).
            let call = TimeoutLayer::new(LIMIT)
                .layer(service_fn(|()| Once(true)))
                .oneshot(());
            tokio::task::spawn_local(call).await
        });
        let e = joined.expect_err("no timers in this runtime");
        assert!(e.is_panic(), "attempt {attempt}: {e}");
    }
}
