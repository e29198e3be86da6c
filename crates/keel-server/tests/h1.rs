//! Keel's own HTTP/1.1 connection code (`own_http1`), over real sockets: keep-alive, pipelining,
//! bodies that arrive in pieces, streamed responses, and the hand-off of everything unusual to hyper.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt as _;
use keel_server::{
    Common, Handler, HealthRegistry, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown,
    ShutdownConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

/// Answers `/echo` with the request's body, method and length, `/stream` with a body whose second
/// part waits for the test's signal, `/chunks` with a body of unknown length, `/close` with
/// `Connection: close`, `/thread` with the name of the thread that served it.
#[derive(Clone, Default)]
struct TestHandler {
    gate: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

/// A body fed through a channel: no length known in advance.
struct Channel(mpsc::Receiver<Bytes>);

impl http_body::Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

impl Handler for TestHandler {
    fn handle(
        &self,
        _peer: std::net::SocketAddr,
        request: hyper::Request<Body>,
    ) -> impl Future<Output = Response> + Send + use<> {
        let gate = self.gate.lock().unwrap().take();
        async move {
            let path = request.uri().path().to_owned();
            let method = request.method().clone();
            match path.as_str() {
                "/echo" => match request.into_body().collect().await {
                    Ok(b) => {
                        let b = b.to_bytes();
                        Response::builder()
                            .header("x-method", method.as_str())
                            .header("x-len", b.len())
                            .body(Body::from(b))
                            .unwrap()
                    }
                    Err(_) => Response::builder().status(400).body(Body::empty()).unwrap(),
                },
                "/stream" | "/chunks" => {
                    let (tx, rx) = mpsc::channel(4);
                    tokio::spawn(async move {
                        let _ = tx.send(Bytes::from_static(b"first\n")).await;
                        if let Some(gate) = gate {
                            let _ = gate.await;
                        }
                        let _ = tx.send(Bytes::from_static(b"second\n")).await;
                    });
                    Response::new(Body::new(Channel(rx)))
                }
                "/thread" => Response::new(Body::from(
                    std::thread::current().name().unwrap_or("").to_owned(),
                )),
                "/close" => Response::builder()
                    .header("connection", "close")
                    .body(Body::from("bye"))
                    .unwrap(),
                _ => Response::builder().status(404).body(Body::empty()).unwrap(),
            }
        }
    }

    fn own_http1(&self) -> bool {
        true
    }
}

struct Server {
    addr: std::net::SocketAddr,
    handler: TestHandler,
    common: Common,
    task: tokio::task::JoinHandle<()>,
}

fn common(header_read_timeout: Duration) -> Common {
    let mut registry = prometheus_client::registry::Registry::with_prefix("keel");
    let http_metrics = HttpMetrics::new(&mut registry);
    Common {
        shutdown: Shutdown::new(ShutdownConfig::default()),
        health: HealthRegistry::new(),
        metrics: MetricsRegistry::new(registry),
        http_metrics,
        limits: HttpLimits {
            max_body_bytes: usize::MAX,
            max_header_bytes: 8 * 1024,
            header_read_timeout,
        },
    }
}

async fn start(header_read_timeout: Duration) -> Server {
    let common = common(header_read_timeout);
    let listener = keel_server::bind("test", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr;
    let handler = TestHandler::default();
    let (h, c) = (handler.clone(), common.clone());
    let task = tokio::spawn(async move { keel_server::serve_handler(listener, h, &c, None).await });
    Server {
        addr,
        handler,
        common,
        task,
    }
}

/// One response read off a kept-alive connection (Content-Length or chunked), leaving what follows.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn read_answer(s: &mut TcpStream, buf: &mut BytesMut) -> Answer {
    let deadline = Duration::from_secs(20);
    tokio::time::timeout(deadline, async {
        let (status, head, len, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = r.parse(buf).unwrap() {
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let value = |name: &str| {
                    r.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let len = value("content-length").map(|v| v.parse::<usize>().unwrap());
                let chunked = value("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let status = r.code.unwrap();
                buf.advance(n);
                break (status, head, len, chunked);
            }
            assert_ne!(s.read_buf(buf).await.unwrap(), 0, "closed mid-head");
        };
        let mut body = Vec::new();
        if chunked {
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert_ne!(s.read_buf(buf).await.unwrap(), 0, "closed mid-chunk");
                };
                let size =
                    usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16)
                        .unwrap();
                while buf.len() < line_end + 2 + size + 2 {
                    assert_ne!(s.read_buf(buf).await.unwrap(), 0, "closed mid-chunk");
                }
                body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                buf.advance(line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(len) = len {
            while buf.len() < len {
                assert_ne!(s.read_buf(buf).await.unwrap(), 0, "closed mid-body");
            }
            body.extend_from_slice(&buf[..len]);
            buf.advance(len);
        }
        Answer { status, head, body }
    })
    .await
    .expect("no response in time")
}

/// Reads until the server closes the connection; the bytes it sent before closing.
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .expect("the server kept the connection open")
        .unwrap();
    rest
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let server = start(Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    // Three requests in one write, one with a body.
    s.write_all(
        b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /missing HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await
    .unwrap();
    let a = read_answer(&mut s, &mut buf).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b""[..]), "{a:?}");
    assert!(a.head.contains("x-method: GET"), "{a:?}");
    assert!(a.head.to_ascii_lowercase().contains("date: "), "{a:?}");
    let b = read_answer(&mut s, &mut buf).await;
    assert_eq!((b.status, b.body.as_slice()), (200, &b"hello"[..]), "{b:?}");
    assert!(b.head.contains("x-method: POST"), "{b:?}");
    let c = read_answer(&mut s, &mut buf).await;
    assert_eq!(c.status, 404, "{c:?}");
    // The same connection still serves.
    s.write_all(b"HEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let d = read_answer(&mut s, &mut buf).await;
    assert_eq!(d.status, 200, "{d:?}");
    assert!(d.head.contains("content-length: 0"), "{d:?}");
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let e = read_answer(&mut s, &mut buf).await;
    assert!(e.head.contains("connection: close"), "{e:?}");
    assert!(until_closed(&mut s).await.is_empty());
    server.task.abort();
}

#[tokio::test]
async fn a_body_arriving_in_pieces_reaches_the_handler_whole_and_the_connection_goes_on() {
    let server = start(Duration::from_secs(10)).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for piece in body.chunks(7_000) {
        s.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    // The next request follows the body straight away.
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf).await;
    assert_eq!(a.status, 200);
    assert!(a.body == body, "the echoed body differs");
    let next = read_answer(&mut s, &mut buf).await;
    assert_eq!((next.status, next.body.len()), (200, 0), "{next:?}");
    server.task.abort();
}

#[tokio::test]
async fn streamed_responses_go_out_as_they_are_produced() {
    let server = start(Duration::from_secs(10)).await;
    let (release, gate) = oneshot::channel();
    *server.handler.gate.lock().unwrap() = Some(gate);
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The head and the first part arrive while the second part is still held back.
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !String::from_utf8_lossy(&seen).contains("first\n") {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert_ne!(n, 0);
            seen.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the first part was held back");
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(!text.contains("second"), "{text}");
    release.send(()).unwrap();
    let mut buf = BytesMut::new();
    // The rest of the chunked body, then the connection serves again.
    let rest = tokio::time::timeout(Duration::from_secs(20), async {
        while !buf.ends_with(b"0\r\n\r\n") {
            assert_ne!(s.read_buf(&mut buf).await.unwrap(), 0);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await
    .unwrap();
    assert!(rest.contains("second\n"), "{rest}");
    buf.clear();
    s.write_all(b"GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let a = read_answer(&mut s, &mut buf).await;
    assert_eq!(a.body, b"first\nsecond\n");
    server.task.abort();
}

#[tokio::test]
async fn unusual_requests_are_served_by_hyper_on_the_same_connection() {
    let server = start(Duration::from_secs(10)).await;
    // A chunked request body: hyper decodes it.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let a = read_answer(&mut s, &mut buf).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"abcde"[..]), "{a:?}");
    // …and the connection carries on under hyper.
    s.write_all(b"GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let b = read_answer(&mut s, &mut buf).await;
    assert_eq!(b.body, b"first\nsecond\n");

    // HTTP/1.0 and Expect: 100-continue.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.0\r\n\r\n").await.unwrap();
    let out = String::from_utf8_lossy(&until_closed(&mut s).await).into_owned();
    assert!(
        out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
        "{out}"
    );
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    let cont = read_answer(&mut s, &mut buf).await;
    assert_eq!(cont.status, 100, "{cont:?}");
    s.write_all(b"ok").await.unwrap();
    let a = read_answer(&mut s, &mut buf).await;
    assert_eq!((a.status, a.body.as_slice()), (200, &b"ok"[..]), "{a:?}");

    // HTTP/2 with prior knowledge: hyper answers the preface with its SETTINGS frame.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut frame))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame[3], 0x4, "not a SETTINGS frame: {frame:?}");

    // Too long a head gets hyper's 431; garbage its 400; both close.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let big = format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    s.write_all(big.as_bytes()).await.unwrap();
    let out = String::from_utf8_lossy(&until_closed(&mut s).await).into_owned();
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let out = String::from_utf8_lossy(&until_closed(&mut s).await).into_owned();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    server.task.abort();
}

#[tokio::test]
async fn slow_heads_are_cut_off_and_shutdown_closes_idle_connections() {
    let server = start(Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    assert!(until_closed(&mut slow).await.is_empty());

    // A response asking to close closes the connection.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&until_closed(&mut s).await).into_owned();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("bye"),
        "{out}"
    );

    // An idle kept-alive connection is closed when shutdown begins, and serving ends.
    let server = start(Duration::from_secs(60)).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = BytesMut::new();
    idle.write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut idle, &mut buf).await.status, 200);
    server.common.shutdown.begin().await;
    assert!(until_closed(&mut idle).await.is_empty());
    tokio::time::timeout(Duration::from_secs(20), server.task)
        .await
        .expect("serving did not end after the drain")
        .unwrap();
}

#[tokio::test]
async fn a_burst_of_connections_is_spread_over_the_workers() {
    let common = common(Duration::from_secs(20));
    let listener = keel_server::bind("test", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr;
    let c = common.clone();
    let task = tokio::spawn(async move {
        keel_server::serve_workers(listener, TestHandler::default(), &c, None, 2).await
    });
    // Opened at once, before any is used: queued on the shared socket for whichever worker wakes.
    let mut conns = Vec::new();
    for _ in 0..20 {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    for s in &mut conns {
        s.write_all(b"GET /thread HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(s, &mut BytesMut::new()).await;
        assert_eq!(answer.status, 200);
        *served
            .entry(String::from_utf8(answer.body).unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        served.len(),
        2,
        "both workers serve connections: {served:?}"
    );
    assert!(
        served.values().all(|&n| n >= 8),
        "connections spread evenly: {served:?}"
    );
    drop(conns);
    common.shutdown.begin().await;
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("workers stop")
        .unwrap();
}
