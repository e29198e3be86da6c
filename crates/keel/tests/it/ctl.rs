//! `keel ctl` against a real `keel standalone`: every command in table and JSON output, and the
//! error cases with their exit codes (2 bad argument, 3 unreachable, 4 auth refused, 5 not found).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, http};

use crate::{TempDir, keel};

const COMPONENTS: [&str; 3] = ["registry", "config", "gateway"];

struct Ctl {
    registry: SocketAddr,
    config: SocketAddr,
    gateway: SocketAddr,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ctl {
    fn of(keel: &KeelProcess) -> Self {
        Self {
            registry: keel.addr("registry"),
            config: keel.addr("config"),
            gateway: keel.addr("gateway"),
        }
    }

    /// Runs `keel ctl ARGS` with the servers given as KEEL_* variables.
    fn run(&self, args: &[&str]) -> Out {
        let output = Command::new(keel())
            .arg("ctl")
            .args(args)
            .env("KEEL_REGISTRY_URL", format!("http://{}", self.registry))
            .env("KEEL_CONFIG_URL", format!("http://{}", self.config))
            .env("KEEL_GATEWAY_URL", format!("http://{}", self.gateway))
            .env_remove("KEEL_CTL_TOKEN")
            .env_remove("KEEL_REGISTRY_AUTH_TOKEN")
            .output()
            .expect("run keel ctl");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.code, 0,
            "keel ctl {args:?}\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let stdout = self.ok(&all);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}\n{stdout}"))
    }
}

fn start(data: &TempDir, env: &[(&str, &str)]) -> KeelProcess {
    let data_dir = data.str();
    let args = vec![
        "standalone",
        "--registry-bind",
        "127.0.0.1:0",
        "--config-bind",
        "127.0.0.1:0",
        "--gateway-bind",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--refresh-interval",
        "1s",
    ];
    KeelProcess::start(keel(), &args, env, &COMPONENTS)
}

async fn register(registry: SocketAddr, app: &str, id: &str, port: u16, token: Option<&str>) {
    let body = format!(
        r#"{{"instance":{{"instanceId":"{id}","hostName":"localhost","app":"{app}","ipAddr":"127.0.0.1","status":"UP","port":{{"$":{port},"@enabled":"true"}},"metadata":{{"zone":"zone-a"}},"dataCenterInfo":{{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}}}}}}"#
    );
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let r = http(
        registry,
        "POST",
        &format!("/eureka/apps/{app}"),
        &headers,
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{r:?}");
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "ctl-test")
        .env("GIT_AUTHOR_EMAIL", "ctl@test")
        .env("GIT_COMMITTER_NAME", "ctl-test")
        .env("GIT_COMMITTER_EMAIL", "ctl@test")
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_in_table_and_json() {
    let data = TempDir::new("ctl");
    let keel = start(&data, &[]);
    let ctl = Ctl::of(&keel);
    register(ctl.registry, "DEMO", "demo-1", 9001, None).await;
    register(ctl.registry, "DEMO", "demo-2", 9002, None).await;

    // apps
    let table = ctl.ok(&["apps"]);
    assert!(table.starts_with("APP"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("DEMO") && l.contains(" 2 ")),
        "{table}"
    );
    let apps = ctl.json(&["apps"]);
    let demo = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "DEMO")
        .unwrap();
    assert_eq!(demo["instances"].as_array().unwrap().len(), 2);

    // instances
    let table = ctl.ok(&["instances", "demo"]);
    assert!(
        table.contains("demo-1") && table.contains("zone-a"),
        "{table}"
    );
    let instances = ctl.json(&["instances", "DEMO"]);
    assert_eq!(instances[0]["id"], "demo-1");
    assert_eq!(instances[0]["status"], "UP");
    assert_eq!(instances[1]["port"], 9002);

    // status: out of service and back
    let out = ctl.ok(&["status", "DEMO", "demo-1", "OUT_OF_SERVICE"]);
    assert_eq!(out.trim(), "DEMO demo-1: OUT_OF_SERVICE");
    let instances = ctl.json(&["instances", "DEMO"]);
    assert_eq!(instances[0]["status"], "OUT_OF_SERVICE");
    let back = ctl.json(&["status", "DEMO", "demo-1", "up"]);
    assert_eq!(back["status"], "UP");
    let instances = ctl.json(&["instances", "DEMO"]);
    assert_eq!(instances[0]["status"], "UP");

    // routes apply (dry run changes nothing), then routes
    let file = data.path().join("routes.yml");
    std::fs::write(
        &file,
        "spring:\n  cloud:\n    gateway:\n      routes:\n        - id: hello\n          uri: lb://demo\n          predicates:\n            - Path=/hello/**\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let dry = ctl.ok(&["routes", "apply", &file, "--dry-run"]);
    assert!(dry.starts_with("valid: 1 route(s)"), "{dry}");
    assert!(!ctl.ok(&["routes"]).contains("hello"));
    let dry = ctl.json(&["routes", "apply", &file, "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    let applied = ctl.ok(&["routes", "apply", &file]);
    assert!(applied.contains("applied 1 route(s)"), "{applied}");
    let table = ctl.ok(&["routes"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("hello") && l.contains("api") && l.contains("lb://demo")),
        "{table}"
    );
    let routes = ctl.json(&["routes"]);
    assert!(
        routes["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "hello"),
        "{routes}"
    );
    let applied = ctl.json(&["routes", "apply", &file]);
    assert_eq!(applied["routes"][0], "hello");

    // config get: merged keys with their winning source
    let table = ctl.ok(&["config", "get", "demo-service", "default"]);
    assert!(table.lines().any(|l| l.starts_with("KEY")), "{table}");
    let merged = ctl.json(&["config", "get", "demo-service", "default", "main"]);
    assert_eq!(merged["application"], "demo-service");
    let entries = merged["entries"].as_array().unwrap();
    assert!(!entries.is_empty(), "{merged}");
    assert!(entries.iter().all(|e| e["source"].as_str().is_some()));

    // a commit: history and diff
    let work = data.path().join("work");
    git(
        data.path(),
        &[
            "clone",
            "-q",
            &data.path().join("config-repo.git").display().to_string(),
            "work",
        ],
    );
    std::fs::write(work.join("demo-service.yml"), "ctl:\n  added: yes\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "ctl test commit"]);
    git(&work, &["push", "-q", "origin", "HEAD"]);
    eventually(Duration::from_secs(30), "the commit in history", || async {
        ctl.ok(&["config", "history", "demo-service"])
            .contains("ctl test commit")
            .then_some(())
    })
    .await;
    let history = ctl.json(&["config", "history", "demo-service"]);
    let commits = history["commits"].as_array().unwrap();
    assert!(commits.len() >= 2, "{history}");
    let (new, old) = (
        commits[0]["commit"].as_str().unwrap().to_owned(),
        commits[1]["commit"].as_str().unwrap().to_owned(),
    );
    let table = ctl.ok(&["config", "diff", &old, &new, "--app", "demo-service"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with('+') && l.contains("ctl.added")),
        "{table}"
    );
    let diff = ctl.json(&["config", "diff", &old, &new, "--app", "demo-service"]);
    assert!(!diff["added"]["ctl.added"].is_null(), "{diff}");

    // breakers: the gateway's per-service breakers at least
    let table = ctl.ok(&["breakers"]);
    assert!(table.starts_with("COMMAND"), "{table}");
    let breakers = ctl.json(&["breakers"]);
    assert!(breakers.is_array(), "{breakers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_with_meaningful_exit_codes() {
    let data = TempDir::new("ctl-errors");
    let keel = start(&data, &[("KEEL_REGISTRY_AUTH_TOKEN", "s3cret")]);
    let ctl = Ctl::of(&keel);
    register(ctl.registry, "DEMO", "demo-1", 9001, Some("s3cret")).await;

    // auth refused: 4, then accepted with --token
    let out = ctl.run(&["status", "DEMO", "demo-1", "OUT_OF_SERVICE"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("refused the credentials"),
        "{}",
        out.stderr
    );
    let out = ctl.run(&[
        "--token",
        "s3cret",
        "status",
        "DEMO",
        "demo-1",
        "OUT_OF_SERVICE",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // bad argument: 2 with a hint
    let out = ctl.run(&["status", "DEMO", "demo-1", "SLEEPING"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown status `SLEEPING`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: use UP, DOWN"), "{}", out.stderr);
    let out = ctl.run(&["routes", "apply", "/nonexistent/routes.yml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    let out = ctl.run(&["config", "diff", "a", "b"]);
    assert_eq!(
        out.code, 2,
        "missing --app is a usage error: {}",
        out.stderr
    );

    // not found: 5
    let out = ctl.run(&["instances", "NOPE"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("no application NOPE (registered: DEMO"),
        "{}",
        out.stderr
    );
    let out = ctl.run(&["--token", "s3cret", "status", "DEMO", "missing-1", "UP"]);
    assert_eq!(out.code, 5, "{}", out.stderr);

    // unreachable: 3, with a hint naming the settings
    let dead = Ctl {
        registry: "127.0.0.1:1".parse().unwrap(),
        config: "127.0.0.1:1".parse().unwrap(),
        gateway: "127.0.0.1:1".parse().unwrap(),
    };
    for args in [
        &["apps"][..],
        &["routes"],
        &["config", "history", "demo-service"],
        &["breakers"],
    ] {
        let out = dead.run(args);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
        assert!(out.stderr.contains("KEEL_REGISTRY_URL"), "{}", out.stderr);
    }
    // a malformed URL is a bad argument
    let out = Command::new(crate::keel())
        .args(["ctl", "--registry-url", "ftp://x", "apps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
