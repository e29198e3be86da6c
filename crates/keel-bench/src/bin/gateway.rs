//! Gateway benchmark: Keel's gateway against nginx as a reverse proxy, in front of the same nginx backend.
//!
//! Peak throughput with wrk (keep-alive, 50 connections), alternating targets over several rounds;
//! CPU per request from /proc; RSS under load; p99 at a fixed rate of half nginx's peak with an
//! open-loop generator. Prints medians and keel/nginx ratios. Everything runs on loopback. Each server
//! (the nginx backend, the nginx proxy, Keel) runs in a session of its own, as services do: with the
//! kernel's autogroup scheduling a session is a CPU-share group, and a server sharing the load
//! generator's group is scheduled differently from one with its own.
//!
//! Flags: `--rounds N` (default 5), `--seconds S` per run (default 5), `--connections C` (50),
//! `--threads T` for wrk (default 1, leaving the cores to the servers), `--hyper-too 1` to also run a
//! second gateway whose HTTP/1.1 connections hyper serves (`gateway.http1-server=hyper`), as `keel-h`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use keel_bench::nginx::{self, Nginx};
use keel_bench::{fixed_rate, keel_binary, median, proc_stat, quantile, wrk};
use keel_test_support::KeelProcess;

struct Options {
    rounds: usize,
    seconds: u64,
    connections: u32,
    threads: u32,
    hyper_too: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        rounds: 5,
        seconds: 5,
        connections: 50,
        threads: 1,
        hyper_too: false,
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
            "--hyper-too" => o.hyper_too = value != "0",
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Direct,
    Nginx,
    Keel,
    KeelHyper,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Nginx => "nginx",
            Target::Keel => "keel",
            Target::KeelHyper => "keel-h",
        }
    }
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    p99_ms: Vec<f64>,
    cpu_us_per_req: Vec<f64>,
    rss_mib: Vec<f64>,
    errors: u64,
    fixed_p50_ms: Vec<f64>,
    fixed_p99_ms: Vec<f64>,
    fixed_errors: u64,
}

struct Bench {
    opts: Options,
    direct: SocketAddr,
    nginx: (SocketAddr, u32),
    keel: (SocketAddr, u32),
    keel_hyper: Option<(SocketAddr, u32)>,
}

impl Bench {
    fn addr(&self, t: Target) -> SocketAddr {
        match t {
            Target::Direct => self.direct,
            Target::Nginx => self.nginx.0,
            Target::Keel => self.keel.0,
            Target::KeelHyper => self.keel_hyper.map_or(self.keel.0, |k| k.0),
        }
    }

    fn pid(&self, t: Target) -> Option<u32> {
        match t {
            Target::Direct => None,
            Target::Nginx => Some(self.nginx.1),
            Target::Keel => Some(self.keel.1),
            Target::KeelHyper => self.keel_hyper.map(|k| k.1),
        }
    }

    /// One peak run; returns (wrk result, CPU µs per request, peak RSS MiB).
    fn peak(&self, t: Target, duration: Duration) -> anyhow::Result<(wrk::WrkResult, f64, f64)> {
        let url = format!("http://{}/", self.addr(t));
        let pid = self.pid(t);
        let cpu0 = pid.map(proc_stat::cpu_seconds);
        let (threads, conns) = (self.opts.threads, self.opts.connections);
        let run = std::thread::spawn(move || wrk::run(&url, threads, conns, duration));
        let mut rss_kib = 0;
        while !run.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(p) = pid {
                rss_kib = rss_kib.max(proc_stat::tree_rss_kib(p));
            }
        }
        let result = run
            .join()
            .map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
        let cpu = match (pid, cpu0) {
            (Some(p), Some(c0)) => {
                (proc_stat::cpu_seconds(p) - c0) / result.requests.max(1) as f64 * 1e6
            }
            _ => 0.0,
        };
        Ok((result, cpu, rss_kib as f64 / 1024.0))
    }
}

fn ratio(keel: f64, nginx: f64) -> String {
    if nginx > 0.0 {
        format!("{:.2}x", keel / nginx)
    } else {
        "-".into()
    }
}

fn main() -> anyhow::Result<()> {
    let opts = options()?;
    ensure_tools()?;
    let dir = std::env::temp_dir().join(format!("keel-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(opts, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(opts: Options, dir: &std::path::Path) -> anyhow::Result<()> {
    let backend_port = free_port()?;
    let backend = Nginx::start(&nginx::backend_config(dir, backend_port)?, backend_port)?;
    let proxy_port = free_port()?;
    let proxy = Nginx::start(
        &nginx::proxy_config(dir, proxy_port, backend_port)?,
        proxy_port,
    )?;
    let routes = dir.join("routes.yml");
    std::fs::write(
        &routes,
        format!(
            "spring:\n  cloud:\n    gateway:\n      discovery:\n        locator:\n          enabled: false\n      \
             routes:\n        - id: backend\n          uri: http://127.0.0.1:{backend_port}\n          \
             predicates:\n            - Path=/**\n"
        ),
    )?;
    let start_keel = |env: &[(&str, &str)], log: &str| {
        KeelProcess::start_own_session(
            &keel_binary(),
            &[
                "gateway",
                "--bind",
                "127.0.0.1:0",
                "--routes",
                &routes.display().to_string(),
                "--access-log",
                &dir.join(log).display().to_string(),
            ],
            env,
            &["gateway"],
        )
    };
    let keel = start_keel(&[], "keel-access.log");
    let keel_hyper = opts.hyper_too.then(|| {
        start_keel(
            &[("KEEL_GATEWAY_HTTP1_SERVER", "hyper")],
            "keel-h-access.log",
        )
    });
    let bench = Bench {
        direct: SocketAddr::from(([127, 0, 0, 1], backend_port)),
        nginx: (SocketAddr::from(([127, 0, 0, 1], proxy_port)), proxy.pid()),
        keel: (keel.addr("gateway"), keel.pid()),
        keel_hyper: keel_hyper.as_ref().map(|k| (k.addr("gateway"), k.pid())),
        opts,
    };
    let secs = Duration::from_secs(bench.opts.seconds);
    println!(
        "gateway bench: wrk -t{} -c{} {}s x {} rounds; backend nginx pid {}, proxy nginx pid {}, keel pid {}",
        bench.opts.threads,
        bench.opts.connections,
        bench.opts.seconds,
        bench.opts.rounds,
        backend.pid(),
        proxy.pid(),
        keel.pid()
    );
    let mut targets = vec![Target::Direct, Target::Nginx, Target::Keel];
    if bench.keel_hyper.is_some() {
        targets.push(Target::KeelHyper);
    }
    for &t in &targets {
        let (r, _, _) = bench.peak(t, Duration::from_secs(2))?;
        if r.errors > 0 {
            bail!(
                "{} answered errors during warm-up:\n{}",
                t.name(),
                keel.output()
            );
        }
    }
    let mut samples: [Samples; 4] = Default::default();
    for round in 0..bench.opts.rounds {
        // Rotate the order so no target always runs first (or right after another).
        for i in 0..targets.len() {
            let t = targets[(i + round) % targets.len()];
            let (r, cpu, rss) = bench.peak(t, secs)?;
            println!(
                "round {round} {:<6} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  cpu {:>6.1} us/req  rss {:>6.1} MiB  errors {}",
                t.name(),
                r.rps,
                r.p50_ms,
                r.p99_ms,
                cpu,
                rss,
                r.errors
            );
            let s = &mut samples[t as usize];
            s.rps.push(r.rps);
            s.p99_ms.push(r.p99_ms);
            s.cpu_us_per_req.push(cpu);
            s.rss_mib.push(rss);
            s.errors += r.errors;
        }
    }
    let nginx_peak = median(&mut samples[Target::Nginx as usize].rps.clone());
    let rate = (nginx_peak / 2.0).max(100.0);
    println!(
        "fixed rate: {rate:.0} req/s (half nginx's median peak), open loop, {} connections",
        bench.opts.connections
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // As many fixed-rate rounds as peak ones: a latency spike from elsewhere on a shared host lands in
    // single rounds, and the median of five absorbs two of them where that of three absorbed one.
    for round in 0..bench.opts.rounds.max(1) {
        for i in 0..targets.len() {
            let t = targets[(i + round) % targets.len()];
            let mut r = rt.block_on(fixed_rate::run(
                bench.addr(t),
                "/",
                rate,
                bench.opts.connections as usize,
                secs,
            ))?;
            let p50 = quantile(&mut r.latencies_ms, 0.5);
            let p99 = quantile(&mut r.latencies_ms, 0.99);
            println!(
                "round {round} {:<6} fixed {:>7.0} req/s achieved  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
                t.name(),
                r.achieved_rps(),
                p50,
                p99,
                r.errors
            );
            let s = &mut samples[t as usize];
            s.fixed_p50_ms.push(p50);
            s.fixed_p99_ms.push(p99);
            s.fixed_errors += r.errors;
        }
    }
    drop(keel);
    drop(keel_hyper);
    drop(proxy);
    drop(backend);

    let m = |v: &Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            median(&mut v.clone())
        }
    };
    println!("\nmedians over {} rounds:", bench.opts.rounds);
    println!(
        "{:<7} {:>10} {:>9} {:>11} {:>9} {:>12} {:>12} {:>7}",
        "target", "req/s", "p99 ms", "cpu us/req", "rss MiB", "fixed p50", "fixed p99", "errors"
    );
    for &t in &targets {
        let s = &samples[t as usize];
        println!(
            "{:<7} {:>10.0} {:>9.2} {:>11.1} {:>9.1} {:>12.2} {:>12.2} {:>7}",
            t.name(),
            m(&s.rps),
            m(&s.p99_ms),
            m(&s.cpu_us_per_req),
            m(&s.rss_mib),
            m(&s.fixed_p50_ms),
            m(&s.fixed_p99_ms),
            s.errors + s.fixed_errors
        );
    }
    let (k, n, d) = (
        &samples[Target::Keel as usize],
        &samples[Target::Nginx as usize],
        &samples[Target::Direct as usize],
    );
    println!("\nkeel / nginx (goal: throughput >= 1.0x, cpu/req <= 1.0x, fixed-rate p99 <= 1.0x):");
    println!("  throughput       {}", ratio(m(&k.rps), m(&n.rps)));
    println!(
        "  cpu per request  {}",
        ratio(m(&k.cpu_us_per_req), m(&n.cpu_us_per_req))
    );
    println!(
        "  fixed-rate p99   {}",
        ratio(m(&k.fixed_p99_ms), m(&n.fixed_p99_ms))
    );
    println!("  rss under load   {}", ratio(m(&k.rss_mib), m(&n.rss_mib)));
    if bench.keel_hyper.is_some() {
        let h = &samples[Target::KeelHyper as usize];
        println!(
            "keel / keel-h (hyper's HTTP/1.1): throughput {}, cpu per request {}, fixed-rate p99 {}",
            ratio(m(&k.rps), m(&h.rps)),
            ratio(m(&k.cpu_us_per_req), m(&h.cpu_us_per_req)),
            ratio(m(&k.fixed_p99_ms), m(&h.fixed_p99_ms))
        );
    }
    println!(
        "proxy / direct throughput: nginx {}, keel {}",
        ratio(m(&n.rps), m(&d.rps)),
        ratio(m(&k.rps), m(&d.rps))
    );
    Ok(())
}
