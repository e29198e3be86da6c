//! Deterministic simulation (turmoil) of replication and anti-entropy: three nodes, clients
//! that renew every second and fail over when their node is down, and a random fault
//! schedule per seed (partitions, repairs, node restarts). Two renewal intervals (simulated
//! time) after the network heals, every instance still renewing is on every node; a lease
//! duration later the nodes hold exactly those. `KEELTEST_SIM_SEEDS=N` runs N seeds (default
//! 200); `KEELTEST_SIM_SEED=S` replays one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keel_eureka::{Format, InstanceInfo, encode_instance};
use keel_registry::{
    Cluster, ClusterConfig, ConnectFuture, PeerConnector, PeerIo, PeerUrl, Registry,
    RegistryConfig, TokioClock,
};

use crate::support::{EPOCH_MS, instance};

const NODES: [&str; 3] = ["n0", "n1", "n2"];
const PORT: u16 = 8761;
const INSTANCES: usize = 6;
/// Every instance renews each second with a 3 s lease.
const INTERVAL: Duration = Duration::from_secs(1);
const FAULTS_FROM: Duration = Duration::from_millis(1500);
const HEAL_AT: Duration = Duration::from_secs(6);
/// Still-renewing instances must be on every node two renewal intervals after the heal.
const VISIBLE_AT: Duration = Duration::from_secs(8);
/// And by then plus a lease duration, the nodes agree exactly: dead instances are gone too.
/// (A restarted node copies a peer's leases afresh, so a dead instance can outlive its
/// lease by up to one lease duration after the last sync, as in Eureka.)
const CONVERGED_AT: Duration = Duration::from_secs(11);

/// The simulated network, reached through the same connector seam production uses.
struct SimConnector;

impl PeerConnector for SimConnector {
    fn connect<'a>(&'a self, host: &'a str, port: u16) -> ConnectFuture<'a> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect((host, port)).await?;
            Ok(Box::new(s) as Box<dyn PeerIo>)
        })
    }
}

type Nodes = Arc<Mutex<BTreeMap<&'static str, Registry>>>;

fn cluster_config(me: &str) -> ClusterConfig {
    ClusterConfig {
        peers: NODES
            .iter()
            .filter(|n| **n != me)
            .map(|n| PeerUrl::parse(&format!("http://{n}:{PORT}/eureka/")).unwrap())
            .collect(),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(500),
        retry_backoff_min: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(300),
        sync_wait: Duration::from_secs(1),
        ..ClusterConfig::default()
    }
}

/// One registry node: engine, cluster and Eureka routes on the simulated network. Runs
/// again from scratch after a restart, syncing from its peers.
async fn node(name: &'static str, nodes: Nodes) -> turmoil::Result {
    let registry = Registry::new(
        RegistryConfig::default(),
        Arc::new(TokioClock::new(EPOCH_MS)),
    );
    // Lives as long as the host: replication stops when it is dropped.
    let _cluster = Cluster::start(&registry, cluster_config(name), Arc::new(SimConnector));
    nodes.lock().unwrap().insert(name, registry.clone());
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let app = keel_registry::router(registry);
    loop {
        let (stream, _) = listener.accept().await?;
        let svc = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// One HTTP/1.1 exchange on a fresh simulated connection; `None` on any failure.
async fn http(node: &str, method: Method, path: &str, body: Vec<u8>) -> Option<StatusCode> {
    let exchange = async {
        let stream = turmoil::net::TcpStream::connect((node, PORT)).await.ok()?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", node)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .ok()?;
        Some(send.send_request(req).await.ok()?.status())
    };
    tokio::time::timeout(Duration::from_millis(500), exchange)
        .await
        .ok()
        .flatten()
}

/// What one simulated client does.
#[derive(Clone, Debug)]
struct Plan {
    info: InstanceInfo,
    home: usize,
    start: Duration,
    /// Stops renewing then (silently, or with a cancel).
    end: Option<(Duration, bool)>,
}

/// Registers, renews every interval, re-registers on 404 and moves to the next node when
/// its node does not answer, like a Eureka client with several service URLs.
async fn client(plan: Plan) {
    tokio::time::sleep(plan.start).await;
    let mut body = Vec::new();
    encode_instance(Format::Json, &plan.info, &mut body);
    let app = plan.info.app.to_string();
    let renew = format!("/eureka/apps/{app}/{}", plan.info.instance_id);
    let register = format!("/eureka/apps/{app}");
    let mut at = plan.home;
    let mut registered = false;
    loop {
        let node = NODES[at];
        if let Some((end, cancel)) = plan.end
            && turmoil::elapsed() >= end
        {
            if cancel {
                http(node, Method::DELETE, &renew, Vec::new()).await;
            }
            return;
        }
        let answer = if registered {
            http(node, Method::PUT, &renew, Vec::new()).await
        } else {
            http(node, Method::POST, &register, body.clone()).await
        };
        match answer {
            Some(StatusCode::NOT_FOUND) => registered = false,
            Some(s) if s.is_success() => {
                registered = true;
                tokio::time::sleep(INTERVAL).await;
            }
            _ => {
                at = (at + 1) % NODES.len();
                registered = false;
            }
        }
    }
}

/// SplitMix64: the fault schedule's own generator, so a seed fully determines it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: Duration, to: Duration) -> Duration {
        let span = (to - from).as_millis() as u64;
        from + Duration::from_millis(self.below(span.max(1)))
    }
}

#[derive(Debug)]
enum Fault {
    Partition(usize, usize),
    Repair(usize, usize),
    Restart(usize),
}

fn plans(rng: &mut Rng) -> Vec<Plan> {
    (0..INSTANCES)
        .map(|i| {
            let end = match rng.below(4) {
                0 => Some((
                    rng.millis(FAULTS_FROM, HEAL_AT - Duration::from_millis(500)),
                    rng.below(2) == 0,
                )),
                _ => None,
            };
            Plan {
                info: instance("sim", &format!("i-{i}"), 1, 3),
                home: rng.below(NODES.len() as u64) as usize,
                // Some register before the faults, some during them.
                start: rng.millis(Duration::ZERO, HEAL_AT - Duration::from_secs(1)),
                end,
            }
        })
        .collect()
}

fn faults(rng: &mut Rng) -> Vec<(Duration, Fault)> {
    let mut out = Vec::new();
    let mut t = FAULTS_FROM;
    loop {
        t += rng.millis(Duration::from_millis(200), Duration::from_millis(1500));
        if t >= HEAL_AT {
            return out;
        }
        let a = rng.below(3) as usize;
        let b = (a + 1 + rng.below(2) as usize) % 3;
        let fault = match rng.below(10) {
            0 => Fault::Restart(a),
            1..=5 => Fault::Partition(a, b),
            _ => Fault::Repair(a, b),
        };
        out.push((t, fault));
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .tick_duration(Duration::from_millis(50))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(50))
        .simulation_duration(CONVERGED_AT + Duration::from_secs(5))
        .build();
    let nodes: Nodes = Arc::default();
    for name in NODES {
        let nodes = nodes.clone();
        sim.host(name, move || node(name, nodes.clone()));
    }
    let plans = plans(&mut rng);
    let expected: BTreeSet<String> = plans
        .iter()
        .filter(|p| p.end.is_none())
        .map(|p| p.info.instance_id.to_string())
        .collect();
    let clients = plans.clone();
    sim.client("clients", async move {
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|p| tokio::spawn(client(p)))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        std::future::pending::<()>().await;
        Ok(())
    });
    let faults = faults(&mut rng);
    let mut schedule = faults.iter().peekable();
    let mut healed = false;
    let mut visible_checked = false;
    while sim.elapsed() < CONVERGED_AT {
        while let Some((_, fault)) = schedule.next_if(|(t, _)| *t <= sim.elapsed()) {
            match fault {
                Fault::Partition(a, b) => sim.partition(NODES[*a], NODES[*b]),
                Fault::Repair(a, b) => sim.repair(NODES[*a], NODES[*b]),
                Fault::Restart(a) => sim.bounce(NODES[*a]),
            }
        }
        if !healed && sim.elapsed() >= HEAL_AT {
            for (i, a) in NODES.iter().enumerate() {
                for b in &NODES[i + 1..] {
                    sim.repair(*a, *b);
                }
            }
            healed = true;
        }
        if !visible_checked && sim.elapsed() >= VISIBLE_AT {
            check(&nodes, &expected, |held| held.is_superset(&expected)).map_err(|e| {
                format!(
                    "{e} two renewal intervals after the heal\n{}",
                    story(&plans, &faults)
                )
            })?;
            visible_checked = true;
        }
        sim.step().map_err(|e| e.to_string())?;
    }
    check(&nodes, &expected, |held| *held == expected)
        .map_err(|e| format!("{e} a lease duration later\n{}", story(&plans, &faults)))
}

/// Every node's instance ids must satisfy `ok`.
fn check(
    nodes: &Nodes,
    expected: &BTreeSet<String>,
    ok: impl Fn(&BTreeSet<String>) -> bool,
) -> Result<(), String> {
    for (name, registry) in nodes.lock().unwrap().iter() {
        let held: BTreeSet<String> = registry
            .snapshot()
            .instances()
            .map(|r| r.info().instance_id.to_string())
            .collect();
        if !ok(&held) {
            return Err(format!(
                "{name} holds {held:?} (still renewing: {expected:?})"
            ));
        }
    }
    Ok(())
}

fn story(plans: &[Plan], faults: &[(Duration, Fault)]) -> String {
    let mut out = String::from("clients:\n");
    for p in plans {
        out += &format!(
            "  {} on n{} from {:?}, stops {:?}\n",
            p.info.instance_id, p.home, p.start, p.end
        );
    }
    out += "faults:\n";
    for (t, f) in faults {
        out += &format!("  {t:?} {f:?}\n");
    }
    out
}

#[test]
fn replication_converges_under_random_fault_schedules() {
    let seeds: Vec<u64> = match std::env::var("KEELTEST_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("KEELTEST_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("KEELTEST_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(200);
            (0..n).collect()
        }
    };
    for seed in seeds {
        if let Err(e) = run_seed(seed) {
            panic!("seed {seed} failed (replay: KEELTEST_SIM_SEED={seed}): {e}");
        }
    }
}
