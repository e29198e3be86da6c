//! `cargo xtask bench <name>`: the benchmarks, each comparing Keel with a named peer in the same run.

use anyhow::bail;

use crate::ci::{cargo, run_checked};

/// (name, what it measures, cargo arguments).
const BENCHES: &[(&str, &str, &[&str])] = &[
    (
        "startup",
        "keel standalone: time from spawn to all components healthy, and idle RSS",
        &[
            "run",
            "--release",
            "-p",
            "keel-bench",
            "--bin",
            "startup",
            "--",
        ],
    ),
    (
        "gateway",
        "keel gateway vs nginx reverse proxy (same nginx backend): wrk peak, CPU/request, RSS, fixed-rate p99",
        &[
            "run",
            "--release",
            "-p",
            "keel-bench",
            "--bin",
            "gateway",
            "--",
        ],
    ),
    (
        "registry",
        "keel registry vs a trivial hyper handler: renewals/s and RSS with 100k instances, GET /apps p99 with 10k, cancel-to-watcher p99",
        &[
            "run",
            "--release",
            "-p",
            "keel-bench",
            "--bin",
            "registry",
            "--",
        ],
    ),
    (
        "config",
        "keel config vs nginx serving the same JSON (GET /{app}/{profile} req/s, p99), commit+webhook to 1,000 SSE watchers p99, RSS with 1,000 files x 100 commits",
        &[
            "run",
            "--release",
            "-p",
            "keel-bench",
            "--bin",
            "config",
            "--",
        ],
    ),
];

pub fn run(name: &str, args: &[String]) -> anyhow::Result<()> {
    if name == "list" {
        for (name, what, _) in BENCHES {
            println!("{name:<16} {what}");
        }
        return Ok(());
    }
    let Some((_, _, cargo_args)) = BENCHES.iter().find(|(n, _, _)| *n == name) else {
        bail!("unknown benchmark `{name}`; `cargo xtask bench list` shows them");
    };
    // Harnesses drive the release binary as a separate process.
    run_checked(cargo().args(["build", "--release", "-p", "keel"]))?;
    run_checked(cargo().args(*cargo_args).args(args))
}
