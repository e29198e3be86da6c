//! Path-normalisation bypass attempts, request smuggling over raw TCP, and oversized input.

use keel_gateway::GatewayConfig;
use keel_test_support::{http, read_response};
use tokio::io::AsyncWriteExt;

use crate::support::{Backend, TestGateway, client};

/// `/public/**` is open; `/admin/**` is only for 10/8 (the test client is not), so nothing may reach it.
async fn guarded() -> (Backend, Backend, TestGateway) {
    let public = Backend::start("public").await;
    let admin = Backend::start("admin").await;
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: admin
    uri: http://{admin}
    predicates: [Path=/admin/**, RemoteAddr=10.0.0.0/8]
  - id: public
    uri: http://{public}
    predicates: [Path=/public/**]
"#,
        admin = admin.addr,
        public = public.addr
    );
    // `gateway.max-body-bytes`: the gateway's own body limit, as `keel gateway` applies it.
    let config = GatewayConfig {
        max_body_bytes: Some(1024 * 1024),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, &routes).await;
    (public, admin, g)
}

#[tokio::test]
async fn encoded_and_dotted_paths_cannot_reach_the_admin_route() {
    let (public, admin, g) = guarded().await;
    let attempts = [
        "//admin/x",
        "/%61dmin/x",
        "/./admin/x",
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/..%2fadmin/x",
        "/public/%2e%2e%2fadmin/x",
        "/public/..%5cadmin/x",
        "/public/..\\admin/x",
        "/admin;x=1/x",
        "/ADMIN/x",
        "/public/.%2e/admin/x",
        "///admin/x",
        "/%2fadmin/x",
    ];
    for path in attempts {
        let r = http(g.addr, "GET", path, &[], b"").await.unwrap();
        assert!(
            matches!(r.status, 400 | 404),
            "{path} answered {}: {}",
            r.status,
            r.body
        );
    }
    assert_eq!(
        admin.count(),
        0,
        "admin saw {:?}",
        admin.seen.lock().unwrap()
    );
    assert!(
        !public.saw("admin"),
        "public saw {:?}",
        public.seen.lock().unwrap()
    );
    // The normalised path is what is forwarded.
    let r = http(g.addr, "GET", "/public/a/./b/../%63//d", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        public.saw("GET /public/a/c/d"),
        "{:?}",
        public.seen.lock().unwrap()
    );
    let r = http(g.addr, "GET", "/public/a%2Fb", &[], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("encoded path separators"), "{}", r.body);
}

async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.shutdown().await;
    match read_response(&mut s).await {
        Ok(r) => format!("{}\r\n\r\n{}", r.head, r.body),
        Err(e) => format!("error: {e}"),
    }
}

#[tokio::test]
async fn smuggling_attempts_never_reach_a_backend() {
    let (public, _admin, g) = guarded().await;
    // CL.TE: Transfer-Encoding wins, Content-Length is dropped and the connection is closed after
    // the first response, so the tail is never read as a second request.
    let out = raw(
        g.addr,
        b"POST /public/first HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(out.matches("HTTP/1.1").count() <= 1, "{out}");
    // TE.CL with an obfuscated Transfer-Encoding: refused outright.
    let out = raw(
        g.addr,
        b"POST /public/second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n\
          5c\r\nGET /public/smuggled2 HTTP/1.1\r\nHost: x\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    // Two different Content-Lengths: refused.
    let out = raw(g.addr, b"POST /public/third HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    let seen = public.seen.lock().unwrap().clone();
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("smuggled") || l.contains("second") || l.contains("third")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused_before_the_backend() {
    let (public, _admin, g) = guarded().await;
    let big = "x".repeat(16 * 1024);
    let r = http(g.addr, "GET", "/public/big-header", &[("x-big", &big)], b"")
        .await
        .unwrap();
    assert_eq!(r.status, 431);
    let body = vec![b'a'; 2 * 1024 * 1024];
    let r = client()
        .post(g.url("/public/big-body"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!public.saw("big"), "{:?}", public.seen.lock().unwrap());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_cut_off_before_routing() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    let public = Backend::start("public").await;
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: public\n    uri: http://{}\n    predicates: [Path=/public/**]\n",
        public.addr
    );
    let limits = keel_server::HttpLimits {
        header_read_timeout: Duration::from_millis(300),
        ..keel_server::HttpLimits::default()
    };
    let serving = crate::support::Serving {
        limits: Some(limits),
        ..Default::default()
    };
    let g = TestGateway::start_with(GatewayConfig::default(), &routes, serving).await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    // A slowloris head: the request line and one header, then nothing.
    s.write_all(b"GET /public/slow HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    // A generous deadline for the gateway to hang up (it does so after 300 ms); not a timing claim.
    let closed = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut seen)).await;
    assert!(closed.is_ok(), "the gateway kept the slow connection open");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(public.count(), 0);
}
