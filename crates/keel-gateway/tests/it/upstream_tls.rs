//! https upstreams: declared `https://` routes and registry instances with their secure port, the
//! backend's certificate verified against the configured CA, ALPN choosing HTTP/2 (and only
//! http/1.1 for upgrades), a client certificate for upstreams that require one, and an untrusted
//! certificate answered with a 502, never a plain-text retry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_gateway::CertPair;
use keel_gateway::{Gateway, GatewayConfig, GatewayError};
use keel_server::HealthRegistry;
use keel_test_support::eventually;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::{TestGateway, client, json, ws_echo, ws_round_trip};

/// A CA, and a TLS backend whose certificate it signed for `127.0.0.1`. The backend offers h2 and
/// http/1.1 and answers every request with the protocol version, path and SNI it saw.
struct TlsBackend {
    addr: SocketAddr,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A fresh CA: its certificate and what signs with it.
fn ca() -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert, rcgen::Issuer::new(params, key))
}

/// A certificate `issuer` signed for `names`, and its key.
fn signed(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: &[&str],
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    (cert, key)
}

/// A fresh CA in `dir/ca.pem`, and an acceptor with a certificate it signed for `127.0.0.1` whose
/// ALPN offers `alpn`; with `client_ca`, it requires a client certificate that CA issued.
fn acceptor(
    dir: &std::path::Path,
    alpn: &[&[u8]],
    client_ca: Option<CertificateDer<'static>>,
) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    let (ca, issuer) = ca();
    let (leaf, key) = signed(&issuer, &["127.0.0.1"]);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(c) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(c).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_file)
}

/// Accepts TLS connections and hands each to `serve` in a task of its own.
async fn tls_listener<F, Fut>(acceptor: tokio_rustls::TlsAcceptor, serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve(tls).await;
                }
            });
        }
    });
    addr
}

async fn tls_backend() -> TlsBackend {
    tls_backend_requiring(None).await
}

/// [`tls_backend`], requiring a client certificate `client_ca` issued when given.
async fn tls_backend_requiring(client_ca: Option<CertificateDer<'static>>) -> TlsBackend {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca_file) = acceptor(dir.path(), &[b"h2", b"http/1.1"], client_ca);
    let addr =
        tls_listener(acceptor, |tls| async move {
            let sni = tls.get_ref().1.server_name().unwrap_or("").to_owned();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let body = serde_json::json!({
                    "version": format!("{:?}", req.version()),
                    "path": req.uri().path(),
                    "sni": sni,
                });
                async move {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body.to_string()))))
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        })
        .await;
    TlsBackend {
        addr,
        ca_file,
        _dir: dir,
    }
}

/// A WebSocket echo server behind TLS that also offers h2 in ALPN (speaking HTTP/1.1 whatever is
/// chosen), so the upgrade works only if the gateway offers http/1.1 alone.
async fn wss_backend() -> TlsBackend {
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca_file) = acceptor(dir.path(), &[b"h2", b"http/1.1"], None);
    let addr = tls_listener(acceptor, ws_echo).await;
    TlsBackend {
        addr,
        ca_file,
        _dir: dir,
    }
}

/// A gateway serving `routes` that trusts `backend`'s CA.
async fn trusting(backend: &TlsBackend, routes: &str) -> TestGateway {
    TestGateway::start(
        GatewayConfig {
            upstream_trusted_ca: vec![backend.ca_file.clone()],
            ..GatewayConfig::default()
        },
        routes,
    )
    .await
}

/// `/secure/**` to the backend under `/base`; `/down/**` to a service with no instances, whose
/// breaker falls back to the backend's `/fallback`.
fn route_to(backend: &TlsBackend) -> String {
    let addr = backend.addr;
    format!(
        r#"spring.cloud.gateway.routes:
  - id: secure
    uri: https://{addr}/base
    predicates: [Path=/secure/**]
    filters: [StripPrefix=1]
  - id: down
    uri: lb://nobody
    predicates: [Path=/down/**]
    filters:
      - name: CircuitBreaker
        args: {{name: nobody, fallbackUri: "https://{addr}/fallback"}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_route_is_verified_against_the_trusted_ca_and_speaks_h2() {
    let backend = tls_backend().await;
    let g = trusting(&backend, &route_to(&backend)).await;
    let c = client();
    for _ in 0..3 {
        let r = c.get(g.url("/secure/orders/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = json(r).await;
        assert_eq!(body["path"], "/base/orders/1");
        assert_eq!(body["version"], "HTTP/2.0", "ALPN picks h2: {body}");
    }
    let r = c.get(g.url("/down/x")).send().await.unwrap();
    assert_eq!(r.status(), 200, "an https fallbackUri answers");
    assert_eq!(json(r).await["path"], "/fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_certificate_is_a_502_with_the_reason() {
    let backend = tls_backend().await;
    // Only the system's roots: the backend's private CA is unknown.
    let g = TestGateway::start(GatewayConfig::default(), &route_to(&backend)).await;
    let r = client().get(g.url("/secure/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = json(r).await;
    let text = body.to_string();
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_its_secure_port_enabled_is_called_over_https() {
    let reg = crate::registry::registry().await;
    let backend = tls_backend().await;
    let g = trusting(&backend, "").await;
    g.gw.follow_registry(&format!("http://{reg}/eureka"))
        .unwrap();
    let c = client();
    // The plain port is enabled too and points nowhere: the secure port wins, as in Spring Cloud.
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut body = crate::registry::instance("orders-tls", unused.local_addr().unwrap().port());
    drop(unused);
    body["instance"]["securePort"] =
        serde_json::json!({"$": backend.addr.port(), "@enabled": "true"});
    crate::registry::post_instance(&c, reg, "ORDERS", &body).await;
    let seen = eventually(
        Duration::from_secs(10),
        "gateway routes /orders/** over https",
        || async {
            let r = c.get(g.url("/orders/list")).send().await.ok()?;
            (r.status() == 200).then_some(())?;
            Some(json(r).await)
        },
    )
    .await;
    assert_eq!(seen["path"], "/list");
    assert_eq!(seen["version"], "HTTP/2.0");
}

#[tokio::test]
async fn a_trusted_ca_file_that_holds_no_certificate_stops_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for file in [junk.clone(), dir.path().join("missing.pem")] {
        let err = Gateway::new(
            GatewayConfig {
                upstream_trusted_ca: vec![file.clone()],
                ..GatewayConfig::default()
            },
            &HealthRegistry::new(),
        )
        .unwrap_err();
        assert!(matches!(err, GatewayError::UpstreamTls(_)), "{err}");
        assert!(
            err.to_string().contains(&*file.to_string_lossy()),
            "names the file: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_is_carried_to_an_https_backend() {
    let backend = wss_backend().await;
    let g = trusting(&backend, &route_to(&backend)).await;
    ws_round_trip(&format!("ws://{}/secure/echo", g.addr)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_client_certificate_is_presented_to_an_upstream_that_requires_one() {
    let (client_ca, client_issuer) = ca();
    let backend = tls_backend_requiring(Some(client_ca.der().clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = signed(&client_issuer, &["keel-gateway"]);
    let pair = CertPair {
        cert: dir.path().join("client.pem"),
        key: dir.path().join("client.key"),
    };
    std::fs::write(&pair.cert, cert.pem()).unwrap();
    std::fs::write(&pair.key, key.serialize_pem()).unwrap();
    let c = client();
    for (client_cert, want) in [(Some(pair), 200), (None, 502)] {
        let g = TestGateway::start(
            GatewayConfig {
                upstream_trusted_ca: vec![backend.ca_file.clone()],
                upstream_client_cert: client_cert,
                ..GatewayConfig::default()
            },
            &route_to(&backend),
        )
        .await;
        let r = c.get(g.url("/secure/x")).send().await.unwrap();
        assert_eq!(r.status(), want);
    }
    // A key that is not the certificate's stops the gateway at start.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
    let err = Gateway::new(
        GatewayConfig {
            upstream_client_cert: Some(CertPair {
                cert: dir.path().join("client.pem"),
                key: dir.path().join("other.key"),
            }),
            ..GatewayConfig::default()
        },
        &HealthRegistry::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("client certificate"), "{err}");
}
