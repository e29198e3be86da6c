//! The gateway component (Zuul's role): registry-driven routes, SCG-style predicates and filters,
//! protection from keel-resilience/keel-balance, access log and metrics.
//!
//! API boundary: [`Gateway`] (route sources, instance updates, reloads) and [`router`] (the proxy as
//! the fallback of every path, plus the admin API under `/keel/v1/gateway/`).

mod access_log;
mod admin;
mod auth;
mod client;
mod config;
mod config_routes;
mod cors;
pub mod definition;
mod discovery;
mod filter;
mod forwarded;
mod metrics;
mod path;
mod pattern;
mod pool;
mod predicate;
mod proxy;
mod rate_limit;
mod respond;
mod retry;
mod table;
mod tls;
mod upstream;
mod watch;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use keel_balance::InstanceSpec;
use keel_server::{Health, HealthRegistry};
use tokio_util::either::Either;

pub use access_log::AccessLogTarget;
pub use config::GatewayConfig;
pub use config_routes::{ConfigFollower, ConfigRoutes, ConfigRoutesStatus};
pub use definition::{DefinitionError, DiscoverySettings, RouteDefinition, RouteDocument, Spec};
pub use forwarded::TrustedProxies;
pub use path::{PathError, normalize};
pub use predicate::Cidr;
pub use table::{CompileError, NOT_DISCOVERED};
pub use tls::{CertPair, TlsError, TlsTerminator};
pub use upstream::{Endpoint, Service, Services};

use crate::metrics::GatewayMetrics;
use crate::rate_limit::Limiters;
use crate::table::{CompileContext, Table};

/// Why the gateway could not start or apply a route change.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("read route file {path}: {source}")]
    ReadRoutes {
        path: String,
        source: std::io::Error,
    },
    #[error("route file {path}: {source}")]
    ParseRoutes {
        path: String,
        source: DefinitionError,
    },
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    #[error("invalid route table: {0}")]
    Compile(#[from] CompileError),
    #[error("open access log: {0}")]
    AccessLog(std::io::Error),
    #[error("discovery: {0}")]
    Discovery(String),
    #[error("routes from the config centre: {0}")]
    ConfigRoutes(String),
    #[error("rate limiter: {0}")]
    RateLimiter(String),
    #[error("TLS towards https upstreams: {0}")]
    UpstreamTls(String),
    #[error("route `{0}` was not created through the admin API")]
    NotApiRoute(String),
}

/// Route definitions by source; the table is compiled from all of them.
#[derive(Debug, Default)]
struct Sources {
    file: RouteDocument,
    config: RouteDocument,
    /// Admin-API routes, replacing file/config routes of the same id.
    api: Vec<RouteDefinition>,
}

impl Sources {
    fn merged(&self) -> RouteDocument {
        let mut routes: Vec<RouteDefinition> = Vec::new();
        for r in self
            .file
            .routes
            .iter()
            .chain(&self.config.routes)
            .chain(&self.api)
        {
            match routes.iter_mut().find(|x| x.id == r.id) {
                Some(x) => *x = r.clone(),
                None => routes.push(r.clone()),
            }
        }
        let default_filters = if self.file.default_filters.is_empty() {
            self.config.default_filters.clone()
        } else {
            self.file.default_filters.clone()
        };
        RouteDocument {
            routes,
            default_filters,
            discovery: self
                .file
                .discovery
                .clone()
                .or_else(|| self.config.discovery.clone()),
            cors: self.file.cors.clone().or_else(|| self.config.cors.clone()),
        }
    }
}

/// The gateway's shared state. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Gateway(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) table: ArcSwap<Table>,
    pub(crate) services: Services,
    pub(crate) metrics: GatewayMetrics,
    pub(crate) access_log: access_log::AccessLog,
    pub(crate) upstream_tls: client::UpstreamTls,
    sources: Mutex<Sources>,
    limiters: Limiters,
}

impl Deref for Gateway {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Gateway {
    /// Builds the gateway and loads the route file, if any. Call inside a tokio runtime (the access
    /// log's writer task is spawned here).
    pub fn new(config: GatewayConfig, health: &HealthRegistry) -> Result<Self, GatewayError> {
        let metrics = GatewayMetrics::default();
        let access_log = access_log::AccessLog::start(&config.access_log, metrics.clone())
            .map_err(GatewayError::AccessLog)?;
        let services = Services::new(config.clone(), metrics.clone());
        let limiters = Limiters::new(&config).map_err(GatewayError::RateLimiter)?;
        let upstream_tls = client::UpstreamTls::load(
            &config.upstream_trusted_ca,
            config.upstream_client_cert.as_ref(),
        )
        .map_err(GatewayError::UpstreamTls)?;
        let gw = Gateway(Arc::new(Inner {
            table: ArcSwap::from_pointee(Table::empty()),
            services,
            metrics,
            access_log,
            upstream_tls,
            sources: Mutex::new(Sources::default()),
            limiters,
            config,
        }));
        if gw.config.routes_file.is_some() {
            gw.reload_file()?;
        }
        health.register("gateway", Health::up, false);
        Ok(gw)
    }

    pub(crate) fn compile_context(&self, dry_run: bool) -> CompileContext<'_> {
        CompileContext {
            services: &self.services,
            metrics: &self.metrics,
            default_timeout: self.config.response_timeout,
            default_retries: self.config.retries,
            sensitive_headers: &self.config.sensitive_headers,
            limiters: &self.limiters,
            dry_run,
        }
    }

    /// Registers the gateway's metric families (`keel_gateway_*`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.metrics.register(registry);
    }

    /// The services behind the gateway; feed instances with [`Services::set_instances`].
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Replaces a service's instances (`(instance id, address)` pairs).
    pub fn set_instances(
        &self,
        service: &str,
        instances: impl IntoIterator<Item = (String, SocketAddr)>,
    ) {
        let specs = instances
            .into_iter()
            .map(|(id, addr)| InstanceSpec::new(id, Endpoint::http(addr)))
            .collect();
        self.services.set_instances(service, specs);
    }

    fn lock_sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        // Sources hold plain data; a panic mid-update leaves them consistent enough to rebuild.
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compiles `sources`; on success swaps the table in and keeps the sources.
    fn rebuild(&self, sources: &mut Sources, next: Sources) -> Result<(), CompileError> {
        let table = Table::compile(&next.merged(), &self.compile_context(false))?;
        self.table.store(Arc::new(table));
        *sources = next;
        Ok(())
    }

    fn with_sources(
        &self,
        change: impl FnOnce(&Sources) -> Result<Sources, GatewayError>,
    ) -> Result<(), GatewayError> {
        let mut sources = self.lock_sources();
        let next = change(&sources)?;
        self.rebuild(&mut sources, next)?;
        Ok(())
    }

    /// Re-reads the route file. An invalid file is rejected and the current table keeps serving.
    pub fn reload_file(&self) -> Result<(), GatewayError> {
        let Some(path) = &self.config.routes_file else {
            return Ok(());
        };
        let text = std::fs::read_to_string(path).map_err(|source| GatewayError::ReadRoutes {
            path: path.display().to_string(),
            source,
        })?;
        self.load_file_text(path, &text)
    }

    /// Replaces the file's routes with `text`, the route file's contents as read once by the caller.
    pub(crate) fn load_file_text(
        &self,
        path: &std::path::Path,
        text: &str,
    ) -> Result<(), GatewayError> {
        let properties = path.extension().is_some_and(|e| e == "properties");
        let doc =
            RouteDocument::parse(text, properties).map_err(|source| GatewayError::ParseRoutes {
                path: path.display().to_string(),
                source,
            })?;
        self.with_sources(|s| {
            Ok(Sources {
                file: doc,
                config: s.config.clone(),
                api: s.api.clone(),
            })
        })
    }

    /// Replaces the routes that come from the config centre (flat Spring keys of the gateway's application).
    pub fn set_config_routes(&self, doc: RouteDocument) -> Result<(), GatewayError> {
        self.with_sources(|s| {
            Ok(Sources {
                file: s.file.clone(),
                config: doc,
                api: s.api.clone(),
            })
        })
    }

    /// Adds or replaces an admin-API route.
    pub fn upsert_route(&self, def: RouteDefinition) -> Result<(), GatewayError> {
        self.with_sources(|s| {
            let mut api = s.api.clone();
            match api.iter_mut().find(|r| r.id == def.id) {
                Some(r) => *r = def,
                None => api.push(def),
            }
            Ok(Sources {
                file: s.file.clone(),
                config: s.config.clone(),
                api,
            })
        })
    }

    /// Deletes an admin-API route (file and config routes change only at their source).
    pub fn delete_route(&self, id: &str) -> Result<(), GatewayError> {
        self.with_sources(|s| {
            let mut api = s.api.clone();
            let before = api.len();
            api.retain(|r| r.id != id);
            if api.len() == before {
                return Err(GatewayError::NotApiRoute(id.to_owned()));
            }
            Ok(Sources {
                file: s.file.clone(),
                config: s.config.clone(),
                api,
            })
        })
    }

    /// Compiles `doc` as it would be served, merged with the current sources, without swapping anything in.
    pub fn validate(&self, doc: &RouteDocument) -> Result<usize, CompileError> {
        let sources = self.lock_sources();
        let mut next = Sources {
            file: sources.file.clone(),
            config: sources.config.clone(),
            api: sources.api.clone(),
        };
        drop(sources);
        next.api.extend(doc.routes.iter().cloned());
        let mut merged = next.merged();
        if !doc.default_filters.is_empty() {
            merged.default_filters = doc.default_filters.clone();
        }
        Table::compile(&merged, &self.compile_context(true)).map(|t| t.routes.len())
    }

    /// The definitions being served, in match order, with their source.
    pub fn route_definitions(&self) -> Vec<(RouteDefinition, &'static str)> {
        let sources = self.lock_sources();
        let table = self.table.load();
        let mut out: Vec<(RouteDefinition, &'static str)> = Vec::new();
        for r in &table.routes {
            let Some(def) = table.definitions.iter().find(|d| *d.id == *r.id) else {
                continue;
            };
            let source = if sources.api.iter().any(|d| d.id == def.id) {
                "api"
            } else if sources.config.routes.iter().any(|d| d.id == def.id) {
                "config"
            } else {
                "file"
            };
            out.push((def.clone(), source));
        }
        out
    }

    /// Whether discovery routes `/{service}/**` are served for `service`.
    pub fn discovers(&self, service: &str) -> bool {
        self.table.load().discovers(service)
    }
}

/// The gateway's HTTP surface: the admin API under `/keel/v1/gateway/` (unless
/// [`GatewayConfig::admin_separate`]) and the proxy for every other path.
pub fn router(gateway: Gateway) -> Router {
    if gateway.config.admin_separate {
        return Router::new().fallback(proxy_entry).with_state(gateway);
    }
    admin::router(gateway.clone())
        .fallback(proxy_entry)
        .with_state(gateway)
}

/// The admin API alone, for a listener of its own (`gateway.admin-bind`).
pub fn admin_router(gateway: Gateway) -> Router {
    admin::router(gateway.clone()).with_state(gateway)
}

/// The gateway's listener ([`keel_server::Handler`]): a proxied request goes straight to the proxy,
/// without axum's routing, request tracing or the per-component HTTP metrics (the proxy keeps its own
/// per-route metrics and access log). Paths the router may answer itself — the admin API, the
/// actuator and `/metrics` — go through `app`, which still falls back to the proxy.
#[derive(Clone)]
pub struct Front {
    gateway: Gateway,
    app: Router,
    own_http1: bool,
}

impl Front {
    /// `app` is [`router`] wrapped with the shared endpoints ([`keel_server::app`]).
    ///
    /// Plain HTTP/1.1 connections are served by Keel's own connection code (see
    /// [`keel_server::Handler::own_http1`]) unless [`Front::with_own_http1`] turns it off.
    pub fn new(gateway: Gateway, app: Router) -> Self {
        Self {
            gateway,
            app,
            own_http1: true,
        }
    }

    /// `false`: hyper serves every connection (for comparison, or as an escape hatch).
    pub fn with_own_http1(mut self, on: bool) -> Self {
        self.own_http1 = on;
        self
    }

    fn for_app(&self, path: &str) -> bool {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        under("/actuator")
            || path == "/metrics"
            || (!self.gateway.config.admin_separate && under("/keel/v1/gateway"))
    }
}

impl keel_server::Handler for Front {
    fn handle(
        &self,
        peer: SocketAddr,
        request: Request,
    ) -> impl Future<Output = Response> + Send + use<> {
        // The proxy's state machine is large; boxed, hyper moves a pointer per request instead of
        // copying the whole future into its dispatcher.
        Box::pin(self.serve(peer, request, false))
    }

    fn handle_in_place(
        &self,
        peer: SocketAddr,
        request: Request,
    ) -> impl Future<Output = Response> + Send + use<> {
        self.serve(peer, request, true)
    }

    fn own_http1(&self) -> bool {
        self.own_http1
    }
}

impl Front {
    /// `relay_heads`: Keel's own HTTP/1.1 writer answers ([`proxy::handle`]).
    fn serve(
        &self,
        peer: SocketAddr,
        request: Request,
        relay_heads: bool,
    ) -> impl Future<Output = Response> + Send + use<> {
        // The proxy's future is returned as it is, not awaited inside another one: each wrapping
        // future would copy it once more per request. The rare admin paths are boxed.
        if self.for_app(request.uri().path()) {
            let app = self.app.clone();
            Either::Left(Box::pin(async move {
                keel_server::Handler::handle(&app, peer, request).await
            }))
        } else {
            Either::Right(proxy::handle(
                self.gateway.clone(),
                peer,
                request,
                relay_heads,
            ))
        }
    }
}

async fn proxy_entry(State(gw): State<Gateway>, req: Request) -> Response<Body> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    proxy::handle(gw, peer, req, false).await
}
