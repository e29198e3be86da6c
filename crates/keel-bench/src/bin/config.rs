//! Config-centre benchmark: `GET /{app}/{profile}` from Keel against nginx serving the same JSON
//! body as a static file (the ceiling), commit-plus-webhook propagation to 1,000 SSE watchers,
//! and RSS with a repository of 1,000 files and 100 commits. Prints medians and ratios.
//!
//! Flags: `--rounds N` (default 3), `--seconds S` per wrk run (default 5), `--connections C`
//! (50), `--threads T` for wrk (1), `--watchers W` (1000), `--files F` (1000), `--commits K`
//! (100).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keel_bench::nginx::Nginx;
use keel_bench::{fixed_rate, keel_binary, median, proc_stat, quantile, wrk};
use keel_test_support::{KeelProcess, get, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Options {
    rounds: usize,
    seconds: u64,
    connections: u32,
    threads: u32,
    watchers: usize,
    files: usize,
    commits: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        rounds: 3,
        seconds: 5,
        connections: 50,
        threads: 1,
        watchers: 1000,
        files: 1000,
        commits: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => o.rounds = value.parse()?,
            "--seconds" => o.seconds = value.parse()?,
            "--connections" => o.connections = value.parse()?,
            "--threads" => o.threads = value.parse()?,
            "--watchers" => o.watchers = value.parse()?,
            "--files" => o.files = value.parse()?,
            "--commits" => o.commits = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(o)
}

/// Installs nginx and wrk from Debian when missing.
fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["nginx", "wrk"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t} || test -x /usr/sbin/{t}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {missing:?} with apt-get");
    let ok = Command::new("apt-get").arg("update").status()?.success()
        && Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success();
    if !ok {
        bail!("apt-get install {missing:?} failed");
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .context("run git")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn init_repo(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    git(dir, &["init", "-q", "-b", "main"])?;
    git(dir, &["config", "user.name", "Bench"])?;
    git(dir, &["config", "user.email", "bench@example.com"])?;
    git(dir, &["config", "commit.gpgsign", "false"])
}

fn commit_all(dir: &Path, message: &str) -> anyhow::Result<()> {
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-q", "-m", message])
}

/// A service's configuration as teams write it: a few dozen keys, nested, with a list.
fn service_yaml(name: &str, generation: usize) -> String {
    let mut s = format!(
        "server:\n  port: 8080\n  shutdown: graceful\nspring:\n  application:\n    name: {name}\n  \
         datasource:\n    url: jdbc:postgresql://db:5432/{name}\n    username: {name}\n    \
         hikari:\n      maximum-pool-size: 10\n      connection-timeout: 30000\n\
         management:\n  endpoints:\n    web:\n      exposure:\n        include: health,info,prometheus\n\
         {name}:\n  generation: {generation}\n  feature:\n"
    );
    for i in 0..12 {
        s.push_str(&format!(
            "    flag-{i}: {}\n",
            (i + generation).is_multiple_of(2)
        ));
    }
    s.push_str("  endpoints:\n");
    for i in 0..6 {
        s.push_str(&format!("    - http://backend-{i}.svc:8080/{name}\n"));
    }
    s
}

fn start_config(repo: &Path, data: &Path, env: &[(&str, &str)]) -> KeelProcess {
    KeelProcess::start_own_session(
        &keel_binary(),
        &[
            "config",
            "--bind",
            "127.0.0.1:0",
            "--git-uri",
            &repo.display().to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--refresh-interval",
            "0s",
            // The listening line is what the harness waits for.
            "--log-level",
            "warn,keel_server=info",
        ],
        env,
        &["config"],
    )
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    ensure_tools()?;
    let dir = std::env::temp_dir().join(format!("keel-bench-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(opts: &Options, dir: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let repo = dir.join("repo");
    init_repo(&repo)?;
    std::fs::write(repo.join("application.yml"), service_yaml("shared", 0))?;
    std::fs::write(repo.join("bench.yml"), service_yaml("bench", 0))?;
    std::fs::write(
        repo.join("bench-prod.yml"),
        "server:\n  port: 80\nbench:\n  generation: 0\n",
    )?;
    commit_all(&repo, "initial")?;

    let reads = reads(opts, dir, &repo, &rt)?;
    let debounced = propagation(opts, dir, &repo, &rt, None)?;
    let immediate = propagation(opts, dir, &repo, &rt, Some("0ms"))?;
    let memory = memory(opts, dir)?;

    println!("\n== config bench summary (medians) ==");
    let (k, n) = (&reads.keel, &reads.nginx);
    println!(
        "reads  GET /bench/prod ({} B JSON), wrk -t{} -c{}, {} rounds x {}s",
        reads.body_bytes, opts.threads, opts.connections, opts.rounds, opts.seconds
    );
    for (name, r) in [("keel", k), ("nginx", n)] {
        println!(
            "  {name:<5}  peak {:>7.0} req/s  p50 {:>5.2} ms  p99 {:>5.2} ms  cpu {:>5.1} us/req | open loop at {FIXED_RATE:.0}/s: achieved {:>6.0}, p99 {:>5.2} ms",
            r.rps, r.p50, r.p99, r.cpu, r.fixed_rps, r.fixed_p99
        );
    }
    println!(
        "  keel/nginx throughput {:.2}x (goal >= 0.70x); keel >= 20000 req/s: {}; keel p99 at 20000 req/s <= 5 ms: {}",
        k.rps / n.rps,
        k.rps >= 20_000.0,
        k.fixed_p99 <= 5.0
    );
    for (name, p) in [
        ("debounce 200ms (default)", &debounced),
        ("debounce 0ms", &immediate),
    ] {
        println!(
            "propagation to {} watchers, {name}: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms  (goal p99 < 500 ms)",
            p.watchers, p.p50, p.p99, p.max
        );
    }
    println!(
        "memory: repository of {} files x {} commits: RSS {:.1} MiB after start, {:.1} MiB after reading every app",
        opts.files, opts.commits, memory.0, memory.1
    );
    Ok(())
}

#[derive(Default, Clone, Copy)]
struct Read {
    rps: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    /// Open loop at [`FIXED_RATE`]: achieved rate and p99 (no coordinated omission).
    fixed_rps: f64,
    fixed_p99: f64,
}

/// The reads goal's rate: p99 is judged here, below saturation, as a service would see it.
const FIXED_RATE: f64 = 20_000.0;

struct Reads {
    body_bytes: usize,
    keel: Read,
    nginx: Read,
}

fn peak(url: &str, pid: u32, opts: &Options) -> anyhow::Result<(wrk::WrkResult, f64)> {
    let cpu0 = proc_stat::cpu_seconds(pid);
    let r = wrk::run(
        url,
        opts.threads,
        opts.connections,
        Duration::from_secs(opts.seconds),
    )?;
    let cpu = (proc_stat::cpu_seconds(pid) - cpu0) / r.requests.max(1) as f64 * 1e6;
    Ok((r, cpu))
}

fn reads(
    opts: &Options,
    dir: &Path,
    repo: &Path,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Reads> {
    let keel = start_config(repo, &dir.join("data-reads"), &[]);
    let addr = keel.addr("config");
    let body = rt.block_on(get(addr, "/bench/prod"))?;
    if body.status != 200 {
        bail!("GET /bench/prod: {} {}", body.status, body.body);
    }
    // nginx serves the very same bytes as a static file, with keep-alive: the ceiling.
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("bench"))?;
    std::fs::write(www.join("bench/prod"), &body.body)?;
    let port = free_port()?;
    let d = dir.display();
    let conf = format!(
        "worker_processes auto;\nuser root;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\n\
         daemon off;\nevents {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  \
         keepalive_requests 1000000;\n  default_type application/json;\n  \
         client_body_temp_path {d}/ng-body;\n  proxy_temp_path {d}/ng-proxy;\n  \
         fastcgi_temp_path {d}/ng-fcgi;\n  uwsgi_temp_path {d}/ng-uwsgi;\n  scgi_temp_path {d}/ng-scgi;\n  \
         server {{\n    listen 127.0.0.1:{port} reuseport;\n    root {};\n  }}\n}}\n",
        www.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let nginx = Nginx::start(&conf_path, port)?;
    let keel_url = format!("http://{addr}/bench/prod");
    let nginx_url = format!("http://127.0.0.1:{port}/bench/prod");
    println!(
        "reads: keel config pid {} at {keel_url}, nginx pid {} at {nginx_url}, body {} B",
        keel.pid(),
        nginx.pid(),
        body.body.len()
    );
    // Warm-up, and a check that both answer 200 throughout.
    for url in [&keel_url, &nginx_url] {
        let r = wrk::run(url, opts.threads, opts.connections, Duration::from_secs(2))?;
        if r.errors > 0 {
            bail!("{url} answered {} errors during warm-up", r.errors);
        }
    }
    let mut samples: [Vec<Read>; 2] = Default::default();
    for round in 0..opts.rounds {
        for i in 0..2 {
            let which = (i + round) % 2;
            let (url, pid, name) = if which == 0 {
                (&keel_url, keel.pid(), "keel")
            } else {
                (&nginx_url, nginx.pid(), "nginx")
            };
            let (r, cpu) = peak(url, pid, opts)?;
            println!(
                "round {round} {name:<5} {:>9.0} req/s  p50 {:>5.2} ms  p99 {:>5.2} ms  cpu {:>5.1} us/req  errors {}",
                r.rps, r.p50_ms, r.p99_ms, cpu, r.errors
            );
            let addr: SocketAddr = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .context("url has an address")?
                .parse()?;
            let mut fixed = rt.block_on(fixed_rate::run(
                addr,
                "/bench/prod",
                FIXED_RATE,
                opts.connections as usize,
                Duration::from_secs(opts.seconds),
            ))?;
            let fixed_p99 = quantile(&mut fixed.latencies_ms, 0.99);
            println!(
                "round {round} {name:<5} fixed {:>7.0} req/s achieved  p99 {:>5.2} ms  errors {}",
                fixed.achieved_rps(),
                fixed_p99,
                fixed.errors
            );
            samples[which].push(Read {
                rps: r.rps,
                p50: r.p50_ms,
                p99: r.p99_ms,
                cpu,
                fixed_rps: fixed.achieved_rps(),
                fixed_p99,
            });
        }
    }
    let med = |v: &[Read]| Read {
        rps: median(&mut v.iter().map(|r| r.rps).collect::<Vec<_>>()),
        p50: median(&mut v.iter().map(|r| r.p50).collect::<Vec<_>>()),
        p99: median(&mut v.iter().map(|r| r.p99).collect::<Vec<_>>()),
        cpu: median(&mut v.iter().map(|r| r.cpu).collect::<Vec<_>>()),
        fixed_rps: median(&mut v.iter().map(|r| r.fixed_rps).collect::<Vec<_>>()),
        fixed_p99: median(&mut v.iter().map(|r| r.fixed_p99).collect::<Vec<_>>()),
    };
    Ok(Reads {
        body_bytes: body.body.len(),
        keel: med(&samples[0]),
        nginx: med(&samples[1]),
    })
}

struct Propagation {
    watchers: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// Opens `watch` and returns once its first event (the snapshot) is in.
async fn open_watcher(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        b"GET /keel/v1/watch?application=bench&profile=prod HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&seen, b"event: snapshot") || !contains(&seen, b"\n\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("watch closed before its snapshot");
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(s)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Waits for a `change` event; returns when it arrived.
async fn await_change(mut s: tokio::net::TcpStream) -> anyhow::Result<Instant> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            bail!("watch closed before the change");
        }
        seen.extend_from_slice(&buf[..n]);
        if contains(&seen, b"event: change") {
            return Ok(Instant::now());
        }
    }
}

fn propagation(
    opts: &Options,
    dir: &Path,
    repo: &Path,
    rt: &tokio::runtime::Runtime,
    debounce: Option<&str>,
) -> anyhow::Result<Propagation> {
    let env: Vec<(&str, &str)> = debounce
        .map(|d| vec![("KEEL_CONFIG_DEBOUNCE", d)])
        .unwrap_or_default();
    let data = dir.join(format!("data-prop-{}", debounce.unwrap_or("default")));
    let keel = start_config(repo, &data, &env);
    let addr = keel.addr("config");
    let mut all = Vec::new();
    for round in 0..opts.rounds {
        let streams = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..opts.watchers {
                set.spawn(open_watcher(addr));
            }
            let mut out = Vec::new();
            while let Some(r) = set.join_next().await {
                out.push(r??);
            }
            anyhow::Ok(out)
        })?;
        std::fs::write(
            repo.join("bench-prod.yml"),
            format!(
                "server:\n  port: 80\nbench:\n  generation: {}\n",
                round + 1 + debounce.map_or(0, |_| 1000)
            ),
        )?;
        commit_all(repo, "bench change")?;
        let latencies = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for s in streams {
                set.spawn(await_change(s));
            }
            let t0 = Instant::now();
            let hook = http(
                addr,
                "POST",
                "/monitor",
                &[("Content-Type", "application/json")],
                br#"{"path":"bench-prod.yml"}"#,
            )
            .await?;
            if hook.status != 200 {
                bail!("webhook: {} {}", hook.status, hook.body);
            }
            let mut lat = Vec::new();
            while let Some(r) = tokio::time::timeout(Duration::from_secs(30), set.join_next())
                .await
                .context("watchers not notified within 30 s")?
            {
                lat.push(r??.duration_since(t0).as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        })?;
        let mut l = latencies.clone();
        println!(
            "propagation round {round} ({}): {} watchers, p50 {:.0} ms p99 {:.0} ms max {:.0} ms",
            debounce.map_or("debounce default".to_owned(), |d| format!("debounce {d}")),
            l.len(),
            quantile(&mut l, 0.5),
            quantile(&mut l, 0.99),
            quantile(&mut l, 1.0)
        );
        all.push(latencies);
    }
    let mut p50s: Vec<f64> = all.iter().map(|l| quantile(&mut l.clone(), 0.5)).collect();
    let mut p99s: Vec<f64> = all.iter().map(|l| quantile(&mut l.clone(), 0.99)).collect();
    let mut maxes: Vec<f64> = all.iter().map(|l| quantile(&mut l.clone(), 1.0)).collect();
    Ok(Propagation {
        watchers: opts.watchers,
        p50: median(&mut p50s),
        p99: median(&mut p99s),
        max: median(&mut maxes),
    })
}

/// RSS (MiB) of a config server over a repository of `files` files and `commits` commits:
/// after start, and after every application has been read once.
fn memory(opts: &Options, dir: &Path) -> anyhow::Result<(f64, f64)> {
    let repo = dir.join("big-repo");
    init_repo(&repo)?;
    let started = Instant::now();
    std::fs::write(repo.join("application.yml"), service_yaml("shared", 0))?;
    for f in 0..opts.files.saturating_sub(1) {
        std::fs::write(
            repo.join(format!("svc-{f:04}.yml")),
            service_yaml(&format!("svc-{f:04}"), 0),
        )?;
    }
    commit_all(&repo, "initial")?;
    for c in 1..opts.commits {
        // Each commit touches ten services.
        for k in 0..10 {
            let f = (c * 10 + k) % opts.files.saturating_sub(1).max(1);
            std::fs::write(
                repo.join(format!("svc-{f:04}.yml")),
                service_yaml(&format!("svc-{f:04}"), c),
            )?;
        }
        commit_all(&repo, &format!("change {c}"))?;
    }
    println!(
        "memory: built a repository of {} files and {} commits in {:.1} s",
        opts.files,
        opts.commits,
        started.elapsed().as_secs_f64()
    );
    let keel = start_config(&repo, &dir.join("data-mem"), &[]);
    let addr = keel.addr("config");
    std::thread::sleep(Duration::from_secs(1));
    let after_start = keel_bench::rss_kib(keel.pid()).unwrap_or(0) as f64 / 1024.0;
    rt_block(async {
        for f in 0..opts.files.saturating_sub(1) {
            let r = get(addr, &format!("/svc-{f:04}/default")).await?;
            if r.status != 200 {
                bail!("GET svc-{f:04}: {}", r.status);
            }
        }
        anyhow::Ok(())
    })?;
    let after_reads = keel_bench::rss_kib(keel.pid()).unwrap_or(0) as f64 / 1024.0;
    Ok((after_start, after_reads))
}

fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    // A fresh current-thread runtime: the caller holds no runtime here.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(f))
        .unwrap_or_else(|e| panic!("build a runtime: {e}"))
}
