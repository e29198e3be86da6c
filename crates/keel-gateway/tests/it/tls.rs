//! TLS termination over real sockets: SNI picks the certificate (exact and wildcard names, the first
//! pair without SNI), ALPN picks HTTP/2 or HTTP/1.1, and rewritten certificate files are served to
//! new handshakes without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_gateway::{CertPair, GatewayConfig, TlsTerminator};
use keel_test_support::eventually;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::support::{Backend, Serving, TestGateway};

struct Cert {
    pem: String,
    key: String,
    der: CertificateDer<'static>,
}

fn cert(names: &[&str]) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        pem: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn write(dir: &Path, name: &str, c: &Cert) -> CertPair {
    let pair = CertPair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    // Key first: the watcher refuses a certificate whose key does not match yet.
    std::fs::write(&pair.key, &c.key).unwrap();
    std::fs::write(&pair.cert, &c.pem).unwrap();
    pair
}

fn connector(trusted: &[&Cert], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.der.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

async fn handshake(
    tls: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tls.connect(name, tcp).await
}

fn served(s: &TlsStream<tokio::net::TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

fn dns(n: &str) -> ServerName<'static> {
    ServerName::try_from(n.to_owned()).unwrap()
}

#[tokio::test]
async fn sni_alpn_and_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let a = cert(&["a.test"]);
    let b = cert(&["*.b.test"]);
    let a2 = cert(&["a.test"]);
    let pairs = vec![write(dir.path(), "a", &a), write(dir.path(), "b", &b)];
    let terminator = TlsTerminator::load(pairs).unwrap();
    terminator.spawn_watch(Duration::from_millis(50));
    let backend = Backend::start("b").await;
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: r\n    uri: http://{}\n    predicates: [Path=/**]\n",
        backend.addr
    );
    let g = TestGateway::start_with(
        GatewayConfig {
            tls: true,
            ..GatewayConfig::default()
        },
        &routes,
        Serving {
            tls: Some(terminator.acceptor()),
            ..Serving::default()
        },
    )
    .await;
    let h2 = connector(&[&a, &b, &a2], &[b"h2", b"http/1.1"]);

    // SNI chooses the certificate; HTTP/2 is negotiated by ALPN and requests flow through.
    let s = handshake(&h2, g.addr, dns("a.test")).await.unwrap();
    assert_eq!(served(&s), a.der);
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("https://a.test/hello")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), Version::HTTP_2);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");

    let s = handshake(&h2, g.addr, dns("x.b.test")).await.unwrap();
    assert_eq!(served(&s), b.der, "wildcard name");
    // Without SNI (an IP address) the first pair answers: trusted only a's chain, the client fails
    // on the name, not on the issuer, which it would with b's certificate.
    let only_a = connector(&[&a], &[b"http/1.1"]);
    let ip = ServerName::IpAddress(g.addr.ip().into());
    let err = handshake(&only_a, g.addr, ip).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");

    // HTTP/1.1 when the client offers only that.
    let s = handshake(&connector(&[&a], &[b"http/1.1"]), g.addr, dns("a.test"))
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("/hello")
                .header("host", "a.test")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Rotating a.test's files is picked up by new handshakes; b is untouched.
    write(dir.path(), "a", &a2);
    eventually(Duration::from_secs(10), "the rotated certificate", || {
        let h2 = h2.clone();
        let want = a2.der.clone();
        async move {
            let s = handshake(&h2, g.addr, dns("a.test")).await.ok()?;
            (served(&s) == want).then_some(())
        }
    })
    .await;
    let s = handshake(&h2, g.addr, dns("x.b.test")).await.unwrap();
    assert_eq!(served(&s), b.der);
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let a = cert(&["a.test"]);
    let pair = write(dir.path(), "a", &a);
    let terminator = TlsTerminator::load(vec![pair.clone()]).unwrap();
    std::fs::write(&pair.cert, "not a certificate").unwrap();
    assert!(terminator.reload().is_err());
    // A key that does not belong to the certificate is refused too.
    let other = cert(&["a.test"]);
    std::fs::write(&pair.cert, &a.pem).unwrap();
    std::fs::write(&pair.key, &other.key).unwrap();
    let err = terminator.reload().unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = terminator.acceptor();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = acceptor.accept(tcp).await;
    });
    let s = handshake(&connector(&[&a], &[]), addr, dns("a.test"))
        .await
        .unwrap();
    assert_eq!(served(&s), a.der);
}
