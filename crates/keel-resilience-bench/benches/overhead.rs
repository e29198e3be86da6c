//! Overhead of one call through breaker + bulkhead + timeout vs tower's ConcurrencyLimit + Timeout.
//!
//! Run: `cargo bench -p keel-resilience-bench --bench overhead`. Each future is polled by hand with a no-op
//! waker inside a runtime context, so the figures are the layers' own cost (plus the bare service,
//! measured as `baseline`). "pending once" futures return `Pending` on the first poll, so the timeout's
//! timer really registers. Ratios of medians (keel / tower) are printed at the end, and each keel layer
//! alone (boxed, so comparable with each other only) plus the whole command as a layer.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use std::hint::black_box;

use criterion::Criterion;
use keel_resilience::layer::{BoxError, BreakerLayer, BulkheadLayer, CommandLayer, TimeoutLayer};
use keel_resilience::{BreakerConfig, Bulkhead, CircuitBreaker, Command, CommandConfig};
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

type Samples = Mutex<BTreeMap<String, Vec<f64>>>;

fn record(samples: &Samples, name: &str, elapsed: Duration, iters: u64) {
    samples
        .lock()
        .unwrap()
        .entry(name.to_owned())
        .or_default()
        .push(elapsed.as_nanos() as f64 / iters as f64);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// Runs `iters` calls on each of `threads` threads at once; returns the slowest thread's time.
fn run<S>(svc: &S, threads: usize, iters: u64, pending_once: bool) -> Duration
where
    S: Service<bool, Response = u64, Error = BoxError> + Clone + Send,
{
    let go = Arc::new(std::sync::Barrier::new(threads));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut svc = svc.clone();
                let go = Arc::clone(&go);
                s.spawn(move || {
                    let rt = runtime();
                    let _ctx = rt.enter();
                    let mut cx = Context::from_waker(Waker::noop());
                    go.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(one(&mut svc, pending_once, &mut cx));
                    }
                    start.elapsed()
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

fn bench(c: &mut Criterion, samples: &Samples) {
    let rt = runtime();
    let _ctx = rt.enter();
    for (mode, pending_once) in [("ready", false), ("pending_once", true)] {
        let mut g = c.benchmark_group(format!("one_call/{mode}"));
        for (stack, name) in [(0, "baseline"), (1, "keel"), (2, "tower")] {
            let id = format!("{mode}/1thread/{name}");
            g.bench_function(format!("1thread/{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut cx = Context::from_waker(Waker::noop());
                    let start = Instant::now();
                    match stack {
                        0 => {
                            let mut s = Leaf;
                            for _ in 0..iters {
                                black_box(one(&mut s, pending_once, &mut cx));
                            }
                        }
                        1 => {
                            let mut s = keel_stack();
                            for _ in 0..iters {
                                black_box(one(&mut s, pending_once, &mut cx));
                            }
                        }
                        _ => {
                            let mut s = tower_stack();
                            for _ in 0..iters {
                                black_box(one(&mut s, pending_once, &mut cx));
                            }
                        }
                    }
                    let e = start.elapsed();
                    record(samples, &id, e, iters);
                    e
                })
            });
            if stack == 0 {
                continue;
            }
            let id2 = format!("{mode}/2threads/{name}");
            g.bench_function(format!("2threads/{name}"), |b| {
                b.iter_custom(|iters| {
                    let e = if stack == 1 {
                        run(&keel_stack(), 2, iters, pending_once)
                    } else {
                        run(&tower_stack(), 2, iters, pending_once)
                    };
                    record(samples, &id2, e, iters);
                    e
                })
            });
        }
        // Layers alone are boxed (as a type-erased service): compare them with each other, not with the stacks.
        for which in SINGLE {
            let id = format!("{mode}/1thread/{which}");
            g.bench_function(format!("1thread/{which}"), |b| {
                b.iter_custom(|iters| {
                    let mut s = single_layer(which);
                    let mut cx = Context::from_waker(Waker::noop());
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(one(&mut s, pending_once, &mut cx));
                    }
                    let e = start.elapsed();
                    record(samples, &id, e, iters);
                    e
                })
            });
        }
        g.finish();
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let samples = Samples::default();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &samples);
    c.final_summary();
    let m: BTreeMap<String, f64> = samples
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), median(v)))
        .collect();
    if m.is_empty() {
        return;
    }
    println!("\nMedian ns per call (added = minus the bare service, same mode):");
    for mode in ["ready", "pending_once"] {
        let base = m
            .get(&format!("{mode}/1thread/baseline"))
            .copied()
            .unwrap_or(0.0);
        for threads in ["1thread", "2threads"] {
            let (Some(k), Some(t)) = (
                m.get(&format!("{mode}/{threads}/keel")),
                m.get(&format!("{mode}/{threads}/tower")),
            ) else {
                continue;
            };
            println!(
                "  {mode:<12} {threads:<8} keel {k:7.1} (added {:6.1})  tower ConcurrencyLimit+Timeout {t:7.1} (added {:6.1})  keel/tower = {:.2}",
                k - base,
                t - base,
                k / t
            );
        }
        let single: Vec<String> = SINGLE
            .iter()
            .filter_map(|w| {
                m.get(&format!("{mode}/1thread/{w}"))
                    .map(|v| format!("{w} {v:.1}"))
            })
            .collect();
        println!(
            "  {mode:<12} one boxed layer each, 1 thread: {}",
            single.join(", ")
        );
    }
}
