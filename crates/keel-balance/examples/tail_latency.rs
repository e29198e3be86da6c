//! Tail-latency simulation: P2C peak-EWMA vs round robin with one of ten instances slowed 10x.
//!
//! Run: `cargo run --release -p keel-balance --example tail_latency`. Virtual time (a paused tokio
//! clock) makes it deterministic in shape and fast: 10 instances with 4 workers each and a FIFO queue,
//! service time 2–8 ms (instance 0: 20–80 ms), Poisson-ish arrivals at 2 000 req/s for 60 000 requests.

use std::sync::Arc;
use std::time::Duration;

use keel_balance::{Balancer, BalancerConfig, InstanceSpec, Strategy};
use tokio::sync::Semaphore;
use tokio::time::Instant;

const INSTANCES: usize = 10;
const WORKERS: usize = 4;
const REQUESTS: usize = 60_000;
const RATE_PER_SEC: f64 = 2_000.0;

async fn simulate(strategy: Strategy) -> Vec<Duration> {
    let servers: Vec<Arc<Semaphore>> = (0..INSTANCES)
        .map(|_| Arc::new(Semaphore::new(WORKERS)))
        .collect();
    let list = (0..INSTANCES)
        .map(|i| InstanceSpec::new(format!("i{i}"), i))
        .collect();
    let balancer = Arc::new(Balancer::new(
        BalancerConfig {
            strategy,
            ..Default::default()
        },
        list,
    ));
    let mut tasks = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let (b, servers) = (Arc::clone(&balancer), servers.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let pick = b.pick().expect("instances");
            let i = *pick.endpoint();
            let _worker = servers[i].acquire().await.expect("semaphore open");
            let base = 2.0 + fastrand::f64() * 6.0;
            let ms = if i == 0 { base * 10.0 } else { base };
            tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
            b.success(pick);
            start.elapsed()
        }));
        // Exponential inter-arrival times.
        let gap = -(1.0 - fastrand::f64()).ln() / RATE_PER_SEC;
        tokio::time::sleep(Duration::from_secs_f64(gap)).await;
    }
    let mut out = Vec::with_capacity(REQUESTS);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    fastrand::seed(7);
    println!(
        "{INSTANCES} instances x {WORKERS} workers, one slowed 10x, {REQUESTS} requests at {RATE_PER_SEC} req/s"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>10}",
        "strategy", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (name, s) in [
        ("round robin", Strategy::RoundRobin),
        ("p2c peak-ewma", Strategy::PeakEwmaP2c),
    ] {
        let lat = rt.block_on(simulate(s));
        println!(
            "{name:<16} {:>9.1} {:>9.1} {:>9.1} {:>10.1}",
            pct(&lat, 50.0),
            pct(&lat, 99.0),
            pct(&lat, 99.9),
            pct(&lat, 100.0)
        );
    }
}
