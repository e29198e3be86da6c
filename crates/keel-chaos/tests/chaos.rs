//! The chaos suite (issue 7) against a real Docker engine and the images from
//! `cargo xtask docker`: rolling restart, a killed registry node, a partitioned registry node,
//! a config push through the bus, and memory limits. 1 s renewals, 3 s leases, a
//! self-preservation floor of 3. Prints a table of what clients saw.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keel_chaos::{Docker, EngineCheck, Load, LoadCounts, engine_check};
use keel_test_support::{eventually, get, http};

const DEADLINE: Duration = Duration::from_secs(60);
const REGISTRIES: usize = 3;

struct Row {
    scenario: &'static str,
    load: LoadCounts,
    lost: usize,
    convergence: Duration,
}

/// The deployment under test, with names resolved.
struct Cluster {
    d: Docker,
    cluster_net: String,
    /// Where the long-lived clients reach every registry node (so they fail over when theirs
    /// dies); the partition scenario's clients stay on their side network only.
    app_net: String,
    side: Vec<String>,
    gateway: SocketAddr,
}

impl Cluster {
    fn reg(&self, i: usize) -> String {
        self.d.name(&format!("reg-{i}"))
    }

    fn reg_addr(&self, i: usize) -> SocketAddr {
        self.d.addr(&self.reg(i), &self.side[i], 8761)
    }

    /// Registry URLs for a client on side network `i`: its own node first.
    fn registry_list(&self, i: usize) -> String {
        (0..REGISTRIES)
            .map(|k| (i + k) % REGISTRIES)
            .map(|k| format!("http://{}:8761/eureka/", self.reg(k)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start_registry(&self, i: usize) {
        let peers = self.d.name("peers");
        self.d.run(
            &format!("reg-{i}"),
            &[
                (&self.cluster_net, &[&peers]),
                (&self.side[i], &[]),
                (&self.app_net, &[]),
            ],
            &[
                "-e",
                "KEEL_REGISTRY_SELF_PRESERVATION_FLOOR=3",
                "-e",
                "KEEL_REGISTRY_PEERS_DNS_INTERVAL=1s",
            ],
            "keel:latest",
            &["registry", "--peers-dns", &format!("{peers}:8761")],
        );
    }

    /// A demo-callee on side network `i`, with limits and a restart policy.
    fn start_callee(&self, what: &str, i: usize, shared: bool) -> String {
        let registries = format!("KEEL_REGISTRY={}", self.registry_list(i));
        let config = format!(
            "KEEL_CONFIG_URL=http://{}:8888,http://{}:8888",
            self.d.name("config-0"),
            self.d.name("config-1")
        );
        let side: (&str, &[&str]) = (&self.side[i], &[]);
        let app: (&str, &[&str]) = (&self.app_net, &[]);
        let networks = if shared { vec![side, app] } else { vec![side] };
        self.d.run(
            what,
            &networks,
            &[
                "--memory",
                "64m",
                "--memory-swap",
                "64m",
                "--cpus",
                "0.5",
                "--restart",
                "on-failure",
                "-e",
                &registries,
                "-e",
                &config,
                "-e",
                "DEMO_RENEWAL_SECS=1",
                "-e",
                "DEMO_CHAOS=true",
            ],
            "keel-demo-callee:latest",
            &[],
        )
    }

    /// Instance ids of `app` that registry node `i` lists as UP.
    async fn instances(&self, i: usize, app: &str) -> Option<Vec<String>> {
        let r = http(
            self.reg_addr(i),
            "GET",
            &format!("/eureka/apps/{app}"),
            &[("Accept", "application/json")],
            b"",
        )
        .await
        .ok()?;
        if r.status == 404 {
            return Some(Vec::new());
        }
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let list = v["application"]["instance"].as_array()?.clone();
        let mut ids: Vec<String> = list
            .iter()
            .filter(|i| i["status"] == "UP")
            .filter_map(|i| i["instanceId"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        Some(ids)
    }

    /// Waits until every running registry node lists exactly `want` (sorted) for `app`. Each
    /// change in what a node lists is logged, so a timeout shows where the nodes stood.
    async fn converge(&self, nodes: &[usize], app: &str, want: &[String]) -> Duration {
        let started = Instant::now();
        let seen = std::sync::Mutex::new(vec![None; REGISTRIES]);
        eventually(
            DEADLINE,
            &format!("registries {nodes:?} list {want:?}"),
            || async {
                let mut all = true;
                for &i in nodes {
                    let listed = self.instances(i, app).await;
                    all &= listed.as_deref() == Some(want);
                    let mut seen = seen
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if seen[i] != listed {
                        eprintln!(
                            "chaos: +{:.1?} registry {i} lists {listed:?}",
                            started.elapsed()
                        );
                        seen[i] = listed;
                    }
                }
                all.then_some(())
            },
        )
        .await;
        started.elapsed()
    }

    async fn healthy(&self, container: &str) {
        eventually(DEADLINE, &format!("{container} healthy"), || async {
            (self.d.inspect(container, "{{.State.Health.Status}}") == "healthy").then_some(())
        })
        .await;
    }
}

fn lost(expected: &[String], listed: &[String]) -> usize {
    expected.iter().filter(|e| !listed.contains(e)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_suite() {
    match engine_check() {
        EngineCheck::Available => {}
        EngineCheck::Missing(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but no Docker engine answers: {why}")
        }
        EngineCheck::Missing(why) => {
            eprintln!("SKIP chaos suite: no Docker engine answers ({why})");
            return;
        }
    }
    for image in [
        "keel:latest",
        "keel-demo-callee:latest",
        "keel-nats:latest",
        "keel-git:latest",
    ] {
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            present,
            "image {image} is missing: run `cargo xtask docker` first"
        );
    }
    let mut d = Docker::new();
    let cluster_net = d.network("cluster");
    let app_net = d.network("app");
    let side: Vec<String> = (0..REGISTRIES)
        .map(|i| d.network(&format!("side-{i}")))
        .collect();
    let repo = d.volume("repo");
    let c = Cluster {
        d,
        cluster_net,
        app_net,
        side,
        gateway: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let all_sides: Vec<(&str, &[&str])> = c.side.iter().map(|s| (s.as_str(), &[][..])).collect();
    let mut everywhere = all_sides.clone();
    everywhere.push((&c.app_net, &[]));

    let up = Instant::now();
    for i in 0..REGISTRIES {
        c.start_registry(i);
    }
    let nats = c.d.run("nats", &all_sides, &[], "keel-nats:latest", &[]);
    let git = c.d.run(
        "git",
        &all_sides,
        &["-v", &format!("{repo}:/srv/git")],
        "keel-git:latest",
        &[],
    );
    c.healthy(&git).await;
    for k in 0..2 {
        c.d.run(
            &format!("config-{k}"),
            &all_sides,
            &[],
            "keel:latest",
            &[
                "config",
                &format!("--git-uri=git://{git}/config-repo.git"),
                &format!("--bus=nats://{nats}:4222"),
                "--refresh-interval=0s",
            ],
        );
    }
    let gateway = c.d.run(
        "gateway",
        &everywhere,
        &[],
        "keel:latest",
        &[
            "gateway",
            "--registry-url",
            &format!("http://{}:8761", c.reg(0)),
        ],
    );
    let callees: Vec<String> = (0..2)
        .map(|i| c.start_callee(&format!("callee-{i}"), i, true))
        .collect();
    let c = Cluster {
        gateway: c.d.addr(&gateway, &c.side[0], 8080),
        ..c
    };
    for i in 0..REGISTRIES {
        c.healthy(&c.reg(i)).await;
    }
    for callee in &callees {
        c.healthy(callee).await;
    }
    let mut expected = eventually(DEADLINE, "two callees registered", || async {
        c.instances(0, "DEMO-CALLEE").await.filter(|l| l.len() == 2)
    })
    .await;
    c.converge(&[0, 1, 2], "DEMO-CALLEE", &expected).await;
    eventually(DEADLINE, "gateway routes to demo-callee", || async {
        get(c.gateway, "/demo-callee/hello")
            .await
            .ok()
            .filter(|r| r.status == 200)
    })
    .await;
    eprintln!("chaos: deployment up and healthy in {:.1?}", up.elapsed());
    let mut rows = Vec::new();
    let path = "/demo-callee/hello";

    // 1. Rolling restart, one replica at a time: SIGTERM deregisters, then the process stops.
    let load = Load::start(c.gateway, path, 4, Duration::from_millis(10));
    let started = Instant::now();
    for callee in &callees {
        c.d.cmd(&["stop", "--time", "10", callee]);
        c.d.cmd(&["start", callee]);
        c.healthy(callee).await;
        expected = eventually(DEADLINE, "restarted callee registered", || async {
            c.instances(0, "DEMO-CALLEE").await.filter(|l| l.len() == 2)
        })
        .await;
        // The gateway must see the new instance before the next one goes down.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let convergence = c.converge(&[0, 1, 2], "DEMO-CALLEE", &expected).await;
    let (counts, last) = load.stop().await;
    let _ = started;
    rows.push(Row {
        scenario: "rolling restart",
        load: counts,
        lost: 0,
        convergence,
    });
    assert_eq!(
        counts.failed, 0,
        "rolling restart: failed requests (last: {last:?})"
    );

    // 2. A registry node is killed, then restarted: it syncs before it reports ready.
    let load = Load::start(c.gateway, path, 4, Duration::from_millis(10));
    c.d.cmd(&["kill", &c.reg(1)]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.converge(&[0, 2], "DEMO-CALLEE", &expected).await;
    let started = Instant::now();
    c.d.cmd(&["start", &c.reg(1)]);
    c.healthy(&c.reg(1)).await;
    let listed = c.instances(1, "DEMO-CALLEE").await.unwrap_or_default();
    let lost_after_restart = lost(&expected, &listed);
    let convergence = started.elapsed();
    c.converge(&[0, 1, 2], "DEMO-CALLEE", &expected).await;
    let (counts, last) = load.stop().await;
    rows.push(Row {
        scenario: "registry node killed",
        load: counts,
        lost: lost_after_restart,
        convergence,
    });
    assert_eq!(
        counts.failed, 0,
        "killed registry: failed requests (last: {last:?})"
    );
    assert_eq!(
        lost_after_restart, 0,
        "restarted node was ready without {expected:?}: {listed:?}"
    );

    // 3. A registry node is partitioned (cluster network only) for longer than a lease.
    let load = Load::start(c.gateway, path, 2, Duration::from_millis(20));
    c.d.cmd(&["network", "disconnect", &c.cluster_net, &c.reg(2)]);
    let isolated = c.start_callee("callee-p2", 2, false);
    let majority = c.start_callee("callee-p0", 0, false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    eventually(
        DEADLINE,
        "self-preservation on the isolated node",
        || async {
            let r = get(c.reg_addr(2), "/actuator/health").await.ok()?;
            r.body.contains("\"engaged\":true").then_some(())
        },
    )
    .await;
    let started = Instant::now();
    c.d.connect(&c.reg(2), &c.cluster_net, &[&c.d.name("peers")]);
    let mut all = eventually(DEADLINE, "four callees registered on node 0", || async {
        c.instances(0, "DEMO-CALLEE").await.filter(|l| l.len() == 4)
    })
    .await;
    all.sort();
    let convergence = c
        .converge(&[0, 1, 2], "DEMO-CALLEE", &all)
        .await
        .max(started.elapsed());
    eventually(
        DEADLINE,
        "self-preservation clears after healing",
        || async {
            let r = get(c.reg_addr(2), "/actuator/health").await.ok()?;
            (!r.body.contains("\"engaged\":true")).then_some(())
        },
    )
    .await;
    let (counts, last) = load.stop().await;
    rows.push(Row {
        scenario: "registry node partitioned",
        load: counts,
        lost: 0,
        convergence,
    });
    assert_eq!(
        counts.failed, 0,
        "partition: failed requests (last: {last:?})"
    );
    for extra in [&isolated, &majority] {
        c.d.cmd(&["stop", "--time", "10", extra]);
    }

    // 4. A config change: commit + webhook to one config server reaches every callee.
    let greeting = format!("chaos-{}", std::process::id());
    let work = std::env::temp_dir().join(format!("{}-repo", c.d.prefix));
    let git_url = format!("git://{}/config-repo.git", c.d.ip(&git, &c.side[0]));
    let git_cmd = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=chaos", "-c", "user.email=chaos@localhost"])
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "git {args:?} failed");
    };
    git_cmd(&["clone", "--quiet", &git_url, work.to_str().unwrap()]);
    std::fs::write(
        work.join("demo-callee.yml"),
        format!("demo:\n  greeting: {greeting}\n"),
    )
    .unwrap();
    git_cmd(&["-C", work.to_str().unwrap(), "add", "demo-callee.yml"]);
    git_cmd(&[
        "-C",
        work.to_str().unwrap(),
        "commit",
        "--quiet",
        "-m",
        "chaos greeting",
    ]);
    git_cmd(&[
        "-C",
        work.to_str().unwrap(),
        "push",
        "--quiet",
        "origin",
        "HEAD",
    ]);
    let _ = std::fs::remove_dir_all(&work);
    let load = Load::start(c.gateway, path, 2, Duration::from_millis(20));
    let started = Instant::now();
    let hook = http(
        c.d.addr(&c.d.name("config-0"), &c.side[0], 8888),
        "POST",
        "/monitor",
        &[("Content-Type", "application/json")],
        br#"{"path":["demo-callee.yml"]}"#,
    )
    .await
    .expect("webhook");
    assert!(
        hook.status < 300,
        "webhook answered {}: {}",
        hook.status,
        hook.body
    );
    for (i, callee) in callees.iter().enumerate() {
        let addr = c.d.addr(callee, &c.side[i], 8080);
        eventually(
            DEADLINE,
            &format!("{callee} greets with {greeting}"),
            || async {
                let r = get(addr, "/hello").await.ok()?;
                r.body.contains(&greeting).then_some(())
            },
        )
        .await;
    }
    let convergence = started.elapsed();
    let (counts, last) = load.stop().await;
    rows.push(Row {
        scenario: "config change",
        load: counts,
        lost: 0,
        convergence,
    });
    assert_eq!(
        counts.failed, 0,
        "config change: failed requests (last: {last:?})"
    );

    // 5. Resource limits hold: a callee allocating past 64 MiB is killed and restarted while
    // the gateway routes around it.
    let info = c.d.cmd(&["info", "--format", "{{.MemoryLimit}}"]);
    assert_eq!(info, "true", "docker info reports no memory-limit support");
    let limits = c.d.inspect(
        &callees[0],
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
    );
    assert_eq!(limits, format!("{} {}", 64 << 20, 500_000_000));
    let load = Load::start(c.gateway, path, 4, Duration::from_millis(10));
    let started = Instant::now();
    let victim = c.d.addr(&callees[0], &c.side[0], 8080);
    let _ = http(victim, "POST", "/chaos/allocate?mb=256", &[], b"").await;
    eventually(
        DEADLINE,
        "the allocating callee OOM-killed and restarted",
        || async {
            let state = c.d.inspect(&callees[0], "{{.RestartCount}}");
            (state != "0").then_some(())
        },
    )
    .await;
    c.healthy(&callees[0]).await;
    let listed = eventually(DEADLINE, "restarted callee registered again", || async {
        c.instances(0, "DEMO-CALLEE").await.filter(|l| l.len() == 2)
    })
    .await;
    let convergence = started.elapsed();
    let (counts, last) = load.stop().await;
    rows.push(Row {
        scenario: "memory limit",
        load: counts,
        lost: 2usize.saturating_sub(listed.len()),
        convergence,
    });
    assert_eq!(
        counts.failed, 0,
        "memory limit: failed requests (last: {last:?})"
    );

    println!(
        "\n{:<28} {:>9} {:>7} {:>19} {:>12}",
        "SCENARIO", "REQUESTS", "FAILED", "LOST REGISTRATIONS", "CONVERGENCE"
    );
    for r in &rows {
        println!(
            "{:<28} {:>9} {:>7} {:>19} {:>11.1?}",
            r.scenario, r.load.sent, r.load.failed, r.lost, r.convergence
        );
    }
}
