//! Upstream HTTP clients: one pooled hyper client per worker thread and kind, so keep-alive pools
//! take no shared lock. Plain HTTP/1.1 mostly goes through [`pool`](crate::pool) instead; these
//! carry h2c, upgrades and https.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;

use crate::tls::{CertPair, load_pair};

pub type Upstream = Client<HttpConnector, Body>;
pub type SecureUpstream = Client<HttpsConnector<HttpConnector>, Body>;

thread_local! {
    static CLIENT: RefCell<Option<(Timeouts, Upstream)>> = const { RefCell::new(None) };
    static H2C: RefCell<Option<(Timeouts, Upstream)>> = const { RefCell::new(None) };
    /// Keyed also by the trust configuration's id, and by whether only HTTP/1.1 may be offered.
    static HTTPS: RefCell<Vec<(Timeouts, u64, bool, SecureUpstream)>> = const { RefCell::new(Vec::new()) };
}

/// The connect timeout and how long an unused connection is kept (`gateway.upstream-idle-timeout`,
/// the same as for the worker's own HTTP/1.1 connections).
pub type Timeouts = (Duration, Duration);

fn connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector
}

fn builder(idle_timeout: Duration) -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(256);
    builder
}

fn build((connect_timeout, idle_timeout): Timeouts, h2c: bool) -> Upstream {
    let connector = connector(connect_timeout);
    let mut builder = builder(idle_timeout);
    if h2c {
        // Prior knowledge: plain TCP spoken as HTTP/2 from the first byte (gRPC backends expect this).
        builder
            .http2_only(true)
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30));
    }
    builder.build(connector)
}

/// This thread's client (pools are per thread; a clone shares the thread's pool); `h2c` picks the
/// HTTP/2-prior-knowledge client, whose pool multiplexes streams over one connection per backend.
pub fn upstream(timeouts: Timeouts, h2c: bool) -> Upstream {
    let cell = if h2c { &H2C } else { &CLIENT };
    cell.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((t, client)) if *t == timeouts => client.clone(),
            _ => {
                let client = build(timeouts, h2c);
                *c = Some((timeouts, client.clone()));
                client
            }
        }
    })
}

/// This thread's https client for `tls`. ALPN offers h2 and http/1.1, and the backend picks (so
/// gRPC over TLS stays HTTP/2); `http1_only` offers only http/1.1, for upgrades, which HTTP/2
/// cannot carry.
pub fn secure_upstream(timeouts: Timeouts, tls: &UpstreamTls, http1_only: bool) -> SecureUpstream {
    let key = tls.id;
    HTTPS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((.., client)) = c
            .iter()
            .find(|(t, k, h1, _)| *t == timeouts && *k == key && *h1 == http1_only)
        {
            return client.clone();
        }
        let mut http = connector(timeouts.0);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.config().clone())
            .https_or_http();
        let https = if http1_only {
            https.enable_http1().wrap_connector(http)
        } else {
            https.enable_all_versions().wrap_connector(http)
        };
        let mut builder = builder(timeouts.1);
        builder.timer(TokioTimer::new());
        let client = builder.build(https);
        // A handful of kinds at most; a long-lived thread seeing many configurations (tests) keeps the last few.
        if c.len() >= 8 {
            c.remove(0);
        }
        c.push((timeouts, key, http1_only, client.clone()));
        client
    })
}

/// Whom https upstreams are trusted to be: the system's root certificates plus the configured CA
/// files (`gateway.upstream-trusted-ca`, as Spring Cloud Gateway's
/// `httpclient.ssl.trustedX509Certificates`). The files are read when the gateway starts, so a bad
/// one stops it; the system's roots are read on the first https request.
#[derive(Debug)]
pub struct UpstreamTls {
    /// Tells this configuration's clients from another gateway's in the same process.
    id: u64,
    extra: Vec<CertificateDer<'static>>,
    /// Presented to upstreams that ask for a client certificate.
    client_cert: Option<Arc<CertifiedKey>>,
    config: OnceLock<rustls::ClientConfig>,
}

impl UpstreamTls {
    pub fn load(files: &[PathBuf], client_cert: Option<&CertPair>) -> Result<Self, String> {
        let mut extra = Vec::new();
        for f in files {
            let shown = f.display();
            let certs = CertificateDer::pem_file_iter(f)
                .map_err(|e| format!("{shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{shown}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{shown}: no certificate in the file"));
            }
            // Refuse what the root store would refuse, now rather than at the first request.
            let mut probe = rustls::RootCertStore::empty();
            for c in &certs {
                probe
                    .add(c.clone())
                    .map_err(|e| format!("{shown}: not a usable CA certificate: {e}"))?;
            }
            extra.extend(certs);
        }
        let client_cert = client_cert
            .map(|pair| load_pair(pair).map(|(key, _)| key))
            .transpose()
            .map_err(|e| format!("client certificate: {e}"))?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        Ok(UpstreamTls {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            extra,
            client_cert,
            config: OnceLock::new(),
        })
    }

    fn config(&self) -> &rustls::ClientConfig {
        self.config.get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "cannot read a system root certificate");
            }
            let (_, unusable) = roots.add_parsable_certificates(native.certs);
            if unusable > 0 {
                tracing::debug!(unusable, "system root certificates skipped");
            }
            for c in &self.extra {
                // Checked in `load`.
                let _ = roots.add(c.clone());
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
            match &self.client_cert {
                Some(key) => config.with_client_cert_resolver(Arc::new(ClientCert(key.clone()))),
                None => config.with_no_client_auth(),
            }
        })
    }
}

/// Always the one configured client certificate, whatever the upstream asks for (the handshake
/// fails upstream if its CA did not issue it, which is the upstream's call to make).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
