//! `cargo xtask ci`: format and lint checks, test prerequisites, then the whole test suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("spawn {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn run(tests_only: bool, nextest_args: &[String]) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    if !tests_only {
        run_checked(cargo().args(["fmt", "--all", "--", "--check"]))?;
        run_checked(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        // keel-resilience's production clock, which the workspace build (with `paused-clock`
        // unified on) does not compile: see the counter-clock tests below.
        run_checked(cargo().args([
            "clippy",
            "-p",
            "keel-resilience-bench",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    let python = prepare()?;
    let nats = prepare_nats()?;
    let redis = prepare_redis()?;
    prepare_browser()?;
    prepare_images()?;
    // The Docker chaos suite saturates both cores with containers and load for about a minute, so
    // it runs on its own after everything else rather than starving subprocess tests beside it.
    // Both runs share one build.
    let nextest = |filter: &str| {
        let mut cmd = cargo();
        cmd.args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "-E",
            filter,
        ])
        .args(nextest_args)
        .env("KEELTEST_PYTHON", &python)
        .env("KEELTEST_NATS_SERVER", &nats)
        .env("KEELTEST_REDIS_SERVER", &redis)
        // The dashboard's browser test fails instead of skipping when Chromium is missing.
        .env("KEELTEST_REQUIRE_BROWSER", "1");
        cmd
    };
    let rest = run_checked(&mut nextest(
        "not package(keel-chaos) and not package(keel-resilience-bench)",
    ));
    // keel-resilience's production clock: a workspace-wide build unifies its `paused-clock` feature
    // on (the paused-clock tests need it), so the tests of the time-stamp counter run only in a
    // build of their own crate alone.
    let counter = run_checked(
        cargo()
            .args([
                "nextest",
                "run",
                "--no-fail-fast",
                "-p",
                "keel-resilience-bench",
            ])
            .args(nextest_args)
            .env("KEELTEST_COUNTER_CLOCK", "1"),
    );
    let chaos = run_checked(&mut nextest("package(keel-chaos)"));
    rest.and(counter).and(chaos)?;
    eprintln!("xtask: ci passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The chaos suite's images (`cargo xtask docker`), when a Docker engine answers. Without one
/// the suite skips, or fails when `CI` is set, so CI cannot pass by accident.
pub fn prepare_images() -> anyhow::Result<()> {
    if crate::docker::engine_available() {
        crate::docker::run()
    } else {
        eprintln!("xtask: no Docker engine; the chaos suite will skip (or fail under CI=1)");
        Ok(())
    }
}

/// Installs Debian's `chromium` and `chromium-driver` (the dashboard's browser test drives them
/// over WebDriver) when either is missing.
pub fn prepare_browser() -> anyhow::Result<()> {
    let present = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| Path::new(p).exists());
    if present {
        return Ok(());
    }
    eprintln!("xtask: chromium or chromedriver not found; installing them with apt-get");
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "-q", "chromium", "chromium-driver"],
    ] {
        let mut cmd = if is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-E", "apt-get"]);
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_checked(&mut cmd)?;
    }
    Ok(())
}

/// Finds Debian's `nats-server` (the config bus tests' broker), installing it with apt-get when
/// it is missing, and returns its path.
pub fn prepare_nats() -> anyhow::Result<PathBuf> {
    prepare_server("nats-server")
}

/// Finds Debian's `redis-server` (the gateway's cluster-wide rate-limit tests start their own),
/// installing it with apt-get when it is missing, and returns its path.
pub fn prepare_redis() -> anyhow::Result<PathBuf> {
    prepare_server("redis-server")
}

/// Finds the program `name`, installing the Debian package of the same name when it is missing.
fn prepare_server(name: &str) -> anyhow::Result<PathBuf> {
    let find = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| !p.as_os_str().is_empty())
    };
    if let Some(path) = find() {
        return Ok(path);
    }
    eprintln!("xtask: {name} not found; installing it with apt-get");
    let apt = |args: &[&str]| {
        let mut cmd = if is_root() {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-E", "apt-get"]);
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_checked(&mut cmd)
    };
    apt(&["update", "-q"])?;
    apt(&["install", "-y", "-q", name])?;
    find().with_context(|| format!("{name} is still not on PATH after apt-get install"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Creates `target/venv` with the pinned client libraries (once), and returns its python.
pub fn prepare() -> anyhow::Result<PathBuf> {
    let root = root();
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    let requirements = root.join("xtask/python-requirements.txt");
    let marker = venv.join(".keel-requirements");
    let wanted = std::fs::read_to_string(&requirements).context("read python requirements")?;
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    let system_python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .context("no python3 on PATH: the tests drive the real Python client libraries")?;
    run_checked(Command::new(system_python).args(["-m", "venv"]).arg(&venv))?;
    run_checked(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&marker, wanted).context("write venv marker")?;
    Ok(python)
}
