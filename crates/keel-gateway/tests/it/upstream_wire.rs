//! The gateway's own HTTP/1.1 upstream client against a raw TCP backend that answers with exact
//! bytes: chunked and close-delimited bodies, interim 1xx answers, large bodies, broken framing,
//! chunked request bodies, and pooled connections the backend has closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use keel_gateway::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestGateway, access_log_until, client};

/// A backend that answers each request with the bytes its path names, and records what it got.
struct WireBackend {
    addr: SocketAddr,
    /// Connections accepted so far.
    accepted: Arc<AtomicUsize>,
    /// Connections the gateway closed (end of stream between requests).
    closed: Arc<AtomicUsize>,
    /// Each request as received: head and body bytes, lossily decoded.
    seen: Arc<Mutex<Vec<String>>>,
}

const BIG: usize = 1 << 20;

/// The response for `path`, and whether the backend closes the connection after it.
fn script(path: &str) -> (Vec<u8>, bool) {
    let text = |s: &str| (s.as_bytes().to_vec(), false);
    match path {
        "/chunked" => text(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
        ),
        "/close" => (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end".to_vec(),
            true,
        ),
        "/continue" => text(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-after: 1xx\r\n\r\nfinal",
        ),
        "/big" => {
            let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").into_bytes();
            r.extend((0..BIG).map(|i| b'a' + (i % 26) as u8));
            (r, false)
        }
        "/conflict" => {
            text("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd")
        }
        "/garbage" => text("HTTP/1.1 2x0 Nope\r\n\r\n"),
        "/hangup" => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort".to_vec(),
            true,
        ),
        // A keep-alive answer after which the backend closes anyway, as an idle timeout would.
        "/idle-close" => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            true,
        ),
        "/hop-by-hop" => text(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, x-private\r\nx-private: secret\r\n\
             keep-alive: timeout=5\r\nproxy-connection: keep-alive\r\nx-kept: yes\r\n\
             content-length: 2\r\n\r\nok",
        ),
        "/http10-keep-alive" => {
            text("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok")
        }
        // The backend says it closes but keeps the socket open: only the gateway can end it.
        "/connection-close" => {
            text("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        }
        // Transfer-Encoding wins: a Content-Length beside it, even a broken one, is ignored.
        "/chunked-and-length" => text(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: nope\r\n\r\n\
             2\r\nok\r\n0\r\n\r\n",
        ),
        // Relayed line by line: everything but what the gateway owns reaches the client as sent.
        "/relay" => text(
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Request-Id: upstream-id\r\n\
             Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Multi: one\r\nSet-Cookie: s=1\r\n\
             X-Multi: two\r\nTrailer: x-t\r\nContent-Length: 5\r\nX-Last: end\r\n\r\nhello",
        ),
        // Not in the usual `name: value\r\n` form: built into a map, values trimmed.
        "/relay-odd" => text(
            "HTTP/1.1 200 OK\r\nX-Pad:   padded  \r\nX-Bare: lf\nConnection: keep-alive\r\n\
             Content-Length: 5\r\n\r\nhello",
        ),
        _ => text("HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\necho"),
    }
}

/// Appends what the socket has next; `None` at end of stream.
async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await.ok()?;
    buf.extend_from_slice(&chunk[..n]);
    (n > 0).then_some(())
}

/// Reads one request (head, and a Content-Length or chunked body); `None` at end of stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let total = loop {
        match length {
            Some(n) if buf.len() >= head_end + n => break head_end + n,
            None if !chunked => break head_end,
            None => {
                if let Some(i) = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                    break head_end + i + 5;
                }
            }
            _ => {}
        }
        read_more(s, buf).await?;
    };
    let req = String::from_utf8_lossy(&buf[..total]).into_owned();
    buf.drain(..total);
    Some(req)
}

impl WireBackend {
    async fn start() -> WireBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, cl, sn) = (accepted.clone(), closed.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (cl, sn) = (cl.clone(), sn.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let _closed = Closed(cl);
                    while let Some(req) = read_request(&mut s, &mut buf).await {
                        let path = req
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("/")
                            .trim_start_matches("/wire")
                            .to_owned();
                        sn.lock().unwrap().push(req);
                        let (resp, close) = script(&path);
                        // Large answers go out in pieces, so the gateway reads the body in several.
                        for piece in resp.chunks(64 * 1024) {
                            if s.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        if close {
                            let _ = s.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        WireBackend {
            addr,
            accepted,
            closed,
            seen,
        }
    }
}

/// Counts a connection's end when its task finishes.
struct Closed(Arc<AtomicUsize>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

async fn gateway(backend: &WireBackend) -> TestGateway {
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: wire
    uri: http://{}
    predicates: [Path=/wire/**]
"#,
        backend.addr
    );
    TestGateway::start(GatewayConfig::default(), &routes).await
}

#[tokio::test]
async fn response_framings_are_decoded_and_connections_reused() {
    let backend = WireBackend::start().await;
    let g = gateway(&backend).await;
    let c = client();

    let r = c.get(g.url("/wire/chunked")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "hello world");
    // The chunked body was read to its end, so the same connection carries the next request.
    let r = c.get(g.url("/wire/chunked")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello world");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 1);

    let r = c.get(g.url("/wire/continue")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-after"], "1xx");
    assert_eq!(r.text().await.unwrap(), "final");

    let r = c.get(g.url("/wire/big")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), BIG);
    assert!(
        body.iter()
            .enumerate()
            .all(|(i, b)| *b == b'a' + (i % 26) as u8)
    );

    let r = c.get(g.url("/wire/close")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "until the end");
}

#[tokio::test]
async fn connection_headers_decide_reuse_and_never_reach_the_client() {
    let backend = WireBackend::start().await;
    let g = gateway(&backend).await;
    let c = client();
    for _ in 0..2 {
        let r = c.get(g.url("/wire/hop-by-hop")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-kept"], "yes");
        for gone in ["x-private", "keep-alive", "proxy-connection", "connection"] {
            assert!(!r.headers().contains_key(gone), "{gone}: {:?}", r.headers());
        }
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    // HTTP/1.0 with `Connection: keep-alive` is reused too.
    for _ in 0..2 {
        let r = c
            .get(g.url("/wire/http10-keep-alive"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    let r = c
        .get(g.url("/wire/chunked-and-length"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(
        backend.accepted.load(Ordering::SeqCst),
        1,
        "one connection carried them all"
    );
    // `Connection: close` makes the gateway end the upstream connection (the client's stays open):
    // each such answer leaves the next request a new connection.
    for n in 1..=2 {
        let r = c.get(g.url("/wire/connection-close")).send().await.unwrap();
        assert!(!r.headers().contains_key("connection"), "{:?}", r.headers());
        assert_eq!(r.text().await.unwrap(), "ok");
        assert_eq!(backend.accepted.load(Ordering::SeqCst), n);
    }
    let r = c.get(g.url("/wire/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "echo");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn broken_upstream_answers_are_502_and_never_pooled() {
    let backend = WireBackend::start().await;
    let g = gateway(&backend).await;
    let c = client();
    for path in ["/wire/conflict", "/wire/garbage"] {
        let r = c.get(g.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 502, "{path}");
    }
    // A body cut short: the client's exchange fails (whether or not the head went out first).
    let truncated = match c.get(g.url("/wire/hangup")).send().await {
        Ok(r) => r.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(truncated, "a truncated body must not look complete");
    // None of those connections is reused: a fresh one answers normally.
    let before = backend.accepted.load(Ordering::SeqCst);
    let r = c.get(g.url("/wire/chunked")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "hello world");
    assert_eq!(backend.accepted.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn streamed_request_bodies_go_out_chunked() {
    let backend = WireBackend::start().await;
    let g = gateway(&backend).await;
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = (0..50)
        .map(|i| Ok(format!("piece-{i:02};").into_bytes()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(pieces));
    let r = client()
        .post(g.url("/wire/echo"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = backend.seen.lock().unwrap().clone();
    let req = seen.last().expect("the backend got the request");
    assert!(
        req.to_lowercase().contains("transfer-encoding: chunked"),
        "{req}"
    );
    // Reassembled from the chunks, the body is whole and in order.
    let mut joined = String::new();
    let mut rest = req.split_once("\r\n\r\n").unwrap().1;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
        if n == 0 {
            break;
        }
        joined.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    let expected: String = (0..50).map(|i| format!("piece-{i:02};")).collect();
    assert_eq!(joined, expected);
}

#[tokio::test]
async fn pooled_connections_the_backend_closed_are_not_used() {
    let backend = WireBackend::start().await;
    let g = gateway(&backend).await;
    let c = client();
    // Every answer is followed by the backend closing a connection it called keep-alive.
    for i in 0..20 {
        let r = if i % 2 == 0 {
            c.get(g.url("/wire/idle-close")).send().await.unwrap()
        } else {
            c.post(g.url("/wire/idle-close"))
                .body("payload")
                .send()
                .await
                .unwrap()
        };
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(backend.seen.lock().unwrap().len(), 20);
}

/// An upstream connection left unused past the idle timeout is closed, as nginx's upstream
/// `keepalive_timeout` closes it: connections to an instance that stopped getting requests (it
/// deregistered, or its route went) do not stay open for the life of the gateway.
#[tokio::test]
async fn idle_upstream_connections_are_closed_after_the_idle_timeout() {
    let (old, new) = (WireBackend::start().await, WireBackend::start().await);
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: old\n    uri: http://{}\n    predicates: [Path=/wire/**]\n  \
         - id: new\n    uri: http://{}\n    predicates: [Path=/new/**]\n    filters: [StripPrefix=1]\n",
        old.addr, new.addr
    );
    let config = GatewayConfig {
        upstream_idle_timeout: std::time::Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, &routes).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(g.url("/wire/x")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "echo");
    }
    // Kept alive and reused while in use.
    assert_eq!(old.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(old.closed.load(Ordering::SeqCst), 0);
    // Traffic elsewhere only, past the idle timeout: the old backend's connection is closed.
    keel_test_support::eventually(
        std::time::Duration::from_secs(20),
        "the idle connection to the unused backend to close",
        || async {
            for _ in 0..64 {
                let r = c.get(g.url("/new/x")).send().await.ok()?;
                assert_eq!(r.text().await.ok()?, "echo");
            }
            (old.closed.load(Ordering::SeqCst) == 1).then_some(())
        },
    )
    .await;
    // The backend still in use kept its connection throughout.
    assert_eq!(new.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(new.closed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn relayed_response_heads_keep_every_header_but_those_the_gateway_owns() {
    let backend = WireBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: added
    uri: http://{addr}
    predicates: [Path=/added/**]
    filters: [StripPrefix=1, "AddResponseHeader=X-Multi, three"]
  - id: set
    uri: http://{addr}
    predicates: [Path=/set/**]
    filters: [StripPrefix=1, "SetResponseHeader=X-Last, replaced"]
  - id: wire
    uri: http://{addr}
    predicates: [Path=/wire/**]
"#,
        addr = backend.addr
    );
    let config = GatewayConfig {
        access_log: keel_gateway::AccessLogTarget::File(log.clone()),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, &routes).await;
    let c = client();
    let values = |r: &reqwest::Response, name: &str| -> Vec<String> {
        r.headers()
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    for _ in 0..2 {
        let r = c.get(g.url("/wire/relay")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(values(&r, "x-multi"), ["one", "two"]);
        assert_eq!(values(&r, "x-last"), ["end"]);
        assert_eq!(values(&r, "date"), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
        assert_eq!(values(&r, "content-length"), ["5"]);
        // The gateway's own request id, once; the upstream's is replaced as a map would replace it.
        let id = values(&r, "x-request-id");
        assert_eq!(id.len(), 1, "{:?}", r.headers());
        assert_ne!(id[0], "upstream-id");
        // Hop-by-hop headers, and cookies on a route that does not pass them, stay behind.
        for gone in ["connection", "keep-alive", "trailer", "set-cookie"] {
            assert!(!r.headers().contains_key(gone), "{gone}: {:?}", r.headers());
        }
        assert_eq!(r.text().await.unwrap(), "hello");
    }
    // An added header joins the upstream's; a replaced one replaces it.
    let r = c.get(g.url("/added/relay")).send().await.unwrap();
    assert_eq!(values(&r, "x-multi"), ["one", "two", "three"]);
    assert_eq!(r.text().await.unwrap(), "hello");
    let r = c.get(g.url("/set/relay")).send().await.unwrap();
    assert_eq!(values(&r, "x-last"), ["replaced"]);
    assert_eq!(values(&r, "x-multi"), ["one", "two"]);
    assert_eq!(values(&r, "date"), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
    assert!(!r.headers().contains_key("keep-alive"), "{:?}", r.headers());
    assert_eq!(r.text().await.unwrap(), "hello");
    // Lines in another form go through a map: trimmed values, CRLF line ends.
    let r = c.get(g.url("/wire/relay-odd")).send().await.unwrap();
    assert_eq!(values(&r, "x-pad"), ["padded"]);
    assert_eq!(values(&r, "x-bare"), ["lf"]);
    assert!(!r.headers().contains_key("connection"), "{:?}", r.headers());
    assert_eq!(r.text().await.unwrap(), "hello");
    assert_eq!(
        backend.accepted.load(Ordering::SeqCst),
        1,
        "one connection carried them all"
    );
    // A HEAD answer keeps the upstream's length and carries no body (this backend sends one anyway, so its connection is not reused).
    let r = c.head(g.url("/wire/relay")).send().await.unwrap();
    assert_eq!(values(&r, "content-length"), ["5"]);
    assert_eq!(values(&r, "x-multi"), ["one", "two"]);
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    // The access log counts a relayed body's bytes from its Content-Length, as for any other.
    let lines = access_log_until(&log, "six lines", |l| l.len() >= 6).await;
    for line in &lines {
        assert_eq!(line["bytes"], 5, "{line}");
    }
}

#[tokio::test]
async fn forwarded_headers_that_arrive_from_an_untrusted_client_are_replaced_once_each() {
    let backend = WireBackend::start().await;
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: stripped
    uri: http://{addr}
    predicates: [Path=/pre/**]
    filters: [StripPrefix=1]
  - id: wire
    uri: http://{addr}
    predicates: [Path=/wire/**]
"#,
        addr = backend.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let c = client();
    let names = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "forwarded",
    ];
    // Each request forges all six; the second and third reuse this thread's ready-made lines.
    for (i, path) in ["/wire/a", "/wire/b", "/pre/wire/c"]
        .into_iter()
        .enumerate()
    {
        let mut req = c.get(g.url(path));
        for n in names {
            req = req.header(n, format!("forged-{i}"));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "echo");
        let seen = backend.seen.lock().unwrap().last().cloned().unwrap();
        let lines: Vec<&str> = seen.lines().collect();
        let values = |name: &str| -> Vec<&str> {
            lines
                .iter()
                .filter_map(|l| l.split_once(':'))
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
                .collect()
        };
        assert!(!seen.contains("forged"), "{seen}");
        assert_eq!(values("x-forwarded-for"), ["127.0.0.1"], "{seen}");
        assert_eq!(values("x-forwarded-proto"), ["http"], "{seen}");
        assert_eq!(values("x-forwarded-host"), [g.addr.to_string()], "{seen}");
        assert_eq!(
            values("x-forwarded-port"),
            [g.addr.port().to_string()],
            "{seen}"
        );
        let prefix = if path.starts_with("/pre/") {
            vec!["/pre"]
        } else {
            vec![]
        };
        assert_eq!(values("x-forwarded-prefix"), prefix, "{seen}");
        assert_eq!(
            values("forwarded"),
            [format!("for=127.0.0.1;proto=http;host=\"{}\"", g.addr)],
            "{seen}"
        );
    }
}
