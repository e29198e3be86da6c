//! Issue 4's acceptance for the SDK: the demo services against a real `keel registry`, every
//! one a real process on real sockets.
//!
//! Cargo hands a test the paths of its own package's binaries only, so the demo binaries are
//! built here with `cargo build -p demo-callee -p demo-caller` (a no-op when fresh; the outer
//! `cargo test` has released the build lock by the time tests run) and taken from the directory
//! `keel` was built into.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, get};

use crate::{TempDir, keel};

/// The demo binary `name`, built once per test run with the profile `keel` was built with.
pub(crate) fn demo(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let keel = keel();
    BUILT.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.args(["build", "-q", "-p", "demo-callee", "-p", "demo-caller"]);
        if keel.components().any(|c| c.as_os_str() == "release") {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .expect("run cargo build for the demo services");
        assert!(status.success(), "building the demo services failed");
    });
    keel.with_file_name(name)
}

pub(crate) fn start_demo(name: &str, registry: &str, extra: &[&str]) -> KeelProcess {
    let mut args = vec!["--bind", "127.0.0.1:0", "--registry", registry];
    args.extend_from_slice(extra);
    KeelProcess::start(Path::new(&demo(name)), &args, &[], &[name])
}

async fn json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let response = get(addr, path).await.unwrap();
    assert_eq!(response.status, 200, "{path}: {response:?}");
    serde_json::from_str(&response.body).unwrap()
}

/// The callee instance ids in the caller's discovery cache, and how it is fed.
async fn caller_view(caller: SocketAddr) -> (Vec<String>, String) {
    let view = json(caller, "/discovery").await;
    let mut ids: Vec<String> = view["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    (ids, view["feed"].as_str().unwrap_or_default().to_owned())
}

fn instance_id(callee: &KeelProcess) -> String {
    format!(
        "127.0.0.1:demo-callee:{}",
        callee.addr("demo-callee").port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_callee_fails_no_idempotent_call_and_deregistration_arrives_by_watch() {
    let data = TempDir::new("sdk");
    let data_dir = data.str();
    let registry = KeelProcess::start(
        keel(),
        &["registry", "--bind", "127.0.0.1:0", "--data-dir", &data_dir],
        &[],
        &["registry"],
    );
    let url = format!("http://{}/eureka/", registry.addr("registry"));

    let victim = start_demo("demo-callee", &url, &[]);
    let mut survivor = start_demo("demo-callee", &url, &[]);
    // Polling every hour: within this test only the watch stream can bring changes.
    let caller = start_demo("demo-caller", &url, &["--poll-secs", "3600"]);
    let caller_addr = caller.addr("demo-caller");
    let mut both = vec![instance_id(&victim), instance_id(&survivor)];
    both.sort();
    eventually(
        Duration::from_secs(30),
        "both callees in the caller's cache",
        || {
            let both = both.clone();
            async move { (caller_view(caller_addr).await == (both, "Watch".into())).then_some(()) }
        },
    )
    .await;

    // 50 calls/s for 5 s, each on its own connection to the caller; one callee is SIGKILLed
    // after 1.5 s (no deregistration: the registry still lists it).
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..250 {
        ticker.tick().await;
        if n == 75 {
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &victim.pid().to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
        }
        calls.spawn(async move { get(caller_addr, "/call").await });
    }
    let mut failures = Vec::new();
    let mut answered_by = std::collections::BTreeMap::<String, u32>::new();
    while let Some(joined) = calls.join_next().await {
        match joined.unwrap() {
            Ok(r) if r.status == 200 => {
                let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
                if body["fallback"] == false {
                    let who = body["callee"]["instance"]
                        .as_str()
                        .unwrap_or("?")
                        .to_owned();
                    *answered_by.entry(who).or_default() += 1;
                } else {
                    failures.push(body.to_string());
                }
            }
            other => failures.push(format!("{other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 250 calls failed: {failures:?}\ncaller output:\n{}",
        failures.len(),
        caller.output()
    );
    assert!(
        answered_by.contains_key(&instance_id(&survivor)),
        "{answered_by:?}"
    );

    // Retries stayed within the budget: 20 % of calls plus 10/s over the 10 s window.
    let stats = json(caller_addr, "/stats").await;
    let number = |k: &str| stats[k].as_u64().unwrap();
    assert_eq!(number("calls"), 250, "{stats}");
    assert!(
        number("budget_window_retries") <= number("budget_window_calls") / 5 + 100,
        "retries over budget: {stats}"
    );
    assert!(number("retries") <= number("calls") / 5 + 100, "{stats}");

    // The survivor leaves gracefully on SIGTERM (DOWN, then cancel); the caller's cache drops
    // it through the watch stream, and still holds the killed one, whose lease has not run out.
    survivor.sigterm();
    let exit = survivor
        .wait_timeout(Duration::from_secs(30))
        .expect("the callee did not exit after SIGTERM");
    assert!(exit.success(), "{}", survivor.output());
    let victim_id = instance_id(&victim);
    eventually(
        Duration::from_secs(30),
        "the deregistration in the caller's cache",
        || {
            let victim_id = victim_id.clone();
            async move {
                (caller_view(caller_addr).await == (vec![victim_id], "Watch".into())).then_some(())
            }
        },
    )
    .await;
}
