//! `keel standalone` end to end: every component healthy, metrics, dashboard, graceful SIGTERM.

use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, get, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{TempDir, keel};

const COMPONENTS: [&str; 3] = ["registry", "config", "gateway"];

fn start(data: &TempDir, extra: &[&str]) -> KeelProcess {
    let data_dir = data.str();
    let mut args = vec![
        "standalone",
        "--registry-bind",
        "127.0.0.1:0",
        "--config-bind",
        "127.0.0.1:0",
        "--gateway-bind",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
    ];
    args.extend_from_slice(extra);
    KeelProcess::start(keel(), &args, &[], &COMPONENTS)
}

#[tokio::test]
async fn every_component_serves_health_and_metrics() {
    let data = TempDir::new("standalone");
    let keel = start(&data, &[]);
    for component in COMPONENTS {
        let addr = keel.addr(component);
        let health = get(addr, "/actuator/health").await.unwrap();
        assert_eq!(health.status, 200, "{component}: {health:?}");
        let json: serde_json::Value = serde_json::from_str(&health.body).unwrap();
        assert_eq!(json["status"], "UP", "{component}");
        for probe in ["/actuator/health/liveness", "/actuator/health/readiness"] {
            assert_eq!(
                get(addr, probe).await.unwrap().status,
                200,
                "{component}{probe}"
            );
        }
        let metrics = get(addr, "/metrics").await.unwrap();
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.body.contains(&format!(
                r#"keel_http_requests_total{{component="{component}",status="2xx"}}"#
            )),
            "{component}: {}",
            metrics.body
        );
        assert_eq!(get(addr, "/actuator/prometheus").await.unwrap().status, 200);
    }
    // First start created the sample configuration repository, and config reports its commit.
    assert!(data.path().join("config-repo.git/HEAD").exists());
    let config = get(keel.addr("config"), "/actuator/health").await.unwrap();
    assert!(config.body.contains(r#""version":""#), "{}", config.body);

    // The dashboard on the registry's port sees every component in-process.
    let page = get(keel.addr("registry"), "/").await.unwrap();
    assert!(page.body.contains("<title>Keel</title>"));
    let feed = get(keel.addr("registry"), "/keel/v1/dashboard/health")
        .await
        .unwrap();
    let feed: serde_json::Value = serde_json::from_str(&feed.body).unwrap();
    for component in COMPONENTS {
        assert_eq!(feed[component]["status"], "UP", "{feed}");
    }
}

#[tokio::test]
async fn json_logs_carry_the_same_listening_lines() {
    let data = TempDir::new("json");
    let keel = start(&data, &["--log-format", "json"]);
    let output = keel.output();
    let line = output
        .lines()
        .find(|l| l.contains("registry listening on http://"))
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        json["fields"]["message"],
        format!("registry listening on http://{}", keel.addr("registry"))
    );
}

#[tokio::test]
async fn sigterm_drains_an_in_flight_upload_then_exits_zero() {
    let data = TempDir::new("sigterm");
    let mut keel = start(
        &data,
        &["--readiness-delay", "2s", "--drain-timeout", "30s"],
    );
    let registry = keel.addr("registry");

    // A register call whose body arrives slowly: the request is in flight across the SIGTERM.
    let body = br#"{"instance":{"instanceId":"slow-1","hostName":"localhost","app":"SLOW","ipAddr":"127.0.0.1","status":"UP","port":{"$":9000,"@enabled":"true"},"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}}}"#;
    let mut upload = TcpStream::connect(registry).await.unwrap();
    upload
        .write_all(
            format!(
                "POST /eureka/apps/SLOW HTTP/1.1\r\nHost: keel\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    upload.write_all(&body[..10]).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the upload to be in flight",
        || async {
            let m = get(registry, "/metrics").await.ok()?;
            m.body
                .contains(r#"keel_http_requests_in_flight{component="registry"} 2"#)
                .then_some(())
        },
    )
    .await;

    keel.sigterm();
    eventually(
        Duration::from_secs(10),
        "readiness to turn DOWN",
        || async {
            let r = get(registry, "/actuator/health/readiness").await.ok()?;
            (r.status == 503).then_some(())
        },
    )
    .await;
    upload.write_all(&body[10..]).await.unwrap();
    let response = read_response(&mut upload).await.unwrap();
    assert!(
        response.status < 500,
        "in-flight request failed: {response:?}\n{}",
        keel.output()
    );
    let status = keel
        .wait_timeout(Duration::from_secs(30))
        .expect("keel did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}\n{}", keel.output());
    assert!(keel.output().contains("readiness DOWN"));
}
