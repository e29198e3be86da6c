//! Protocols through the gateway: HTTP/2 from the client, h2c to a backend with gRPC-style unary and
//! bidirectional streams ending in trailers, WebSocket upgrades, and SSE streamed without buffering.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_gateway::GatewayConfig;
use tokio::sync::Notify;

use crate::support::{Backend, TestGateway, client, json, ws_echo, ws_round_trip};

type Frames = Channel<Bytes, Infallible>;

fn grpc_ok() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    t.insert("grpc-message", HeaderValue::from_static("fine"));
    t
}

/// A gRPC-shaped backend speaking h2c only: `Unary` answers the whole request body then trailers;
/// `Bidi` echoes each request frame as it arrives, then trailers when the request ends.
pub(crate) async fn h2c_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let path = req.uri().path().to_owned();
                    let te = req.headers().get("te").cloned();
                    let xff: Vec<HeaderValue> = req
                        .headers()
                        .get_all("x-forwarded-for")
                        .iter()
                        .cloned()
                        .collect();
                    let (mut tx, body) = Frames::new(4);
                    let mut incoming = req.into_body();
                    tokio::spawn(async move {
                        let mut whole = Vec::new();
                        while let Some(Ok(frame)) = incoming.frame().await {
                            if let Ok(data) = frame.into_data() {
                                if path.ends_with("/Bidi") {
                                    if tx.send_data(data).await.is_err() {
                                        return;
                                    }
                                } else {
                                    whole.extend_from_slice(&data);
                                }
                            }
                        }
                        if !whole.is_empty() {
                            let _ = tx.send_data(Bytes::from(whole)).await;
                        }
                        let _ = tx.send_trailers(grpc_ok()).await;
                    });
                    let mut resp = Response::new(body);
                    resp.headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/grpc"));
                    resp.headers_mut().insert(
                        "x-backend-version",
                        HeaderValue::from_str(&version).unwrap(),
                    );
                    if let Some(te) = te {
                        resp.headers_mut().insert("x-backend-te", te);
                    }
                    for v in xff {
                        resp.headers_mut().append("x-backend-xff", v);
                    }
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/2 (prior knowledge) connection to the gateway.
async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Frames> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

fn grpc_request(addr: SocketAddr, method: &str, body: Frames) -> Request<Frames> {
    Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/grpc/echo.Echo/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap()
}

async fn next_data(body: &mut Incoming) -> Bytes {
    loop {
        let frame = body.frame().await.expect("stream ended").unwrap();
        if let Ok(d) = frame.into_data() {
            return d;
        }
    }
}

async fn trailers(body: &mut Incoming) -> HeaderMap {
    while let Some(frame) = body.frame().await {
        if let Ok(t) = frame.unwrap().into_trailers() {
            return t;
        }
    }
    panic!("no trailers");
}

async fn gateway_to(uri: &str, metadata: &str) -> TestGateway {
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: r
    uri: {uri}
    predicates: ["Path=/grpc/**, /ws/**, /sse/**, /plain/**"]
    filters: [StripPrefix=1]
    metadata: {{{metadata}}}
"#
    );
    TestGateway::start(GatewayConfig::default(), &routes).await
}

#[tokio::test]
async fn http2_from_the_client_to_an_http1_backend() {
    let backend = Backend::start("b").await;
    let g = gateway_to(&format!("http://{}", backend.addr), "").await;
    // client() installs the TLS provider reqwest insists on even for plain HTTP.
    let _ = client();
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c.get(g.url("/plain/hello")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), 200);
    // hyper writes this answer from its map (Keel's own HTTP/1.1 writer relays heads as lines).
    assert_eq!(r.headers()["x-backend-header"], "present");
    assert_eq!(r.headers()["content-type"], "application/json");
    let body = json(r).await;
    assert_eq!(body["path"], "/hello");
}

#[tokio::test]
async fn grpc_unary_and_bidi_streams_keep_their_trailers_over_h2c() {
    let backend = h2c_backend().await;
    let g = gateway_to(&format!("http://{backend}"), "protocol: h2c").await;
    let mut h2 = h2_client(g.addr).await;

    // Unary: a whole message in, a whole message and trailers out.
    let (mut tx, body) = Frames::new(1);
    let pending = h2.send_request(grpc_request(g.addr, "Unary", body));
    tx.send_data(Bytes::from_static(b"\0\0\0\0\x05hello"))
        .await
        .unwrap();
    drop(tx);
    let resp = pending.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-backend-version"],
        "HTTP/2.0",
        "not h2c upstream"
    );
    assert_eq!(resp.headers()["x-backend-te"], "trailers");
    // hyper's client sends from a map: the forwarded headers are in it, once.
    let xff: Vec<_> = resp.headers().get_all("x-backend-xff").iter().collect();
    assert_eq!(xff, ["127.0.0.1"]);
    let mut body = resp.into_body();
    assert_eq!(next_data(&mut body).await, &b"\0\0\0\0\x05hello"[..]);
    let t = trailers(&mut body).await;
    assert_eq!(t["grpc-status"], "0");
    assert_eq!(t["grpc-message"], "fine");

    // Bidi: each message comes back before the next is sent, so neither direction is buffered.
    let (mut tx, body) = Frames::new(1);
    let pending = h2.send_request(grpc_request(g.addr, "Bidi", body));
    tx.send_data(Bytes::from_static(b"one")).await.unwrap();
    let resp = pending.await.unwrap();
    let mut body = resp.into_body();
    assert_eq!(next_data(&mut body).await, "one");
    tx.send_data(Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(next_data(&mut body).await, "two");
    drop(tx);
    assert_eq!(trailers(&mut body).await["grpc-status"], "0");
}

#[tokio::test]
async fn websocket_upgrades_are_proxied() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(ws_echo(stream));
        }
    });
    let g = gateway_to(&format!("http://{backend}"), "").await;
    ws_round_trip(&format!("ws://{}/ws/echo", g.addr)).await;
}

#[tokio::test]
async fn sse_events_arrive_before_the_stream_ends() {
    let release = Arc::new(Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let r = release.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let r = r.clone();
                    async move {
                        let (mut tx, body) = Frames::new(4);
                        tokio::spawn(async move {
                            let _ = tx.send_data(Bytes::from_static(b"data: one\n\n")).await;
                            // The second event waits for the test, which first reads the first.
                            r.notified().await;
                            let _ = tx.send_data(Bytes::from_static(b"data: two\n\n")).await;
                        });
                        let mut resp = Response::new(body);
                        resp.headers_mut().insert(
                            "content-type",
                            HeaderValue::from_static("text/event-stream"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let g = gateway_to(&format!("http://{backend}"), "").await;
    let mut resp = client().get(g.url("/sse/events")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = resp.chunk().await.unwrap().unwrap();
    assert_eq!(first, "data: one\n\n");
    release.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = resp.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: two\n\n");
}

/// An h2c connection left unused past `upstream_idle_timeout` is closed, as the worker's own
/// HTTP/1.1 connections are (hyper's pool used to keep it for its own 30 s).
#[tokio::test]
async fn idle_h2c_upstream_connections_are_closed_after_the_idle_timeout() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let (accepted, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, c) = (accepted.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://{backend}\n    \
         predicates: [Path=/h2c/**]\n    filters: [StripPrefix=1]\n    metadata: {{protocol: h2c}}\n"
    );
    let config = GatewayConfig {
        upstream_idle_timeout: std::time::Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, &routes).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(g.url("/h2c/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(closed.load(Ordering::SeqCst), 0, "kept while in use");
    keel_test_support::eventually(
        std::time::Duration::from_secs(15),
        "the idle h2c connection to close",
        || async {
            (closed.load(Ordering::SeqCst) == accepted.load(Ordering::SeqCst)).then_some(())
        },
    )
    .await;
}
