//! Shared pieces of the benchmark harnesses: locating the release binary, medians, RSS, load tools.

pub mod fixed_rate;
pub mod nginx;
pub mod proc_stat;
pub mod wrk;

use std::path::PathBuf;

/// The release `keel` binary that `cargo xtask bench` builds before running a harness.
pub fn keel_binary() -> PathBuf {
    // Not a KEEL_* name: keel refuses unknown KEEL_* variables, and harnesses pass their
    // environment on to the processes they start.
    if let Some(path) = std::env::var_os("BENCH_KEEL_BINARY") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("target/x86_64-unknown-linux-gnu/release/keel")
}

/// The median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The `q` quantile (0..=1) of `samples` (sorted in place).
pub fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[idx]
}

/// Resident set size of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
