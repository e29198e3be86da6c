//! Closed-loop peak load with wrk (keep-alive), parsed from its `--latency` report.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

/// One wrk run.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

fn ms(s: &str) -> Option<f64> {
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Runs `wrk -t{threads} -c{connections} -d{duration}` against `url`.
pub fn run(
    url: &str,
    threads: u32,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            "--latency",
            url,
        ])
        .output()
        .context("run wrk")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut r = WrkResult {
        requests: 0,
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => r.p50_ms = ms(v).unwrap_or(0.0),
            ["99%", v] => r.p99_ms = ms(v).unwrap_or(0.0),
            [n, "requests", "in", ..] => r.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                r.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if r.rps == 0.0 {
        bail!("could not read wrk's report:\n{text}");
    }
    Ok(r)
}
