//! Cost of one pick (and release) among 100 instances: P2C peak-EWMA vs round robin and random as peers.
//!
//! Run: `cargo bench -p keel-resilience-bench --bench pick`. After criterion's own report, the summary
//! is measured interleaved (each round times every contender in turn, so load from other processes
//! hits all of them alike) and printed as medians over the rounds, with ratios against round robin
//! and the cost of one clock read: every pick reads the clock once (the start of the call's RTT
//! sample), so that is the floor of any strategy here.

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

const CONTENDERS: [(&str, Option<Strategy>); 4] = [
    ("p2c_peak_ewma", Some(Strategy::PeakEwmaP2c)),
    ("round_robin", Some(Strategy::RoundRobin)),
    ("random", Some(Strategy::Random)),
    ("clock_read", None),
];

/// `iters` picks (each released at once), or `iters` clock reads; ns per operation.
fn time(b: Option<&Balancer<u32>>, iters: u64) -> f64 {
    let start = Instant::now();
    match b {
        Some(b) => {
            for _ in 0..iters {
                black_box(b.pick());
            }
        }
        None => {
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
    let balancers: Vec<Option<Balancer<u32>>> =
        CONTENDERS.iter().map(|(_, s)| s.map(balancer)).collect();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("pick_100");
    for ((name, _), b) in CONTENDERS.iter().zip(&balancers) {
        g.bench_function(*name, |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                time(b.as_ref(), iters);
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
        for (r, b) in rounds.iter_mut().zip(&balancers) {
            r.push(time(b.as_ref(), ITERS));
        }
    }
    let m: Vec<f64> = rounds.into_iter().map(median).collect();
    let (p2c, rr, random, clock) = (m[0], m[1], m[2], m[3]);
    println!(
        "\nMedian ns per pick+release among 100, {ROUNDS} interleaved rounds of {ITERS}: \
         p2c {p2c:.1}, round robin {rr:.1}, random {random:.1}; p2c/rr = {:.2}, random/rr = {:.2}",
        p2c / rr,
        random / rr
    );
    println!("one clock read (tokio::time::Instant::now, once per pick) {clock:.1}");
}
