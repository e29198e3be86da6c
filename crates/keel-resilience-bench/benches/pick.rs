//! Cost of one pick (and release) among 100 instances: P2C peak-EWMA vs round robin and random as peers.
//!
//! Run: `cargo bench -p keel-resilience-bench --bench pick`. After criterion's own report, the summary
//! is measured interleaved (each round times every contender in turn, so load from other processes
//! hits all of them alike) and printed as medians over the rounds, with ratios against round robin.
//! Two ways to pick: `pick_at(now)` with the caller's clock reading (the start of the call, which a
//! caller timing its calls reads anyway), which is the balancer's own cost, and `pick()`, which reads
//! the clock itself; the cost of that one clock read is printed too.

use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use keel_balance::{Balancer, BalancerConfig, InstanceSpec, Strategy};

fn balancer(strategy: Strategy) -> Balancer<u32> {
    let list = (0..100)
        .map(|i| InstanceSpec::new(format!("10.0.0.{i}:8080"), i))
        .collect();
    let b = Balancer::new(
        BalancerConfig {
            strategy,
            ..Default::default()
        },
        list,
    );
    // Give every instance a latency sample so costs differ.
    for _ in 0..1000 {
        if let Some(p) = b.pick() {
            b.success(p);
        }
    }
    b
}

/// How a contender is measured.
#[derive(Clone, Copy)]
enum Op {
    /// `pick()`: the balancer reads the clock itself (the start of the call's RTT sample).
    Pick,
    /// `pick_at(now)`: the caller passes the reading it takes anyway to time the call, so this is the
    /// balancer's own cost. One reading per batch here.
    PickAt,
    /// One `tokio::time::Instant::now()`.
    Clock,
}

const CONTENDERS: [(&str, Strategy, Op); 7] = [
    ("p2c_peak_ewma/pick_at", Strategy::PeakEwmaP2c, Op::PickAt),
    ("round_robin/pick_at", Strategy::RoundRobin, Op::PickAt),
    ("random/pick_at", Strategy::Random, Op::PickAt),
    ("p2c_peak_ewma/pick", Strategy::PeakEwmaP2c, Op::Pick),
    ("round_robin/pick", Strategy::RoundRobin, Op::Pick),
    ("random/pick", Strategy::Random, Op::Pick),
    ("clock_read", Strategy::RoundRobin, Op::Clock),
];

/// `iters` picks (each released at once), or `iters` clock reads; ns per operation.
fn time(b: &Balancer<u32>, op: Op, iters: u64) -> f64 {
    let start = Instant::now();
    match op {
        Op::Pick => {
            for _ in 0..iters {
                black_box(b.pick());
            }
        }
        Op::PickAt => {
            let now = tokio::time::Instant::now();
            for _ in 0..iters {
                black_box(b.pick_at(black_box(now)));
            }
        }
        Op::Clock => {
            for _ in 0..iters {
                black_box(tokio::time::Instant::now());
            }
        }
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let balancers: Vec<Balancer<u32>> = CONTENDERS.iter().map(|c| balancer(c.1)).collect();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("pick_100");
    for ((name, _, op), b) in CONTENDERS.iter().zip(&balancers) {
        g.bench_function(*name, |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                time(b, *op, iters);
                start.elapsed()
            })
        });
    }
    g.finish();
    c.final_summary();
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    const ROUNDS: usize = 41;
    const ITERS: u64 = 100_000;
    let mut rounds: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); CONTENDERS.len()];
    for _ in 0..ROUNDS {
        for ((r, b), (_, _, op)) in rounds.iter_mut().zip(&balancers).zip(&CONTENDERS) {
            r.push(time(b, *op, ITERS));
        }
    }
    let m: Vec<f64> = rounds.into_iter().map(median).collect();
    println!("\nMedian ns per pick+release among 100, {ROUNDS} interleaved rounds of {ITERS}:");
    for (label, [p2c, rr, random]) in [
        (
            "pick_at(now), the balancer's own cost (the caller's clock reading passed in)",
            [m[0], m[1], m[2]],
        ),
        ("pick(), including its one clock read", [m[3], m[4], m[5]]),
    ] {
        println!(
            "  {label}:\n    p2c {p2c:.1}, round robin {rr:.1}, random {random:.1}; p2c/rr = {:.2}, random/rr = {:.2}",
            p2c / rr,
            random / rr
        );
    }
    println!("  one clock read (tokio::time::Instant::now) {:.1}", m[6]);
}
