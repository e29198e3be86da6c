//! The real py-eureka-client from PyPI against a single Keel registry node, with 1 s renewals
//! and 3 s leases. The Python comes from `keel_test_support::python()`: `KEELTEST_PYTHON`, or
//! the `<workspace>/target/venv` it creates with the pinned `xtask/python-requirements.txt`.

use std::process::Stdio;
use std::sync::Arc;

use keel_eureka::InstanceStatus;
use keel_registry::{Origin, RegistryConfig, SystemClock};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::support::{TestServer, app, eventually, id, instance, statuses};

const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/py_client/driver.py");

/// One driver process; killed on drop.
struct Py {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Py {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(keel_test_support::python())
            .arg(DRIVER)
            .args(args)
            .env_remove("KEELTEST_PYTHON")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the Python driver");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The driver's next answer (lines starting `@@ `); the client's own log lines are echoed.
    async fn line(&mut self) -> String {
        loop {
            let line =
                // A generous deadline: on a loaded CI machine the client's start can be slow.
                tokio::time::timeout(std::time::Duration::from_secs(180), self.stdout.next_line())
                    .await
                    .expect("the driver answered within 180 s")
                    .unwrap()
                    .expect("the driver is still running");
            match line.strip_prefix("@@ ") {
                Some(answer) => return answer.to_owned(),
                None => eprintln!("py: {line}"),
            }
        }
    }

    async fn command(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        self.line().await
    }
}

/// A tiny HTTP service answering `name` on `/`, for `do_service` to call.
async fn service(name: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route("/", axum::routing::get(move || async move { name }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

fn status_of(s: &TestServer, instance: &str) -> Option<InstanceStatus> {
    statuses(&s.registry)
        .into_iter()
        .find(|(id, _)| id.starts_with("127.0.0.1:") && id.ends_with(instance))
        .map(|(_, st)| st)
}

fn counter(s: &TestServer, name: &str) -> u64 {
    let text = s.metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn renewals(s: &TestServer) -> u64 {
    counter(s, "keel_registry_renewals_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_eureka_client_registers_discovers_overrides_stops_and_expires() {
    let s = TestServer::start(RegistryConfig::default(), Arc::new(SystemClock)).await;
    let server = s.url("/eureka/");
    let (port_a, port_b) = (service("A").await, service("B").await);
    let (pa, pb) = (port_a.to_string(), port_b.to_string());
    let mut a = Py::spawn(&["register", &server, "py-svc", &pa]);
    let mut b = Py::spawn(&["register", &server, "py-svc", &pb]);
    assert_eq!(a.line().await, "registered");
    assert_eq!(b.line().await, "registered");
    let (ida, idb) = (format!(":{port_a}"), format!(":{port_b}"));
    assert_eq!(status_of(&s, &ida), Some(InstanceStatus::Up));
    assert_eq!(status_of(&s, &idb), Some(InstanceStatus::Up));

    // A discovery-only client reaches both instances.
    let mut discover = Py::spawn(&["discover", &server, "PY-SVC", "2"]);
    assert_eq!(discover.line().await, r#"["A", "B"]"#);

    // A status override survives heartbeats…
    assert_eq!(
        a.command("status OUT_OF_SERVICE").await,
        "ok status OUT_OF_SERVICE"
    );
    assert_eq!(status_of(&s, &ida), Some(InstanceStatus::OutOfService));
    let before = renewals(&s);
    eventually(30, "several heartbeats after the override", async || {
        renewals(&s) >= before + 6
    })
    .await;
    assert_eq!(status_of(&s, &ida), Some(InstanceStatus::OutOfService));
    // …and can be removed: the instance shows UNKNOWN until its next heartbeat re-registers it UP.
    assert_eq!(a.command("delete_override").await, "ok delete_override");
    eventually(30, "A back UP", async || {
        status_of(&s, &ida) == Some(InstanceStatus::Up)
    })
    .await;

    // A graceful stop removes the instance at once.
    assert_eq!(a.command("stop").await, "stopped");
    assert_eq!(status_of(&s, &ida), None);

    // A SIGKILLed client expires after its 3 s lease.
    b.child.start_kill().unwrap();
    let _ = b.child.wait().await;
    eventually(30, "B expired", async || status_of(&s, &idb).is_none()).await;
    assert!(
        counter(&s, "keel_registry_expirations_total") >= 1,
        "B left by expiry, not a cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_eureka_client_parses_our_xml() {
    let s = TestServer::start(RegistryConfig::default(), Arc::new(SystemClock)).await;
    let mut info = instance("orders", "o-1", 30, 90);
    info.metadata.insert("zone".into(), "z1".into());
    info.metadata
        .insert("management.port".into(), "8081".into());
    s.registry.register(info, Origin::Client);
    s.registry
        .register(instance("orders", "o-2", 30, 90), Origin::Client);
    s.registry.set_status_override(
        &app("orders"),
        &id("o-2"),
        InstanceStatus::OutOfService,
        None,
        Origin::Client,
    );
    let mut parse = Py::spawn(&["parse", &s.url("/eureka/"), "ORDERS", "o-1"]);
    let out: serde_json::Value = serde_json::from_str(&parse.line().await).unwrap();

    let apps = &out["apps"];
    assert_eq!(apps["versions__delta"], "1");
    assert_eq!(apps["apps__hashcode"], "OUT_OF_SERVICE_1_UP_1_");
    let o1 = &apps["applications"][0]["instances"][0];
    assert_eq!(apps["applications"][0]["name"], "ORDERS");
    assert_eq!(o1["instanceId"], "o-1");
    assert_eq!(o1["status"], "UP");
    assert_eq!(o1["overriddenstatus"], "UNKNOWN");
    assert_eq!(o1["port"], serde_json::json!([7001, true]));
    assert_eq!(o1["securePort"], serde_json::json!([7002, false]));
    assert_eq!(
        o1["dataCenterInfo"],
        serde_json::json!([
            "MyOwn",
            "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo"
        ])
    );
    assert_eq!(o1["lease"], serde_json::json!([30, 90]));
    assert_eq!(
        o1["metadata"],
        serde_json::json!({"zone": "z1", "management.port": "8081"})
    );
    let o2 = &apps["applications"][0]["instances"][1];
    assert_eq!(
        (&o2["status"], &o2["overriddenstatus"]),
        (&"OUT_OF_SERVICE".into(), &"OUT_OF_SERVICE".into())
    );

    let delta = &out["delta"];
    assert_eq!(delta["apps__hashcode"], apps["apps__hashcode"]);
    assert_eq!(
        delta["applications"][0]["instances"][1]["actionType"],
        "MODIFIED"
    );
    assert_eq!(
        out["vip"]["applications"][0]["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(out["instance"]["instanceId"], "o-1");
    assert_eq!(out["byId"]["app"], "ORDERS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_eureka_client_against_a_three_node_cluster() {
    let nodes = crate::cluster::mesh().await;
    let [a, b, c] = &nodes;
    let (port_a, port_b) = (service("A").await, service("B").await);
    let (pa, pb) = (port_a.to_string(), port_b.to_string());
    // Each instance registers on a different node; discovery goes through the third.
    let mut ia = Py::spawn(&["register", &a.url(), "py-svc", &pa]);
    let mut ib = Py::spawn(&["register", &c.url(), "py-svc", &pb]);
    assert_eq!(ia.line().await, "registered");
    assert_eq!(ib.line().await, "registered");
    let (ida, idb) = (format!(":{port_a}"), format!(":{port_b}"));
    let everywhere = |id: &str, want: Option<InstanceStatus>| {
        nodes.iter().all(|n| status_of(&n.server, id) == want)
    };
    eventually(30, "both instances on every node", async || {
        everywhere(&ida, Some(InstanceStatus::Up)) && everywhere(&idb, Some(InstanceStatus::Up))
    })
    .await;
    let mut discover = Py::spawn(&["discover", &b.url(), "PY-SVC", "2"]);
    assert_eq!(discover.line().await, r#"["A", "B"]"#);

    assert_eq!(
        ia.command("status OUT_OF_SERVICE").await,
        "ok status OUT_OF_SERVICE"
    );
    eventually(30, "the override on every node", async || {
        everywhere(&ida, Some(InstanceStatus::OutOfService))
    })
    .await;
    assert_eq!(ia.command("delete_override").await, "ok delete_override");
    eventually(30, "A back UP on every node", async || {
        everywhere(&ida, Some(InstanceStatus::Up))
    })
    .await;

    assert_eq!(ia.command("stop").await, "stopped");
    eventually(30, "A gone from every node", async || {
        everywhere(&ida, None)
    })
    .await;
    ib.child.start_kill().unwrap();
    let _ = ib.child.wait().await;
    eventually(30, "B expired on every node", async || {
        everywhere(&idb, None)
    })
    .await;
}
