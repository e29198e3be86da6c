//! TLS termination: certificate/key pairs from PEM files, chosen by SNI, reloaded when a file changes.
//!
//! Each pair serves the DNS names in its certificate's subjectAltName (wildcards included); a client
//! that sends no SNI, or a name no certificate covers, gets the first pair. A reload builds a new
//! name map and swaps it into the resolver, so open connections keep their session and new
//! handshakes see the new certificates; a pair that fails to load leaves the old map serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// One certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate configured")]
    Empty,
    #[error("read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: String },
    #[error("{path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{cert}: {reason}")]
    Certificate { cert: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

#[derive(Debug)]
struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl Certs {
    fn load(pairs: &[CertPair]) -> Result<Certs, TlsError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for pair in pairs {
            let (key, names) = load_pair(pair)?;
            for name in names {
                let name = name.to_ascii_lowercase();
                // The first pair to claim a name keeps it, matching the order of the settings.
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone()),
                    None => exact.entry(name).or_insert_with(|| key.clone()),
                };
            }
            default.get_or_insert(key);
        }
        Ok(Certs {
            exact,
            wildcard,
            default: default.ok_or(TlsError::Empty)?,
        })
    }

    fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
            .clone()
    }
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

pub(crate) fn load_pair(pair: &CertPair) -> Result<(Arc<CertifiedKey>, Vec<String>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| TlsError::Read {
            path: text(p),
            reason: e.to_string(),
        })
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&pair.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate {
            cert: text(&pair.cert),
            reason: e.to_string(),
        })?;
    let leaf = chain.first().ok_or_else(|| TlsError::NoCertificate {
        path: text(&pair.cert),
    })?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| TlsError::Certificate {
            cert: text(&pair.cert),
            reason: e.to_string(),
        })?
        .valid_dns_names()
        .map(str::to_owned)
        .collect();
    let der = PrivateKeyDer::from_pem_slice(&read(&pair.key)?).map_err(|e| TlsError::Key {
        path: text(&pair.key),
        reason: e.to_string(),
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| TlsError::Key {
            path: text(&pair.key),
            reason: e.to_string(),
        })?;
    let key = CertifiedKey::new(chain, signer);
    // A rotated certificate written before its key must not be served with the old key.
    key.keys_match().map_err(|e| TlsError::Key {
        path: text(&pair.key),
        reason: format!("does not match {}: {e}", text(&pair.cert)),
    })?;
    Ok((Arc::new(key), names))
}

#[derive(Debug)]
struct Resolver(ArcSwap<Certs>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().pick(hello.server_name()))
    }
}

/// The gateway's TLS front: an acceptor whose certificates can be swapped while it serves.
#[derive(Debug, Clone)]
pub struct TlsTerminator {
    pairs: Arc<[CertPair]>,
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
}

impl TlsTerminator {
    /// Loads every pair; HTTP/2 and HTTP/1.1 are offered by ALPN, in that order.
    pub fn load(pairs: Vec<CertPair>) -> Result<Self, TlsError> {
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(Certs::load(&pairs)?)));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsTerminator {
            pairs: pairs.into(),
            resolver,
            config: Arc::new(config),
        })
    }

    /// The acceptor to serve with ([`keel_server::serve_tls`]).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.clone())
    }

    /// Re-reads every pair; on any error the certificates in use are kept.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certs = Certs::load(&self.pairs)?;
        self.resolver.0.store(Arc::new(certs));
        Ok(())
    }

    /// Polls the files every `interval` and reloads when any of them changes, for as long as the
    /// runtime runs. Errors are logged; the previous certificates keep serving.
    pub fn spawn_watch(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last = this.stamp();
            let mut failed = None;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = this.stamp();
                if now == last || failed.as_ref() == Some(&now) {
                    continue;
                }
                match this.reload() {
                    Ok(()) => {
                        last = now;
                        failed = None;
                        tracing::info!(pairs = this.pairs.len(), "TLS certificates reloaded");
                    }
                    // Not recorded as seen: a cert written before its key is retried once the key changes.
                    Err(e) => {
                        failed = Some(now);
                        tracing::warn!(error = %e, "TLS certificates not reloaded; the previous ones keep serving");
                    }
                }
            }
        })
    }

    fn stamp(&self) -> Vec<Option<(SystemTime, u64, u64)>> {
        self.pairs
            .iter()
            .flat_map(|p| [&p.cert, &p.key])
            .map(|path| {
                let m = std::fs::metadata(path).ok()?;
                // Content hash too: a rewrite within the mtime granularity must still be seen.
                let bytes = std::fs::read(path).ok()?;
                let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
                });
                Some((m.modified().ok()?, m.len(), hash))
            })
            .collect()
    }
}
