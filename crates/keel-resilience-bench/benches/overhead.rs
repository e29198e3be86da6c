//! Overhead of one call through breaker + bulkhead + timeout vs tower's ConcurrencyLimit + Timeout.
//!
//! Run: `cargo bench -p keel-resilience-bench --bench overhead`. Each future is polled by hand with a no-op
//! waker, inside a task as calls in a service are (the loop is the task's one synchronous poll), so the
//! figures are the layers' own cost (plus the bare service, measured as `baseline`). "pending once" futures return `Pending` on the first poll, so the timeout's
//! timer really registers. After criterion's own report, a summary is measured interleaved (each round
//! times every contender in turn, so load from other processes hits all of them alike) and printed as
//! medians over the rounds: keel / tower ratios, each keel layer alone (boxed, so comparable with each
//! other only), the whole command as a layer, and the cost of one clock read.
//!
//! `OVERHEAD_PROFILE=1thread/keel,pending` (a contender's name, `,pending` for the pending-once mode;
//! `OVERHEAD_ITERS`, default a million; `OVERHEAD_REPEAT`, default once) runs just that, for a profiler
//! such as callgrind or perf.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use keel_resilience::layer::{BoxError, BreakerLayer, BulkheadLayer, CommandLayer, TimeoutLayer};
use keel_resilience::{BreakerConfig, Bulkhead, CircuitBreaker, Command, CommandConfig};
use tokio::runtime::Runtime;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

/// Ready at once, or after one `Pending`.
struct Work {
    pending_once: bool,
}

impl Future for Work {
    type Output = Result<u64, BoxError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.pending_once {
            self.pending_once = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(1))
    }
}

#[derive(Clone)]
struct Leaf;

impl Service<bool> for Leaf {
    type Response = u64;
    type Error = BoxError;
    type Future = Work;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, pending_once: bool) -> Work {
        Work { pending_once }
    }
}

/// One call: poll_ready, call, poll to completion.
#[inline]
fn one<S>(svc: &mut S, pending_once: bool, cx: &mut Context<'_>) -> u64
where
    S: Service<bool, Response = u64>,
    S::Error: std::fmt::Debug,
{
    loop {
        if let Poll::Ready(r) = svc.poll_ready(cx) {
            r.expect("ready");
            break;
        }
    }
    let mut fut = pin!(svc.call(pending_once));
    loop {
        if let Poll::Ready(r) = fut.as_mut().poll(cx) {
            return r.expect("call succeeds");
        }
    }
}

fn keel_stack() -> impl Service<bool, Response = u64, Error = BoxError, Future: Send> + Clone + Send
{
    ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::new(CircuitBreaker::new(
            BreakerConfig::default(),
        ))))
        .layer(BulkheadLayer::new(Arc::new(Bulkhead::new(1 << 20))))
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(Leaf)
}

fn tower_stack() -> impl Service<bool, Response = u64, Error = BoxError, Future: Send> + Clone + Send
{
    ServiceBuilder::new()
        .concurrency_limit(1 << 20)
        .timeout(Duration::from_secs(1))
        .service(Leaf)
}

/// Each keel layer alone over the bare service, and the whole Hystrix-style command as a layer.
fn single_layer(which: &str) -> BoxCloneSyncService<bool, u64, BoxError> {
    let b = ServiceBuilder::new();
    match which {
        "breaker" => BoxCloneSyncService::new(
            b.layer(BreakerLayer::new(Arc::new(CircuitBreaker::new(
                BreakerConfig::default(),
            ))))
            .service(Leaf),
        ),
        "bulkhead" => BoxCloneSyncService::new(
            b.layer(BulkheadLayer::new(Arc::new(Bulkhead::new(1 << 20))))
                .service(Leaf),
        ),
        "timeout" => BoxCloneSyncService::new(
            b.layer(TimeoutLayer::new(Duration::from_secs(1)))
                .service(Leaf),
        ),
        _ => BoxCloneSyncService::new(
            b.layer(CommandLayer::new(Command::standalone(
                "bench",
                CommandConfig {
                    max_concurrent_requests: 1 << 20,
                    ..CommandConfig::default()
                },
            )))
            .service(Leaf),
        ),
    }
}

const SINGLE: [&str; 4] = ["breaker", "bulkhead", "timeout", "command"];

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `f` as (the one poll of) a task on `rt`.
fn in_task<R: Send + 'static>(rt: &Runtime, f: impl FnOnce() -> R + Send + 'static) -> R {
    let task = rt.spawn(async move { f() });
    rt.block_on(task).expect("bench task")
}

/// Runs `iters` calls on each of `threads` threads at once; returns the slowest thread's time.
fn run<S>(svc: &S, threads: usize, iters: u64, pending_once: bool) -> Duration
where
    S: Service<bool, Response = u64, Error = BoxError> + Clone + Send + 'static,
{
    run_each(|| svc.clone(), threads, iters, pending_once)
}

/// [`run`] with each thread's service from `make` (a stack of its own shares nothing).
fn run_each<S>(make: impl Fn() -> S, threads: usize, iters: u64, pending_once: bool) -> Duration
where
    S: Service<bool, Response = u64, Error = BoxError> + Send + 'static,
{
    let go = Arc::new(std::sync::Barrier::new(threads));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = make();
                let go = Arc::clone(&go);
                s.spawn(move || {
                    let rt = runtime();
                    in_task(&rt, move || {
                        let mut cx = Context::from_waker(Waker::noop());
                        go.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(one(&mut svc, pending_once, &mut cx));
                        }
                        start.elapsed()
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

/// `iters` calls on the current thread, in a task on `rt`.
fn run_here<S>(rt: &Runtime, mut svc: S, iters: u64, pending_once: bool) -> Duration
where
    S: Service<bool, Response = u64> + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    in_task(rt, move || {
        let mut cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        for _ in 0..iters {
            black_box(one(&mut svc, pending_once, &mut cx));
        }
        start.elapsed()
    })
}

/// What is measured: a stack on one or two threads, a keel layer alone, or the clock.
#[derive(Clone, Copy)]
enum Contender {
    Baseline,
    Keel(usize),
    Tower(usize),
    /// Keel on two threads, each with a stack of its own: what two busy threads cost on this machine.
    KeelUnshared,
    Single(&'static str),
    Clock,
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Baseline => "1thread/baseline".into(),
            Contender::Keel(t) => format!("{}/keel", threads(t)),
            Contender::Tower(t) => format!("{}/tower", threads(t)),
            Contender::KeelUnshared => "2threads/keel_unshared".into(),
            Contender::Single(w) => format!("1thread/{w}"),
            Contender::Clock => "clock_read".into(),
        }
    }

    /// Time of `iters` calls (the slowest thread's, with two threads).
    fn measure(self, rt: &Runtime, iters: u64, pending_once: bool) -> Duration {
        match self {
            Contender::Baseline => run_here(rt, Leaf, iters, pending_once),
            Contender::Keel(1) => run_here(rt, keel_stack(), iters, pending_once),
            Contender::Tower(1) => run_here(rt, tower_stack(), iters, pending_once),
            Contender::Keel(t) => run(&keel_stack(), t, iters, pending_once),
            Contender::Tower(t) => run(&tower_stack(), t, iters, pending_once),
            Contender::KeelUnshared => run_each(keel_stack, 2, iters, pending_once),
            Contender::Single(w) => run_here(rt, single_layer(w), iters, pending_once),
            Contender::Clock => {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio::time::Instant::now());
                }
                start.elapsed()
            }
        }
    }
}

fn threads(t: usize) -> &'static str {
    if t == 1 { "1thread" } else { "2threads" }
}

fn contenders() -> Vec<Contender> {
    let mut v = vec![
        Contender::Baseline,
        Contender::Keel(1),
        Contender::Tower(1),
        Contender::Keel(2),
        Contender::Tower(2),
    ];
    v.extend(SINGLE.map(Contender::Single));
    v.push(Contender::KeelUnshared);
    v
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = runtime();
    // `OVERHEAD_PROFILE=<contender>[,pending]`: only that contender, for a profiler (callgrind, perf).
    if let Ok(which) = std::env::var("OVERHEAD_PROFILE") {
        let pending_once = which.ends_with(",pending");
        let name = which.trim_end_matches(",pending");
        let who = contenders()
            .into_iter()
            .chain([Contender::Clock])
            .find(|w| w.name() == name)
            .unwrap_or_else(|| panic!("no contender {name}"));
        let iters = std::env::var("OVERHEAD_ITERS").map_or(1_000_000, |v| v.parse().unwrap());
        // `OVERHEAD_REPEAT`: measure that many times in this process (state carried between runs).
        let repeat = std::env::var("OVERHEAD_REPEAT").map_or(1, |v| v.parse().unwrap());
        for _ in 0..repeat {
            let t = who.measure(&rt, iters, pending_once);
            println!(
                "{name}: {:.1} ns per call",
                t.as_nanos() as f64 / iters as f64
            );
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for (mode, pending_once) in [("ready", false), ("pending_once", true)] {
        let mut g = c.benchmark_group(format!("one_call/{mode}"));
        for who in contenders() {
            g.bench_function(who.name(), |b| {
                b.iter_custom(|iters| who.measure(&rt, iters, pending_once))
            });
        }
        g.finish();
    }
    c.bench_function("clock_read", |b| {
        b.iter_custom(|iters| Contender::Clock.measure(&rt, iters, false))
    });
    c.final_summary();
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }

    const ROUNDS: usize = 31;
    const ITERS: u64 = 50_000;
    println!(
        "\nMedian ns per call over {ROUNDS} interleaved rounds of {ITERS} (added = minus the bare service, same mode):"
    );
    let mut clock = Vec::with_capacity(ROUNDS * 2);
    for (mode, pending_once) in [("ready", false), ("pending_once", true)] {
        let who = contenders();
        let mut rounds: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); who.len()];
        for _ in 0..ROUNDS {
            for (r, w) in rounds.iter_mut().zip(&who) {
                r.push(w.measure(&rt, ITERS, pending_once).as_nanos() as f64 / ITERS as f64);
            }
            clock
                .push(Contender::Clock.measure(&rt, ITERS, false).as_nanos() as f64 / ITERS as f64);
        }
        let m: Vec<f64> = rounds.into_iter().map(median).collect();
        let base = m[0];
        for (k, t, label) in [(m[1], m[2], "1thread"), (m[3], m[4], "2threads")] {
            println!(
                "  {mode:<12} {label:<8} keel {k:7.1} (added {:6.1})  tower ConcurrencyLimit+Timeout {t:7.1} (added {:6.1})  keel/tower = {:.2}",
                k - base,
                t - base,
                k / t
            );
        }
        let single: Vec<String> = SINGLE
            .iter()
            .zip(&m[5..5 + SINGLE.len()])
            .map(|(w, v)| format!("{w} {v:.1}"))
            .collect();
        println!(
            "  {mode:<12} one boxed layer each, 1 thread: {}",
            single.join(", ")
        );
        println!(
            "  {mode:<12} 2 threads, each with a keel stack of its own (nothing shared): {:.1}",
            m[5 + SINGLE.len()]
        );
    }
    println!(
        "  one clock read (tokio::time::Instant::now) {:.1}: tower's timeout reads it once per call; keel reads the time-stamp counter (quanta) once per call here",
        median(clock)
    );
}
