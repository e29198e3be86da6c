//! Layered settings: flags, then `KEEL_*` variables, then `--config FILE`, then defaults.
//!
//! Every setting has one dotted key (`registry.bind`). Unknown keys and bad values are refused
//! before anything starts, with a message naming the key and where the value came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use keel_server::{HttpLimits, ShutdownConfig};

use crate::cli::{Cli, Command, ServerFlags};

/// Every key Keel understands, with its default (`None`: no default, the setting is optional).
const KEYS: &[(&str, Option<&str>)] = &[
    ("log.format", Some("text")),
    ("log.level", Some("info")),
    ("data-dir", Some("./keel-data")),
    ("http.max-body-bytes", Some("1MiB")),
    ("http.max-header-bytes", Some("16KiB")),
    ("http.header-read-timeout", Some("10s")),
    ("shutdown.drain-timeout", Some("8s")),
    ("shutdown.readiness-delay", Some("0s")),
    ("registry.bind", Some("0.0.0.0:8761")),
    ("registry.url", Some("http://127.0.0.1:8761")),
    ("registry.auth-token", None),
    ("registry.users-file", None),
    ("registry.protect-reads", Some("false")),
    ("registry.self-preservation", Some("true")),
    ("registry.self-preservation-floor", Some("10")),
    ("registry.self-preservation-threshold", Some("0.85")),
    ("registry.self-preservation-max-hold", Some("5m")),
    ("registry.peers", Some("")),
    ("registry.peers-dns", None),
    ("registry.peers-dns-interval", Some("5s")),
    ("config.bind", Some("0.0.0.0:8888")),
    ("config.url", Some("http://127.0.0.1:8888")),
    ("config.git-uri", None),
    ("config.basedir", None),
    ("config.native", None),
    ("config.search-paths", None),
    ("config.default-label", Some("main")),
    ("config.accept-empty", Some("true")),
    ("config.refresh-interval", Some("30s")),
    ("config.debounce", Some("200ms")),
    ("config.monitor-secret", None),
    ("config.read-auth", None),
    ("config.admin-auth", None),
    ("config.bus", None),
    ("config.registry-url", None),
    ("encrypt.key", None),
    ("gateway.bind", Some("0.0.0.0:8080")),
    ("gateway.url", Some("http://127.0.0.1:8080")),
    ("gateway.routes", None),
    ("gateway.trusted-proxies", Some("")),
    ("gateway.access-log", Some("off")),
    ("gateway.connect-timeout", Some("1s")),
    ("gateway.upstream-idle-timeout", Some("60s")),
    ("gateway.upstream-trusted-ca", None),
    ("gateway.upstream-client-cert", None),
    ("gateway.upstream-client-key", None),
    ("gateway.response-timeout", Some("15s")),
    ("gateway.admin-token", None),
    ("gateway.admin-bind", None),
    ("gateway.tls-cert", None),
    ("gateway.tls-key", None),
    ("gateway.max-body-bytes", None),
    ("gateway.workers", Some("0")),
    ("gateway.http1-server", Some("keel")),
    ("gateway.config-routes", Some("true")),
    ("gateway.config-application", Some("keel-gateway")),
    ("gateway.registry-url", None),
    ("gateway.redis-url", None),
    ("gateway.redis-timeout", Some("100ms")),
    ("gateway.redis-fail-mode", Some("open")),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

/// The fully validated settings of one process.
#[derive(Clone, Debug)]
pub struct Settings {
    pub log_format: LogFormat,
    pub log_level: String,
    pub data_dir: PathBuf,
    pub limits: HttpLimits,
    pub shutdown: ShutdownConfig,
    pub registry_bind: SocketAddr,
    pub registry_url: String,
    pub registry: keel_registry::RegistryConfig,
    /// Other registry nodes to replicate to and sync from (empty: a single node).
    pub registry_peers: Vec<keel_registry::PeerUrl>,
    /// A name whose address records are registry peers (all but this node), re-resolved
    /// every `registry_peers_dns_interval`.
    pub registry_peers_dns: Option<keel_registry::PeersDns>,
    pub registry_peers_dns_interval: Duration,
    pub config_bind: SocketAddr,
    pub config_url: String,
    pub config: ConfigSettings,
    pub gateway_bind: SocketAddr,
    pub gateway_url: String,
    pub gateway: keel_gateway::GatewayConfig,
    /// A listener of its own for the gateway admin API (then absent from the proxy's port).
    pub gateway_admin_bind: Option<SocketAddr>,
    /// Certificate/key pairs the gateway terminates TLS with (SNI picks one); empty: plain HTTP.
    pub gateway_tls: Vec<keel_gateway::CertPair>,
    /// Threads serving the gateway's listener, each with its own runtime and upstream pools;
    /// 0: one per CPU.
    pub gateway_workers: usize,
    /// Who serves plain HTTP/1.1 connections to the gateway: Keel's own connection code (true,
    /// `keel`) or hyper (`hyper`).
    pub gateway_own_http1: bool,
    /// Follow the `gateway.config-application` routes in the config centre (`config.url`, or the
    /// in-process config server in standalone mode).
    pub gateway_config_routes: Option<String>,
    /// Register the gateway as KEEL-GATEWAY in these registries (standalone: the in-process one).
    pub gateway_registry_url: Option<String>,
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug)]
enum Origin {
    Flag(&'static str),
    Env(String),
    File(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A settings error, already phrased for the person starting Keel.
#[derive(Debug)]
pub struct SettingsError(String);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// Raw string values by key, each remembering its origin; later layers override earlier ones.
#[derive(Default)]
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    fn known(key: &str) -> Option<&'static str> {
        KEYS.iter().map(|(k, _)| *k).find(|k| *k == key)
    }

    fn set(&mut self, key: &'static str, value: String, origin: Origin) {
        self.values.insert(key, (value, origin));
    }

    fn get<T>(&self, key: &'static str) -> Result<Option<T>, SettingsError>
    where
        T: FromSetting,
    {
        let default = KEYS.iter().find(|(k, _)| *k == key).and_then(|(_, d)| *d);
        let (raw, origin) = match self.values.get(key) {
            Some((raw, origin)) => (raw.as_str(), origin.clone()),
            None => match default {
                Some(d) => (d, Origin::Default),
                None => return Ok(None),
            },
        };
        T::from_setting(raw).map(Some).map_err(|reason| {
            SettingsError(format!(
                "invalid value `{raw}` for setting `{key}` (from {origin}): {reason}"
            ))
        })
    }

    fn require<T: FromSetting>(&self, key: &'static str) -> Result<T, SettingsError> {
        self.get(key)?
            .ok_or_else(|| SettingsError(format!("setting `{key}` is required")))
    }
}

/// Parsing of one setting's string value, with a reason on failure.
trait FromSetting: Sized {
    fn from_setting(raw: &str) -> Result<Self, String>;
}

impl FromSetting for String {
    fn from_setting(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl FromSetting for PathBuf {
    fn from_setting(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("expected a path".into());
        }
        Ok(PathBuf::from(raw))
    }
}

impl FromSetting for SocketAddr {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.parse()
            .map_err(|_| "expected an address such as 0.0.0.0:8761 or 127.0.0.1:0".into())
    }
}

impl FromSetting for LogFormat {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.parse()
    }
}

impl FromSetting for bool {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected `true` or `false`".into()),
        }
    }
}

impl FromSetting for usize {
    fn from_setting(raw: &str) -> Result<Self, String> {
        raw.trim()
            .parse()
            .map_err(|_| "expected a whole number".into())
    }
}

/// A fraction between 0 and 1, e.g. `0.85`.
struct Fraction(f64);

impl FromSetting for Fraction {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim().parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(Fraction(f)),
            _ => Err("expected a fraction between 0 and 1, such as 0.85".into()),
        }
    }
}

impl FromSetting for Duration {
    fn from_setting(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
}

/// `open` (true) or `closed` (false): what Redis-backed rate limits do without Redis.
struct FailOpen(bool);

impl FromSetting for FailOpen {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "open" => Ok(FailOpen(true)),
            "closed" => Ok(FailOpen(false)),
            _ => Err("expected `open` or `closed`".into()),
        }
    }
}

/// `keel` (true) or `hyper` (false): who serves the gateway's plain HTTP/1.1 connections.
struct Http1Server(bool);

impl FromSetting for Http1Server {
    fn from_setting(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "keel" => Ok(Http1Server(true)),
            "hyper" => Ok(Http1Server(false)),
            _ => Err("expected `keel` or `hyper`".into()),
        }
    }
}

/// Bytes, written as a number with an optional `KiB`/`MiB`/`GiB` suffix.
struct ByteSize(usize);

impl FromSetting for ByteSize {
    fn from_setting(raw: &str) -> Result<Self, String> {
        let reason = || "expected a size such as 1048576, 64KiB or 1MiB".to_owned();
        let (number, unit) = split_number(raw.trim());
        let n: usize = number.parse().map_err(|_| reason())?;
        let scale = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(reason()),
        };
        n.checked_mul(scale).map(ByteSize).ok_or_else(reason)
    }
}

fn split_number(raw: &str) -> (&str, &str) {
    let end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    raw.split_at(end)
}

/// Durations as `500ms`, `8s`, `2m` or `1h`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let reason = || "expected a duration such as 500ms, 8s or 2m".to_owned();
    let (number, unit) = split_number(raw.trim());
    let n: u64 = number.parse().map_err(|_| reason())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(reason()),
    }
}

/// `registry.max-body-bytes` → `KEEL_REGISTRY_MAX_BODY_BYTES`.
fn env_name(key: &str) -> String {
    let mut name = String::from("KEEL_");
    for c in key.chars() {
        name.push(match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        });
    }
    name
}

/// Variables that are read by clap or by tests, not settings keys.
const ENV_NOT_SETTINGS: &[&str] = &["KEEL_CONFIG", "KEEL_CTL_TOKEN"];

impl Settings {
    pub fn load(cli: &Cli) -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with("KEEL_"))
            .collect();
        Self::from_sources(cli, &env)
    }

    fn from_sources(cli: &Cli, env: &[(String, String)]) -> Result<Self, SettingsError> {
        let mut layers = Layers::default();
        if let Some(path) = &cli.config {
            load_file(&mut layers, path)?;
        }
        for (var, value) in env {
            if ENV_NOT_SETTINGS.contains(&var.as_str()) {
                continue;
            }
            let key = KEYS
                .iter()
                .map(|(k, _)| *k)
                .find(|k| env_name(k) == *var)
                .ok_or_else(|| {
                    SettingsError(format!(
                        "unknown environment variable {var}: Keel reads only the KEEL_* variables of its settings ({})",
                        KEYS.iter().map(|(k, _)| env_name(k)).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            layers.set(key, value.clone(), Origin::Env(var.clone()));
        }
        for (key, flag, value) in flags(cli) {
            if let Some(value) = value {
                layers.set(key, value, Origin::Flag(flag));
            }
        }
        let limits = HttpLimits {
            max_body_bytes: layers.require::<ByteSize>("http.max-body-bytes")?.0,
            max_header_bytes: layers.require::<ByteSize>("http.max-header-bytes")?.0,
            header_read_timeout: layers.require("http.header-read-timeout")?,
        };
        let log_level: String = layers.require("log.level")?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
            return Err(SettingsError(format!(
                "invalid value `{log_level}` for setting `log.level`: {e}"
            )));
        }
        Ok(Settings {
            log_format: layers.require("log.format")?,
            log_level,
            data_dir: layers.require("data-dir")?,
            limits,
            shutdown: ShutdownConfig {
                drain_timeout: layers.require("shutdown.drain-timeout")?,
                readiness_delay: layers.require("shutdown.readiness-delay")?,
            },
            registry_bind: layers.require("registry.bind")?,
            registry_url: layers.require("registry.url")?,
            registry: registry_config(&layers)?,
            registry_peers: registry_peers(&layers)?,
            registry_peers_dns: layers
                .get::<String>("registry.peers-dns")?
                .filter(|raw| !raw.trim().is_empty())
                .map(|raw| {
                    keel_registry::PeersDns::parse(&raw).map_err(|e| {
                        SettingsError(format!("invalid setting `registry.peers-dns`: {e}"))
                    })
                })
                .transpose()?,
            registry_peers_dns_interval: layers.require("registry.peers-dns-interval")?,
            config_bind: layers.require("config.bind")?,
            config_url: layers.require("config.url")?,
            config: config_settings(&layers)?,
            gateway_bind: layers.require("gateway.bind")?,
            gateway_url: layers.require("gateway.url")?,
            gateway: gateway_config(&layers)?,
            gateway_admin_bind: layers.get("gateway.admin-bind")?,
            gateway_tls: gateway_tls(&layers)?,
            gateway_workers: layers.require("gateway.workers")?,
            gateway_own_http1: layers.require::<Http1Server>("gateway.http1-server")?.0,
            gateway_config_routes: if layers.require::<bool>("gateway.config-routes")? {
                layers.get("gateway.config-application")?
            } else {
                None
            },
            gateway_registry_url: layers
                .get::<String>("gateway.registry-url")?
                .filter(|u| !u.is_empty()),
        })
    }
}

fn gateway_config(layers: &Layers) -> Result<keel_gateway::GatewayConfig, SettingsError> {
    let bad = |key: &str, raw: &str, reason: &str| {
        SettingsError(format!(
            "invalid value `{raw}` for setting `{key}`: {reason}"
        ))
    };
    let proxies: String = layers.require("gateway.trusted-proxies")?;
    let trusted = proxies
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|c| {
            c.parse::<keel_gateway::Cidr>()
                .map_err(|e| bad("gateway.trusted-proxies", &proxies, &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let log: String = layers.require("gateway.access-log")?;
    let access_log = match log.as_str() {
        "off" | "" => keel_gateway::AccessLogTarget::Off,
        "stdout" | "-" => keel_gateway::AccessLogTarget::Stdout,
        path => keel_gateway::AccessLogTarget::File(PathBuf::from(path)),
    };
    Ok(keel_gateway::GatewayConfig {
        routes_file: layers.get("gateway.routes")?,
        trusted_proxies: keel_gateway::TrustedProxies(trusted),
        access_log,
        connect_timeout: layers.require("gateway.connect-timeout")?,
        upstream_idle_timeout: layers.require("gateway.upstream-idle-timeout")?,
        upstream_trusted_ca: paths(layers, "gateway.upstream-trusted-ca")?,
        upstream_client_cert: upstream_client_cert(layers)?,
        response_timeout: layers.require("gateway.response-timeout")?,
        admin_token: layers
            .get::<String>("gateway.admin-token")?
            .filter(|t| !t.is_empty()),
        admin_separate: layers.get::<SocketAddr>("gateway.admin-bind")?.is_some(),
        tls: !gateway_tls(layers)?.is_empty(),
        max_body_bytes: layers
            .get::<ByteSize>("gateway.max-body-bytes")?
            .map(|b| b.0 as u64)
            .filter(|b| *b > 0),
        redis_url: layers
            .get::<String>("gateway.redis-url")?
            .filter(|u| !u.is_empty()),
        redis_timeout: match layers.require::<Duration>("gateway.redis-timeout")? {
            d if d.is_zero() => {
                return Err(SettingsError(
                    "setting `gateway.redis-timeout` must be longer than zero".into(),
                ));
            }
            d => d,
        },
        redis_fail_open: layers.require::<FailOpen>("gateway.redis-fail-mode")?.0,
        ..keel_gateway::GatewayConfig::default()
    })
}

/// `gateway.upstream-client-cert` and `gateway.upstream-client-key`: both or neither.
fn upstream_client_cert(layers: &Layers) -> Result<Option<keel_gateway::CertPair>, SettingsError> {
    let cert = layers.get::<PathBuf>("gateway.upstream-client-cert")?;
    let key = layers.get::<PathBuf>("gateway.upstream-client-key")?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(keel_gateway::CertPair { cert, key })),
        (None, None) => Ok(None),
        _ => Err(SettingsError(
            "settings `gateway.upstream-client-cert` and `gateway.upstream-client-key` go together"
                .into(),
        )),
    }
}

/// A setting listing files, comma-separated.
fn paths(layers: &Layers, key: &'static str) -> Result<Vec<PathBuf>, SettingsError> {
    Ok(layers
        .get::<String>(key)?
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect())
}

/// `gateway.tls-cert` and `gateway.tls-key`: comma-separated PEM paths, paired in order.
fn gateway_tls(layers: &Layers) -> Result<Vec<keel_gateway::CertPair>, SettingsError> {
    let (certs, keys) = (
        paths(layers, "gateway.tls-cert")?,
        paths(layers, "gateway.tls-key")?,
    );
    if certs.len() != keys.len() {
        return Err(SettingsError(format!(
            "settings `gateway.tls-cert` and `gateway.tls-key` must list as many files ({} vs {})",
            certs.len(),
            keys.len()
        )));
    }
    Ok(certs
        .into_iter()
        .zip(keys)
        .map(|(cert, key)| keel_gateway::CertPair { cert, key })
        .collect())
}

/// `registry.peers`: comma-separated Eureka service URLs.
fn registry_peers(layers: &Layers) -> Result<Vec<keel_registry::PeerUrl>, SettingsError> {
    let raw: String = layers.require("registry.peers")?;
    raw.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            keel_registry::PeerUrl::parse(p)
                .map_err(|e| SettingsError(format!("invalid setting `registry.peers`: {e}")))
        })
        .collect()
}

fn registry_config(layers: &Layers) -> Result<keel_registry::RegistryConfig, SettingsError> {
    let mut auth = keel_registry::AuthConfig {
        tokens: layers
            .get::<String>("registry.auth-token")?
            .filter(|t| !t.is_empty())
            .into_iter()
            .collect(),
        users: Vec::new(),
        protect_reads: layers.require("registry.protect-reads")?,
    };
    if let Some(path) = layers.get::<PathBuf>("registry.users-file")? {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SettingsError(format!("cannot read users file {}: {e}", path.display()))
        })?;
        auth.users = keel_registry::AuthConfig::parse_users(&text)
            .map_err(|e| SettingsError(format!("users file {}: {e}", path.display())))?;
    }
    Ok(keel_registry::RegistryConfig {
        self_preservation: keel_registry::SelfPreservationConfig {
            enabled: layers.require("registry.self-preservation")?,
            floor: layers.require("registry.self-preservation-floor")?,
            threshold: layers
                .require::<Fraction>("registry.self-preservation-threshold")?
                .0,
            max_hold: layers.require("registry.self-preservation-max-hold")?,
        },
        auth,
        ..keel_registry::RegistryConfig::default()
    })
}

/// The config centre's settings; `git_uri: None` means the sample repository in data-dir.
#[derive(Clone)]
pub struct ConfigSettings {
    pub git_uri: Option<String>,
    pub basedir: Option<PathBuf>,
    pub native: Option<PathBuf>,
    pub search_paths: Vec<String>,
    pub default_label: String,
    pub accept_empty: bool,
    pub refresh_interval: Duration,
    pub debounce: Duration,
    pub encrypt_key: Option<String>,
    pub monitor_secret: Option<String>,
    pub read_auth: Option<keel_config::Credentials>,
    pub admin_auth: Option<keel_config::Credentials>,
    pub bus: Option<String>,
    /// Registry to register in as `CONFIGSERVER` (standalone uses its own registry without it).
    pub registry_url: Option<String>,
}

impl fmt::Debug for ConfigSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys and credentials stay out of logs.
        f.debug_struct("ConfigSettings")
            .field("git_uri", &self.git_uri)
            .field("native", &self.native)
            .field("search_paths", &self.search_paths)
            .field("default_label", &self.default_label)
            .field("bus", &self.bus)
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

/// `basic:USER:PASSWORD` or `bearer:TOKEN`.
struct CredentialsSetting(keel_config::Credentials);

impl FromSetting for CredentialsSetting {
    fn from_setting(raw: &str) -> Result<Self, String> {
        keel_config::Credentials::parse(raw).map(CredentialsSetting)
    }
}

fn config_settings(layers: &Layers) -> Result<ConfigSettings, SettingsError> {
    let accept_empty: String = layers.require("config.accept-empty")?;
    let accept_empty = match accept_empty.trim() {
        "true" => true,
        "false" => false,
        other => {
            return Err(SettingsError(format!(
                "invalid value `{other}` for setting `config.accept-empty`: expected `true` or `false`"
            )));
        }
    };
    let search_paths: Option<String> = layers.get("config.search-paths")?;
    Ok(ConfigSettings {
        git_uri: layers.get("config.git-uri")?,
        basedir: layers.get("config.basedir")?,
        native: layers.get("config.native")?,
        search_paths: search_paths
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        default_label: layers.require("config.default-label")?,
        accept_empty,
        refresh_interval: layers.require("config.refresh-interval")?,
        debounce: layers.require("config.debounce")?,
        encrypt_key: layers
            .get::<String>("encrypt.key")?
            .filter(|k| !k.is_empty()),
        monitor_secret: layers
            .get::<String>("config.monitor-secret")?
            .filter(|k| !k.is_empty()),
        read_auth: layers
            .get::<CredentialsSetting>("config.read-auth")?
            .map(|c| c.0),
        admin_auth: layers
            .get::<CredentialsSetting>("config.admin-auth")?
            .map(|c| c.0),
        bus: layers.get("config.bus")?,
        registry_url: layers
            .get::<String>("config.registry-url")?
            .filter(|u| !u.is_empty()),
    })
}

fn config_flags(
    out: &mut Vec<(&'static str, &'static str, Option<String>)>,
    c: &crate::cli::ConfigFlags,
) {
    out.extend([
        ("config.git-uri", "--git-uri", c.git_uri.clone()),
        ("config.basedir", "--basedir", c.basedir.clone()),
        ("config.native", "--native", c.native.clone()),
        (
            "config.search-paths",
            "--search-paths",
            c.search_paths.clone(),
        ),
        (
            "config.default-label",
            "--default-label",
            c.default_label.clone(),
        ),
        (
            "config.accept-empty",
            "--accept-empty",
            c.accept_empty.clone(),
        ),
        (
            "config.refresh-interval",
            "--refresh-interval",
            c.refresh_interval.clone(),
        ),
        ("encrypt.key", "--encrypt-key", c.encrypt_key.clone()),
        (
            "config.monitor-secret",
            "--monitor-secret",
            c.monitor_secret.clone(),
        ),
        ("config.read-auth", "--read-auth", c.read_auth.clone()),
        ("config.admin-auth", "--admin-auth", c.admin_auth.clone()),
        ("config.bus", "--bus", c.bus.clone()),
    ]);
}

/// The settings flags of the chosen subcommand: (key, flag as typed, value).
fn flags(cli: &Cli) -> Vec<(&'static str, &'static str, Option<String>)> {
    let mut out = vec![
        ("log.format", "--log-format", cli.log_format.clone()),
        ("log.level", "--log-level", cli.log_level.clone()),
    ];
    let server = |out: &mut Vec<_>, s: &ServerFlags| {
        out.extend([
            ("data-dir", "--data-dir", s.data_dir.clone()),
            (
                "http.max-body-bytes",
                "--max-body-bytes",
                s.max_body_bytes.clone(),
            ),
            (
                "http.max-header-bytes",
                "--max-header-bytes",
                s.max_header_bytes.clone(),
            ),
            (
                "shutdown.drain-timeout",
                "--drain-timeout",
                s.drain_timeout.clone(),
            ),
            (
                "shutdown.readiness-delay",
                "--readiness-delay",
                s.readiness_delay.clone(),
            ),
        ]);
    };
    match &cli.command {
        Command::Standalone(a) => {
            out.extend([
                ("registry.bind", "--registry-bind", a.registry_bind.clone()),
                ("config.bind", "--config-bind", a.config_bind.clone()),
                ("gateway.bind", "--gateway-bind", a.gateway_bind.clone()),
                ("gateway.routes", "--routes", a.routes.clone()),
                ("gateway.access-log", "--access-log", a.access_log.clone()),
            ]);
            config_flags(&mut out, &a.config);
            server(&mut out, &a.server);
        }
        Command::Registry(a) => {
            out.push(("registry.bind", "--bind", a.bind.clone()));
            out.extend([
                ("registry.auth-token", "--auth-token", a.auth_token.clone()),
                ("registry.users-file", "--users-file", a.users_file.clone()),
                (
                    "registry.protect-reads",
                    "--protect-reads",
                    a.protect_reads.clone(),
                ),
                (
                    "registry.self-preservation",
                    "--self-preservation",
                    a.self_preservation.clone(),
                ),
                ("registry.peers", "--peers", a.peers.clone()),
                ("registry.peers-dns", "--peers-dns", a.peers_dns.clone()),
            ]);
            server(&mut out, &a.server);
        }
        Command::Config(a) => {
            out.push(("config.bind", "--bind", a.bind.clone()));
            out.push(("config.registry-url", "--registry", a.registry.clone()));
            config_flags(&mut out, &a.config);
            server(&mut out, &a.server);
        }
        Command::Gateway(a) => {
            out.extend([
                ("gateway.bind", "--bind", a.bind.clone()),
                ("gateway.routes", "--routes", a.routes.clone()),
                ("gateway.access-log", "--access-log", a.access_log.clone()),
                (
                    "gateway.trusted-proxies",
                    "--trusted-proxies",
                    a.trusted_proxies.clone(),
                ),
                ("registry.url", "--registry-url", a.registry_url.clone()),
                ("gateway.registry-url", "--registry", a.registry.clone()),
                (
                    "gateway.max-body-bytes",
                    "--max-proxied-body",
                    a.max_proxied_body.clone(),
                ),
                ("gateway.workers", "--workers", a.workers.clone()),
            ]);
            server(&mut out, &a.server);
        }
        Command::Ctl(a) => {
            out.extend([
                ("registry.url", "--registry-url", a.registry_url.clone()),
                ("config.url", "--config-url", a.config_url.clone()),
                ("gateway.url", "--gateway-url", a.gateway_url.clone()),
            ]);
        }
        Command::Health(_) => {}
    }
    out
}

/// Reads a YAML file of nested maps; `registry: {bind: …}` becomes `registry.bind`.
fn load_file(layers: &mut Layers, path: &Path) -> Result<(), SettingsError> {
    use saphyr::{LoadableYamlNode, Yaml};
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError(format!("cannot read config file {}: {e}", path.display())))?;
    let docs = Yaml::load_from_str(&text)
        .map_err(|e| SettingsError(format!("config file {}: invalid YAML: {e}", path.display())))?;
    let mut flat = Vec::new();
    for doc in &docs {
        flatten(doc, String::new(), &mut flat)
            .map_err(|e| SettingsError(format!("config file {}: {e}", path.display())))?;
    }
    for (key, value) in flat {
        let known = Layers::known(&key).ok_or_else(|| {
            SettingsError(format!(
                "unknown setting `{key}` in config file {} (known settings: {})",
                path.display(),
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            ))
        })?;
        layers.set(known, value, Origin::File(path.to_owned()));
    }
    Ok(())
}

fn flatten(
    node: &saphyr::Yaml<'_>,
    prefix: String,
    out: &mut Vec<(String, String)>,
) -> Result<(), String> {
    use saphyr::{Scalar, Yaml};
    match node {
        Yaml::Mapping(map) => {
            for (k, v) in map {
                let key = match k {
                    Yaml::Value(Scalar::String(s)) => s.to_string(),
                    other => return Err(format!("key {other:?} under `{prefix}` is not a string")),
                };
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(v, full, out)?;
            }
            Ok(())
        }
        Yaml::Sequence(items) => {
            let mut parts = Vec::new();
            for item in items {
                let mut one = Vec::new();
                flatten(item, prefix.clone(), &mut one)?;
                parts.extend(one.into_iter().map(|(_, v)| v));
            }
            out.push((prefix, parts.join(",")));
            Ok(())
        }
        Yaml::Value(scalar) => {
            let value = match scalar {
                Scalar::Null => String::new(),
                Scalar::Boolean(b) => b.to_string(),
                Scalar::Integer(i) => i.to_string(),
                Scalar::FloatingPoint(f) => f.to_string(),
                Scalar::String(s) => s.to_string(),
            };
            if prefix.is_empty() {
                return Err("the top level must be a mapping of settings".into());
            }
            out.push((prefix, value));
            Ok(())
        }
        other => Err(format!("unsupported YAML node at `{prefix}`: {other:?}")),
    }
}
