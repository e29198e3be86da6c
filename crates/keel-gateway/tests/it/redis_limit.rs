//! The cluster-wide rate limiter against Debian's real `redis-server` ($KEELTEST_REDIS_SERVER, else
//! the one on PATH or /usr/bin/redis-server), one server per test on a free port: two gateways
//! share one budget; with Redis killed or frozen a fail-open route keeps serving (and the metric
//! and the access log say so) while a fail-closed route answers 503, until Redis answers again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_gateway::GatewayConfig;
use keel_test_support::eventually;

use crate::support::{Backend, TestGateway, access_log_until, client, json};

fn redis_server() -> PathBuf {
    if let Some(p) = std::env::var_os("KEELTEST_REDIS_SERVER") {
        return p.into();
    }
    let found = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|p| !p.is_empty());
    match found {
        Some(p) => p.into(),
        None if std::path::Path::new("/usr/bin/redis-server").exists() => {
            "/usr/bin/redis-server".into()
        }
        None => panic!(
            "redis-server not found: the Redis rate-limit tests need the real server. Install it with \
             `apt-get install -y redis-server` (cargo xtask ci does) or set KEELTEST_REDIS_SERVER"
        ),
    }
}

/// A `redis-server` of this test's own, without persistence.
struct Redis {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    url: String,
}

impl Redis {
    async fn start() -> Redis {
        // redis-server cannot report an ephemeral TCP port: pick a free one and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            url: format!("redis://127.0.0.1:{port}"),
        };
        redis.restart().await;
        redis
    }

    /// Starts the server (again) on its port and waits until it answers PING.
    async fn restart(&mut self) {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let url = self.url.clone();
        eventually(
            Duration::from_secs(20),
            "redis-server to answer PING",
            || {
                let url = url.clone();
                async move {
                    let client = redis::Client::open(url).ok()?;
                    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .ok()
                        .filter(|p| p == "PONG")
                }
            },
        )
        .await;
    }

    /// SIGKILL: the server is gone at once, as a crashed one would be.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: connections stay open but nothing answers (a hung or overloaded server).
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }

    async fn exists(&self, key: &str) -> bool {
        let client = redis::Client::open(self.url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .unwrap()
            == 1
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A stopped server ignores SIGKILL only until it is continued; SIGKILL works either way.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.kill();
    }
}

fn config(redis: &Redis, timeout: Duration) -> GatewayConfig {
    GatewayConfig {
        redis_url: Some(redis.url.clone()),
        redis_timeout: timeout,
        ..GatewayConfig::default()
    }
}

/// The value of the first sample line starting with `prefix`, 0 when there is none.
async fn metric(g: &TestGateway, prefix: &str) -> f64 {
    let text = client()
        .get(g.url("/actuator/prometheus"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_redis_budget() {
    let redis = Redis::start().await;
    let backend = Backend::start("a").await;
    // 300 tokens, 60 a request: a burst of 5 requests, then one more a minute.
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: shared
    uri: http://{a}
    predicates: [Path=/shared/**]
    filters:
      - name: RequestRateLimiter
        args:
          redis-rate-limiter.replenishRate: 1
          redis-rate-limiter.burstCapacity: 300
          redis-rate-limiter.requestedTokens: 60
          keyResolver: header:X-Client
          backend: redis
"#,
        a = backend.addr
    );
    // A generous timeout: this test is about the shared budget, not about a slow Redis.
    let timeout = Duration::from_secs(10);
    let g1 = TestGateway::start(config(&redis, timeout), &routes).await;
    let g2 = TestGateway::start(config(&redis, timeout), &routes).await;
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        let url = if i % 2 == 0 { &g1 } else { &g2 }.url("/shared/x");
        calls.spawn(async move {
            let r = client()
                .get(url)
                .header("x-client", "alice")
                .send()
                .await
                .unwrap();
            let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
            let headers = [
                h("ratelimit-limit"),
                h("x-ratelimit-burst-capacity"),
                h("x-ratelimit-replenish-rate"),
                h("x-ratelimit-requested-tokens"),
                h("x-ratelimit-remaining"),
                h("retry-after"),
            ];
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, headers, body)
        });
    }
    let mut admitted = 0;
    let mut refused = 0;
    while let Some(joined) = calls.join_next().await {
        let (status, [limit, burst, rate, tokens, remaining, retry_after], body) = joined.unwrap();
        assert_eq!(limit.as_deref(), Some("300"), "{status} {body}");
        assert_eq!(burst.as_deref(), Some("300"));
        assert_eq!(rate.as_deref(), Some("1"));
        assert_eq!(tokens.as_deref(), Some("60"));
        assert!(remaining.is_some());
        match status {
            200 => admitted += 1,
            429 => {
                refused += 1;
                assert!(retry_after.is_some(), "a 429 without Retry-After");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["reason"], "rate_limited", "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // One token (a sixtieth of a request) comes back a second; count a whole request per minute
    // elapsed so a slow machine cannot fail this.
    let refilled = started.elapsed().as_secs() as usize / 60;
    assert!(
        (5..=5 + refilled).contains(&admitted),
        "the two gateways admitted {admitted} of 20 requests against one budget of 5 (+{refilled})"
    );
    assert_eq!(admitted + refused, 20);
    assert_eq!(backend.count(), admitted);
    // Every check was answered by Redis: none fell back to the fail policy.
    for g in [&g1, &g2] {
        assert_eq!(
            metric(g, "keel_gateway_rate_limiter_unavailable_total").await,
            0.0
        );
    }
    assert!(redis.exists("keel:rl:shared/alice").await);
    // Another key has a budget of its own, on either gateway.
    let r = client()
        .get(g2.url("/shared/x"))
        .header("x-client", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "240");
}

async fn get(g: &TestGateway, path: &str) -> reqwest::Response {
    client()
        .get(g.url(path))
        .timeout(Duration::from_secs(30))
        .header("x-client", "alice")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_fail_open_routes_serve_and_fail_closed_routes_refuse() {
    let mut redis = Redis::start().await;
    let backend = Backend::start("a").await;
    let limiter = |extra: &str| {
        format!(
            "      - name: RequestRateLimiter\n        args:\n          replenishRate: 1000\n          \
             keyResolver: header:X-Client\n          backend: redis\n{extra}"
        )
    };
    let routes = format!(
        "spring.cloud.gateway.routes:\n\
         \x20 - id: open\n    uri: http://{a}\n    predicates: [Path=/open/**]\n    filters:\n{open}\
         \x20 - id: closed\n    uri: http://{a}\n    predicates: [Path=/closed/**]\n    filters:\n{closed}",
        a = backend.addr,
        open = limiter(""),
        closed = limiter("          failMode: closed\n"),
    );
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("access.log");
    let config = GatewayConfig {
        access_log: keel_gateway::AccessLogTarget::File(log.clone()),
        ..config(&redis, Duration::from_secs(1))
    };
    let g = TestGateway::start(config, &routes).await;
    // With Redis up both routes are counted there (a first connection slower than the timeout
    // on a loaded machine would only delay this).
    for path in ["/open/x", "/closed/x"] {
        eventually(
            Duration::from_secs(30),
            "Redis to count both routes",
            || async {
                let r = get(&g, path).await;
                (r.status() == 200
                    && r.headers()
                        .get("ratelimit-limit")
                        .is_some_and(|v| v == "1000"))
                .then_some(())
            },
        )
        .await;
    }

    redis.kill();
    let r = get(&g, "/open/x").await;
    assert_eq!(r.status(), 200, "the fail-open route refused without Redis");
    // Nothing was counted, so no budget is claimed.
    assert!(!r.headers().contains_key("ratelimit-remaining"));
    let r = get(&g, "/closed/x").await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body = json(r).await;
    assert_eq!(body["reason"], "rate_limiter_unavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("fails closed"),
        "{body}"
    );
    assert!(
        metric(
            &g,
            "keel_gateway_rate_limiter_unavailable_total{route=\"open\",policy=\"open\"}"
        )
        .await
            >= 1.0
    );
    assert!(
        metric(
            &g,
            "keel_gateway_rate_limiter_unavailable_total{route=\"closed\",policy=\"closed\"}"
        )
        .await
            >= 1.0
    );
    // The access log says who decided.
    let lines = access_log_until(&log, "the access log to record both policies", |lines| {
        let has = |route: &str, limiter: &str| {
            lines
                .iter()
                .any(|l| l["route"] == route && l["limiter"] == limiter)
        };
        has("open", "redis_fail_open") && has("closed", "redis_fail_closed")
    })
    .await;
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == "open" && l["limiter"] == "redis" && l["status"] == 200)
    );
    assert!(lines.iter().any(|l| l["route"] == "closed"
        && l["limiter"] == "redis_fail_closed"
        && l["status"] == 503
        && l["decision"] == "rate_limiter_unavailable"));

    // Redis back on the same port: limits apply again without a gateway restart.
    redis.restart().await;
    eventually(
        Duration::from_secs(30),
        "the fail-closed route to serve again",
        || async {
            let r = get(&g, "/closed/x").await;
            (r.status() == 200 && r.headers().contains_key("ratelimit-remaining")).then_some(())
        },
    )
    .await;

    // Redis frozen (connections open, no answers): checks give up at the timeout.
    redis.signal("-STOP");
    eventually(
        Duration::from_secs(30),
        "the fail-closed route to refuse while Redis hangs",
        || async { (get(&g, "/closed/x").await.status() == 503).then_some(()) },
    )
    .await;
    let r = get(&g, "/open/x").await;
    assert_eq!(
        r.status(),
        200,
        "the fail-open route refused while Redis hangs"
    );
    redis.signal("-CONT");
    eventually(
        Duration::from_secs(30),
        "the fail-closed route to serve once Redis answers again",
        || async { (get(&g, "/closed/x").await.status() == 200).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn redis_routes_need_the_redis_setting() {
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    let validate = |filter: serde_json::Value| {
        let url = g.url("/keel/v1/gateway/validate");
        async move {
            let r = client()
                .post(url)
                .header("content-type", "application/json")
                .body(
                    serde_json::json!({"id": "r", "uri": "http://127.0.0.1:1",
                        "predicates": ["Path=/r/**"], "filters": [filter]})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), json(r).await)
        }
    };
    let (status, body) = validate(serde_json::json!({"name": "RequestRateLimiter",
        "args": {"replenishRate": "1", "backend": "redis"}}))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("gateway.redis-url"),
        "{body}"
    );
    let (status, body) = validate(serde_json::json!({"name": "RequestRateLimiter",
        "args": {"replenishRate": "1", "failMode": "closed"}}))
    .await;
    assert_eq!(status, 400, "a local limiter cannot fail: {body}");
    let (status, body) = validate(serde_json::json!({"name": "RequestRateLimiter",
        "args": {"replenishRate": "1", "backend": "memcached"}}))
    .await;
    assert_eq!(status, 400, "{body}");
    // An unparsable URL stops the gateway from starting.
    let bad = GatewayConfig {
        redis_url: Some("http://not-redis".into()),
        ..GatewayConfig::default()
    };
    let err = keel_gateway::Gateway::new(bad, &keel_server::HealthRegistry::new()).unwrap_err();
    assert!(err.to_string().contains("gateway.redis-url"), "{err}");
}
