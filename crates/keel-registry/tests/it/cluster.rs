//! Three (or four) registry nodes in-process on real sockets: replication of every client
//! write, no re-replication, start-up sync gating readiness, 404/409 handling, a node in its
//! own peer list, and convergence after a partition made with fault-injecting proxies.

mod proxy;

use std::sync::Arc;
use std::time::Duration;

use keel_eureka::{Format, InstanceInfo, InstanceStatus, encode_instance};
use keel_registry::{Cluster, ClusterConfig, Origin, PeerUrl, RegistryConfig, SystemClock};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::support::{TestServer, app, client, eventually, id, instance};
use proxy::Proxy;

pub struct Node {
    pub server: TestServer,
    pub cluster: Cluster,
}

fn fast(peers: &[String]) -> ClusterConfig {
    ClusterConfig {
        peers: peers.iter().map(|p| PeerUrl::parse(p).unwrap()).collect(),
        retry_backoff_min: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        sync_wait: Duration::from_secs(2),
        ..ClusterConfig::default()
    }
}

impl Node {
    pub async fn start(peers: &[String]) -> Self {
        Self::start_with(fast(peers)).await
    }

    pub async fn start_with(config: ClusterConfig) -> Self {
        let server = TestServer::start(RegistryConfig::default(), Arc::new(SystemClock)).await;
        let cluster = Cluster::start(
            &server.registry,
            config,
            Arc::new(keel_registry::TcpConnector),
        );
        cluster.observe(&server.health);
        Self { server, cluster }
    }

    pub fn url(&self) -> String {
        self.server.url("/eureka/")
    }

    pub fn set_peers(&self, peers: &[String]) {
        self.cluster
            .set_peers(peers.iter().map(|p| PeerUrl::parse(p).unwrap()).collect());
    }

    pub fn has(&self, instance: &str) -> bool {
        self.server
            .registry
            .snapshot()
            .instances()
            .any(|r| r.info().instance_id.as_str() == instance)
    }

    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .server
            .registry
            .snapshot()
            .instances()
            .map(|r| r.info().instance_id.to_string())
            .collect();
        ids.sort();
        ids
    }

    fn record(&self, app_name: &str, instance: &str) -> Option<InstanceInfo> {
        self.server
            .registry
            .instance(&app(app_name), &id(instance))
            .map(|r| r.info().clone())
    }

    fn sent(&self) -> u64 {
        self.cluster.peers().iter().map(|p| p.sent).sum()
    }
}

/// Three nodes, each listing the other two directly.
pub async fn mesh() -> [Node; 3] {
    let nodes = [
        Node::start(&[]).await,
        Node::start(&[]).await,
        Node::start(&[]).await,
    ];
    for (i, n) in nodes.iter().enumerate() {
        let others: Vec<String> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| o.url())
            .collect();
        n.set_peers(&others);
    }
    nodes
}

async fn register(base: &str, info: &InstanceInfo) -> StatusCode {
    let mut body = Vec::new();
    encode_instance(Format::Json, info, &mut body);
    client()
        .post(format!("{base}apps/{}", info.app))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn call(method: reqwest::Method, url: String) -> StatusCode {
    client().request(method, url).send().await.unwrap().status()
}

/// A client that renews `info` on `base` every second and re-registers on 404, as Eureka
/// clients do, until `stop`.
fn renewer(base: String, info: InstanceInfo, stop: CancellationToken) {
    tokio::spawn(async move {
        let url = format!("{base}apps/{}/{}", info.app, info.instance_id);
        loop {
            if let Ok(r) = client().put(&url).send().await
                && r.status() == StatusCode::NOT_FOUND
            {
                register(&base, &info).await;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_writes_reach_every_peer_and_are_not_re_replicated() {
    let [a, b, c] = mesh().await;
    let info = instance("orders", "o-1", 30, 90);
    assert_eq!(register(&a.url(), &info).await, StatusCode::NO_CONTENT);
    eventually(10, "registered on B and C", async || {
        b.has("o-1") && c.has("o-1")
    })
    .await;

    let base = format!("{}apps/ORDERS/o-1", a.url());
    let renewals_on = |n: &Node| {
        let text = n.server.metrics.encode();
        text.lines()
            .find_map(|l| l.strip_prefix("keel_registry_renewals_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert_eq!(
        call(reqwest::Method::PUT, base.clone()).await,
        StatusCode::OK
    );
    eventually(10, "the renewal replicated", async || {
        renewals_on(&b) >= 1 && renewals_on(&c) >= 1
    })
    .await;

    let status = format!("{base}/status?value=OUT_OF_SERVICE");
    assert_eq!(call(reqwest::Method::PUT, status).await, StatusCode::OK);
    let status_on = |n: &Node| n.record("orders", "o-1").map(|i| i.status);
    eventually(10, "the override replicated", async || {
        status_on(&b) == Some(InstanceStatus::OutOfService)
            && status_on(&c) == Some(InstanceStatus::OutOfService)
    })
    .await;
    let delete = format!("{base}/status?value=UP");
    assert_eq!(call(reqwest::Method::DELETE, delete).await, StatusCode::OK);
    eventually(10, "the override removal replicated", async || {
        status_on(&b) == Some(InstanceStatus::Up) && status_on(&c) == Some(InstanceStatus::Up)
    })
    .await;

    let meta = format!("{base}/metadata?zone=z2");
    assert_eq!(call(reqwest::Method::PUT, meta).await, StatusCode::OK);
    let zone_on = |n: &Node| {
        n.record("orders", "o-1")
            .and_then(|i| i.metadata.get("zone").cloned())
    };
    eventually(10, "the metadata replicated", async || {
        zone_on(&b).as_deref() == Some("z2") && zone_on(&c).as_deref() == Some("z2")
    })
    .await;

    assert_eq!(call(reqwest::Method::DELETE, base).await, StatusCode::OK);
    eventually(10, "the cancel replicated", async || {
        !b.has("o-1") && !c.has("o-1")
    })
    .await;

    // B and C applied every write above, yet forwarded none of them: their queues were
    // filled synchronously by the write observer if at all, so nothing sent means nothing queued.
    assert!(a.sent() >= 2 * 6, "A sent each write to both peers");
    assert_eq!((b.sent(), c.sent()), (0, 0));
    assert!(b.cluster.peers().iter().all(|p| p.queued == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starting_node_syncs_the_registry_before_it_is_ready() {
    let [a, b, _c] = mesh().await;
    for n in 0..50 {
        a.server.registry.register(
            instance("orders", &format!("o-{n}"), 30, 90),
            Origin::Client,
        );
    }
    b.server
        .registry
        .register(instance("billing", "b-1", 30, 90), Origin::Client);
    eventually(10, "A and B agree", async || {
        a.ids().len() == 51 && b.ids() == a.ids()
    })
    .await;

    // D's only way to A is a proxy that starts cut: D must stay unready while it cannot sync.
    let to_a = Proxy::start(a.server.addr).await;
    to_a.cut();
    let d = Node::start_with(ClusterConfig {
        sync_wait: Duration::from_secs(300),
        ..fast(&[to_a.url()])
    })
    .await;
    let ready = d.server.url("/actuator/health/readiness");
    for _ in 0..10 {
        let status = client().get(&ready).send().await.unwrap().status();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "ready without a sync"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    to_a.heal();
    eventually(10, "D ready", async || {
        let status = client().get(&ready).send().await.unwrap().status();
        if status == StatusCode::OK {
            // Checked at the first moment D reports ready.
            assert_eq!(d.ids(), a.ids(), "D reported ready before it synced");
            return true;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_peers_are_all_down_still_becomes_ready() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/eureka/", dead.local_addr().unwrap());
    drop(dead);
    let d = Node::start(&[url]).await;
    let ready = d.server.url("/actuator/health/readiness");
    eventually(20, "D ready after giving up on sync", async || {
        client().get(&ready).send().await.unwrap().status() == StatusCode::OK
    })
    .await;
    // A client write while the only peer is dead does not block.
    let info = instance("orders", "o-1", 30, 90);
    assert_eq!(register(&d.url(), &info).await, StatusCode::NO_CONTENT);
    eventually(10, "the failure is visible", async || {
        d.cluster.peers()[0].state == "failing"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_404_gets_a_register_and_409_makes_us_adopt_the_newer_copy() {
    let a = Node::start(&[]).await;
    let b = Node::start(&[a.url()]).await;
    a.set_peers(&[b.url()]);
    let (orders, o1) = (app("orders"), id("o-1"));
    a.server
        .registry
        .register(instance("orders", "o-1", 30, 90), Origin::Client);
    eventually(10, "on B", async || b.has("o-1")).await;

    // B loses the instance without telling anyone; A's next heartbeat gets 404 and
    // re-sends the registration.
    b.server.registry.cancel(&orders, &o1, Origin::Replicated);
    a.server
        .registry
        .renew(&orders, &o1, None, None, Origin::Client);
    eventually(10, "B has it again", async || b.has("o-1")).await;

    // B holds a newer copy; A's heartbeat carries an older lastDirtyTimestamp, gets 409 with
    // B's copy, and A adopts it.
    let mut newer = instance("orders", "o-1", 30, 90);
    newer.last_dirty_timestamp = 5000;
    newer.metadata.insert("v".into(), "newer".into());
    b.server.registry.register(newer, Origin::Replicated);
    a.server
        .registry
        .renew(&orders, &o1, None, None, Origin::Client);
    eventually(10, "A adopted B's copy", async || {
        a.record("orders", "o-1")
            .is_some_and(|i| i.last_dirty_timestamp == 5000 && i.metadata.contains_key("v"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_listed_among_its_own_peers_detects_itself() {
    let b = Node::start(&[]).await;
    let a = Node::start(&[]).await;
    a.set_peers(&[a.url(), b.url()]);
    a.server
        .registry
        .register(instance("orders", "o-1", 30, 90), Origin::Client);
    eventually(10, "on B", async || b.has("o-1")).await;
    eventually(10, "A's own URL marked self", async || {
        a.cluster
            .peers()
            .iter()
            .any(|p| p.url == a.url() && p.state == "self" && p.sent == 0)
    })
    .await;
}

/// Every node reaches every other through its own proxy (one per direction), so a node can
/// be cut off completely and healed.
struct Partitionable {
    nodes: [Node; 3],
    /// `links[from][to]`.
    links: Vec<Vec<Option<Proxy>>>,
}

impl Partitionable {
    async fn start() -> Self {
        let nodes = [
            Node::start(&[]).await,
            Node::start(&[]).await,
            Node::start(&[]).await,
        ];
        let mut links = Vec::new();
        for from in 0..3 {
            let mut row = Vec::new();
            let mut peers = Vec::new();
            for (to, target) in nodes.iter().enumerate() {
                if from == to {
                    row.push(None);
                    continue;
                }
                let p = Proxy::start(target.server.addr).await;
                peers.push(p.url());
                row.push(Some(p));
            }
            nodes[from].set_peers(&peers);
            links.push(row);
        }
        Self { nodes, links }
    }

    fn isolate(&self, n: usize, cut: bool) {
        for (i, row) in self.links.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                if let Some(p) = p
                    && (i == n || j == n)
                {
                    if cut { p.cut() } else { p.heal() }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_partition_heals_the_nodes_converge_and_nothing_renewing_is_lost() {
    let cluster = Partitionable::start().await;
    let [a, b, c] = &cluster.nodes;
    let stop = CancellationToken::new();
    // 1 s renewals, 3 s leases, so the partition outlives every lease.
    let short = |name: &str| instance("orders", name, 1, 3);

    renewer(a.url(), short("steady"), stop.clone());
    let leaving = short("leaving");
    let leaving_stop = stop.child_token();
    renewer(a.url(), leaving.clone(), leaving_stop.clone());
    eventually(10, "both everywhere", async || {
        [a, b, c]
            .iter()
            .all(|n| n.has("steady") && n.has("leaving"))
    })
    .await;

    cluster.isolate(2, true);
    renewer(c.url(), short("on-c"), stop.clone());
    renewer(a.url(), short("on-a"), stop.clone());
    leaving_stop.cancel();
    let cancel = format!("{}apps/ORDERS/leaving", a.url());
    assert_eq!(call(reqwest::Method::DELETE, cancel).await, StatusCode::OK);
    // C alone expires what renews on A; A and B never hear of on-c.
    eventually(20, "C expired steady", async || !c.has("steady")).await;
    assert!(!a.has("on-c") && !b.has("on-c"));
    assert!(!c.has("on-a"));

    cluster.isolate(2, false);
    let want = vec!["on-a".to_owned(), "on-c".to_owned(), "steady".to_owned()];
    eventually(20, "all three nodes converge", async || {
        [a, b, c].iter().all(|n| n.ids() == want)
    })
    .await;
    stop.cancel();
}
