//! Startup benchmark: `keel standalone` from spawn to all three components healthy, and idle RSS.
//!
//! Runs several rounds (first start creates the sample repository; later ones reuse it) and
//! prints medians.

use std::time::{Duration, Instant};

use keel_bench::{keel_binary, median, rss_kib};
use keel_test_support::{KeelProcess, get};

const ROUNDS: usize = 15;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = keel_binary();
    let data = std::env::temp_dir().join(format!("keel-bench-startup-{}", std::process::id()));
    let data_str = data.display().to_string();
    let mut startup_ms = Vec::new();
    let mut rss_mib = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        let process = KeelProcess::start(
            &bin,
            &[
                "standalone",
                "--registry-bind",
                "127.0.0.1:0",
                "--config-bind",
                "127.0.0.1:0",
                "--gateway-bind",
                "127.0.0.1:0",
                "--data-dir",
                &data_str,
            ],
            &[],
            &["registry", "config", "gateway"],
        );
        for component in ["registry", "config", "gateway"] {
            let addr = process.addr(component);
            loop {
                if let Ok(r) = get(addr, "/actuator/health").await
                    && r.status == 200
                {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(30),
                    "{component} never became healthy"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        // Let the process settle before reading idle memory.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss = rss_kib(process.pid()).unwrap_or(0) as f64 / 1024.0;
        println!("round {round:>2}: healthy after {elapsed:6.1} ms, idle RSS {rss:5.1} MiB");
        startup_ms.push(elapsed);
        rss_mib.push(rss);
    }
    let _ = std::fs::remove_dir_all(&data);
    println!(
        "startup to all-healthy: median {:.1} ms (goal < 200 ms); idle RSS: median {:.1} MiB (goal < 30 MiB)",
        median(&mut startup_ms),
        median(&mut rss_mib)
    );
    Ok(())
}
