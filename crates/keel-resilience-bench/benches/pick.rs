//! Cost of one pick (and release) among 100 instances: P2C peak-EWMA vs round robin and random as peers.
//!
//! Run: `cargo bench -p keel-resilience-bench --bench pick`. Ratios of medians against round robin are printed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
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

fn main() {
    let samples: Mutex<BTreeMap<&str, Vec<f64>>> = Mutex::default();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("pick_100");
    for (name, strategy) in [
        ("p2c_peak_ewma", Strategy::PeakEwmaP2c),
        ("round_robin", Strategy::RoundRobin),
        ("random", Strategy::Random),
    ] {
        let b = balancer(strategy);
        g.bench_function(name, |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(b.pick());
                }
                let e = start.elapsed();
                samples
                    .lock()
                    .unwrap()
                    .entry(name)
                    .or_default()
                    .push(e.as_nanos() as f64 / iters as f64);
                e
            })
        });
    }
    g.finish();
    c.final_summary();
    let med = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: BTreeMap<_, _> = samples
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (*k, med(v)))
        .collect();
    if let (Some(p), Some(rr)) = (m.get("p2c_peak_ewma"), m.get("round_robin")) {
        println!(
            "\nMedian ns per pick+release among 100: p2c {p:.1}, round robin {rr:.1}, p2c/rr = {:.2}",
            p / rr
        );
        if let Some(r) = m.get("random") {
            println!("random {r:.1}");
        }
    }
}
