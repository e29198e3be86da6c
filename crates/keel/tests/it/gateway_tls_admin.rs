//! `keel gateway` configured through its settings (`KEEL_GATEWAY_ADMIN_BIND`,
//! `KEEL_GATEWAY_TLS_CERT`/`KEY`): the proxy's port speaks TLS only and proxies with
//! `X-Forwarded-Proto: https`, and the admin API is on the admin listener, not on the proxy's port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_test_support::{KeelProcess, get};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{TempDir, keel};

/// A backend that answers `hello` to everything and keeps each request head it read.
async fn backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                heads
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).to_ascii_lowercase());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    (addr, seen)
}

/// A URL nothing listens at, for the registry: these tests need none.
fn unused_url() -> String {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", dead.local_addr().unwrap())
}

/// `GET path` over TLS, trusting only `root` and naming `localhost`; the raw response.
async fn get_tls(addr: SocketAddr, root: &CertificateDer<'static>, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with the gateway");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    // A peer closing without close_notify still leaves the whole response read.
    let _ = tls.read_to_end(&mut raw).await;
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn keel_gateway_serves_tls_on_its_port_and_admin_on_the_admin_bind() {
    let dir = TempDir::new("gw-tls-admin");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("gw.pem"), dir.path().join("gw.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (backend, seen) = backend().await;
    let routes = dir.path().join("routes.yml");
    std::fs::write(
        &routes,
        format!(
            "spring.cloud.gateway.routes:\n  - id: echo\n    uri: http://{backend}\n    predicates: [Path=/echo/**]\n"
        ),
    )
    .unwrap();
    let registry_url = unused_url();
    let gateway = KeelProcess::start(
        keel(),
        &["gateway", "--bind", "127.0.0.1:0"],
        &[
            ("KEEL_GATEWAY_ADMIN_BIND", "127.0.0.1:0"),
            ("KEEL_GATEWAY_TLS_CERT", &cert_path.display().to_string()),
            ("KEEL_GATEWAY_TLS_KEY", &key_path.display().to_string()),
            ("KEEL_GATEWAY_ROUTES", &routes.display().to_string()),
            ("KEEL_GATEWAY_CONFIG_ROUTES", "false"),
            ("KEEL_GATEWAY_WORKERS", "1"),
            ("KEEL_REGISTRY_URL", &registry_url),
        ],
        &["gateway", "gateway-admin"],
    );
    let (proxy, admin) = (gateway.addr("gateway"), gateway.addr("gateway-admin"));
    assert_ne!(proxy, admin);

    // The proxy's port: TLS, proxying with the scheme the client used.
    let resp = get_tls(proxy, cert.der(), "/echo/x").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("hello"), "{resp}");
    let head = seen.lock().unwrap().first().cloned().unwrap_or_default();
    assert!(head.starts_with("get /echo/x "), "{head}");
    assert!(head.contains("x-forwarded-proto: https"), "{head}");
    // The admin API is not there: its paths are ordinary (unrouted) proxy paths.
    let resp = get_tls(proxy, cert.der(), "/keel/v1/gateway/routes").await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert!(resp.contains("\"reason\":\"no_route\""), "{resp}");
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        get(proxy, "/echo/x").await.is_err(),
        "the TLS port answered plain HTTP"
    );

    // The admin listener: plain HTTP, the admin API with the file's route.
    let r = get(admin, "/keel/v1/gateway/routes").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["routes"][0]["id"], "echo", "{body}");
    assert_eq!(body["routes"][0]["source"], "file", "{body}");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the admin call reached the backend"
    );
}

/// The watched route file: bytes that are not UTF-8 are reported once in the log, the routes
/// loaded before keep serving, and the next valid file is loaded.
#[tokio::test]
async fn a_route_file_that_is_not_utf8_is_reported_and_the_old_routes_keep_serving() {
    let dir = TempDir::new("gw-routes-utf8");
    let (backend, _) = backend().await;
    let routes = dir.path().join("routes.yml");
    let table = |path: &str| {
        format!(
            "spring.cloud.gateway.routes:\n  - id: echo\n    uri: http://{backend}\n    predicates: [Path={path}]\n"
        )
    };
    std::fs::write(&routes, table("/old/**")).unwrap();
    let registry_url = unused_url();
    let gateway = KeelProcess::start(
        keel(),
        &["gateway", "--bind", "127.0.0.1:0"],
        &[
            ("KEEL_GATEWAY_ROUTES", &routes.display().to_string()),
            ("KEEL_GATEWAY_CONFIG_ROUTES", "false"),
            ("KEEL_REGISTRY_URL", &registry_url),
        ],
        &["gateway"],
    );
    let proxy = gateway.addr("gateway");
    assert_eq!(get(proxy, "/old/x").await.unwrap().status, 200);

    // Latin-1 where UTF-8 belongs, as an editor with the wrong encoding saves it.
    let mut bytes = table("/new/**").into_bytes();
    bytes.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&routes, bytes).unwrap();
    keel_test_support::eventually(Duration::from_secs(20), "the rejection is logged", || {
        let out = gateway.output();
        async move { out.contains("not UTF-8").then_some(()) }
    })
    .await;
    assert_eq!(get(proxy, "/old/x").await.unwrap().status, 200);
    assert_eq!(get(proxy, "/new/x").await.unwrap().status, 404);

    std::fs::write(&routes, table("/new/**")).unwrap();
    keel_test_support::eventually(Duration::from_secs(20), "the fixed file loads", || async {
        (get(proxy, "/new/x").await.ok()?.status == 200).then_some(())
    })
    .await;
    assert_eq!(
        gateway.output().matches("not UTF-8").count(),
        1,
        "the rejection was reported more than once:\n{}",
        gateway.output()
    );
}
