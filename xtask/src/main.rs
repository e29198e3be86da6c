//! Project automation: `cargo xtask ci` (the README's test command), `cargo xtask bench <name>`
//! and `cargo xtask docker` (the container images).

mod bench;
mod ci;
mod docker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Keel's project automation")]
struct Xtask {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Everything CI checks: rustfmt, clippy -D warnings, then every test (with nextest). Sets up
    /// what the tests need first: a Python venv with the real client libraries in target/venv.
    Ci {
        /// Skip rustfmt and clippy (for a quick local test run).
        #[arg(long)]
        tests_only: bool,
        /// Extra arguments for `cargo nextest run`, e.g. a test filter.
        #[arg(last = true)]
        nextest_args: Vec<String>,
    },
    /// Only prepare the test environment (Python venv with the client libraries, nats-server,
    /// redis-server).
    Prepare,
    /// Build the container images (keel, keel-demo-callee, keel-demo-caller, keel-nats) from
    /// the static release binaries; Dockerfiles in deploy/, contexts staged in target/docker/.
    Docker,
    /// Run a benchmark by name; `cargo xtask bench list` shows them.
    Bench {
        name: String,
        /// Extra arguments passed to the benchmark.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Xtask::parse().command {
        Task::Ci {
            tests_only,
            nextest_args,
        } => ci::run(tests_only, &nextest_args),
        Task::Prepare => ci::prepare()
            .and_then(|_| ci::prepare_nats())
            .and_then(|_| ci::prepare_redis())
            .map(|_| ()),
        Task::Bench { name, args } => bench::run(&name, &args),
        Task::Docker => docker::run(),
    }
}
