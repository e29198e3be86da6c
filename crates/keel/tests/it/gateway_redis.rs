//! `keel gateway` with the Redis rate-limit settings (`KEEL_GATEWAY_REDIS_URL`, `_TIMEOUT`,
//! `_FAIL_MODE`) against Debian's real `redis-server` ($KEELTEST_REDIS_SERVER, else PATH or
//! /usr/bin/redis-server): the budget lives in Redis, the gateway-wide fail mode applies when Redis
//! is killed, and a bad fail mode is refused before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_test_support::{KeelProcess, eventually, http};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{TempDir, keel};

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
            "redis-server not found: this test needs the real server. Install it with \
             `apt-get install -y redis-server` (cargo xtask ci does) or set KEELTEST_REDIS_SERVER"
        ),
    }
}

/// One RESP command over a fresh connection; the raw reply.
async fn redis(addr: SocketAddr, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).await?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn keel_gateway_keeps_its_rate_limits_in_redis() {
    let dir = TempDir::new("gw-redis");
    // redis-server cannot report an ephemeral TCP port: pick a free one and hand it over.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let server = Command::new(redis_server())
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let mut server = Redis(server);
    eventually(
        Duration::from_secs(20),
        "redis-server to answer",
        || async {
            redis(addr, &["PING"])
                .await
                .ok()
                .filter(|r| r.starts_with("+PONG"))
        },
    )
    .await;

    // A backend that answers 200 to everything.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    let routes = dir.path().join("routes.yml");
    std::fs::write(
        &routes,
        format!(
            "spring.cloud.gateway.routes:\n  - id: limited\n    uri: http://{backend_addr}\n    \
             predicates: [Path=/limited/**]\n    filters:\n      \
             - name: RequestRateLimiter\n        args:\n          replenishRate: 1\n          \
             burstCapacity: 120\n          requestedTokens: 60\n          backend: redis\n"
        ),
    )
    .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let redis_url = format!("redis://{addr}");
    let gateway = KeelProcess::start(
        keel(),
        &["gateway", "--bind", "127.0.0.1:0"],
        &[
            ("KEEL_GATEWAY_REDIS_URL", &redis_url),
            ("KEEL_GATEWAY_REDIS_TIMEOUT", "5s"),
            ("KEEL_GATEWAY_REDIS_FAIL_MODE", "closed"),
            ("KEEL_GATEWAY_ROUTES", &routes.display().to_string()),
            ("KEEL_GATEWAY_CONFIG_ROUTES", "false"),
            ("KEEL_GATEWAY_WORKERS", "1"),
            ("KEEL_REGISTRY_URL", &registry_url),
        ],
        &["gateway"],
    );
    let gw = gateway.addr("gateway");
    // Two requests a burst (120 tokens, 60 a request) for one key, the client address.
    for i in 0..2 {
        let r = http(gw, "GET", "/limited/x", &[], b"").await.unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.head);
        assert!(
            r.head.to_ascii_lowercase().contains("ratelimit-limit: 120"),
            "{}",
            r.head
        );
    }
    let r = http(gw, "GET", "/limited/x", &[], b"").await.unwrap();
    assert_eq!(r.status, 429, "{}", r.head);
    assert_eq!(
        redis(addr, &["EXISTS", "keel:rl:limited/127.0.0.1"])
            .await
            .unwrap(),
        ":1\r\n"
    );

    // Redis gone: the gateway-wide fail mode (closed) refuses.
    let _ = server.0.kill();
    let _ = server.0.wait();
    let r = http(gw, "GET", "/limited/x", &[], b"").await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("rate_limiter_unavailable"), "{}", r.body);
}

#[test]
fn a_bad_redis_fail_mode_is_refused() {
    let out = Command::new(keel())
        .args(["gateway", "--bind", "127.0.0.1:0"])
        .env("KEEL_GATEWAY_REDIS_FAIL_MODE", "sometimes")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("`gateway.redis-fail-mode`"), "{text}");
    assert!(text.contains("`open` or `closed`"), "{text}");
}
