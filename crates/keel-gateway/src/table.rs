//! The compiled route table: declared routes in order, then discovery routes; built off the request path.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use http::uri::{Authority, Scheme};

use crate::auth::Authenticator;
use crate::cors::Cors;
use crate::definition::{DiscoverySettings, RouteDefinition, RouteDocument, Spec};
use crate::filter::{self, CircuitBreakerSpec, Compiled, Filter, RouteOption};
use crate::metrics::{GatewayMetrics, RouteMetrics};
use crate::pattern::{Captures, Pattern};
use crate::predicate::{Predicate, RequestView, assign_weights};
use crate::rate_limit::{Limiters, RouteLimiter};
use crate::retry::RetryPolicy;
use crate::upstream::{Endpoint, Service, Services};

/// Where a route sends requests.
#[derive(Debug, Clone)]
pub enum Target {
    /// `lb://service`: an instance chosen by the balancer.
    Service(Arc<Service>),
    /// `http://host:port[/base]`: a fixed address; the path is appended to `base`.
    Url { endpoint: Endpoint, base: String },
    /// A discovery route: the service is the one the path named.
    Discovered,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    pub target: Target,
    pub predicates: Vec<Predicate>,
    pub filters: Vec<Filter>,
    pub needs_captures: bool,
    pub order: i32,
    pub response_timeout: Duration,
    /// Request headers not forwarded (Zuul's sensitive headers); `Set-Cookie` is likewise dropped on the way back.
    pub sensitive: Vec<HeaderName>,
    pub breaker: Option<CircuitBreakerSpec>,
    pub limiter: Option<Arc<RouteLimiter>>,
    pub retry: RetryPolicy,
    /// The route's authenticator (`JwtAuth`, `ApiKeyAuth`, `BasicAuth`); runs before every other filter.
    pub auth: Option<Arc<Authenticator>>,
    /// Metadata `protocol: h2c`: HTTP/2 without TLS (prior knowledge) to the backend, as gRPC needs.
    pub h2c: bool,
    /// The `Host` sent upstream (`PreserveHostHeader`, `SetRequestHostHeader`).
    pub host: filter::UpstreamHost,
    /// Metadata `cors.*`: this route's CORS, in place of the global configuration.
    pub cors: Option<Arc<Cors>>,
    pub metrics: RouteMetrics,
}

/// A route chosen for a request.
#[derive(Debug)]
pub struct Matched {
    pub route: Arc<Route>,
    pub service: Option<Arc<Service>>,
    pub captures: Captures,
}

/// Everything the compiler needs besides the definitions.
#[derive(Debug)]
pub struct CompileContext<'a> {
    pub services: &'a Services,
    pub metrics: &'a GatewayMetrics,
    pub default_timeout: Duration,
    pub default_retries: u32,
    pub sensitive_headers: &'a [String],
    /// Limiters by (route id, settings), so a recompiled table keeps counting where the old one was.
    pub limiters: &'a Limiters,
    /// Validation only: touch no shared state (services are not created).
    pub dry_run: bool,
}

/// A table that could not be compiled; the old table keeps serving.
#[derive(Debug, Clone, thiserror::Error)]
#[error("route `{route}`: {reason}")]
pub struct CompileError {
    pub route: String,
    pub reason: String,
}

/// Keel's own components as they register (`KEEL-GATEWAY`, `CONFIGSERVER`), lower-cased as
/// service ids are: discovery routes them only when an include pattern names them.
pub const NOT_DISCOVERED: [&str; 2] = ["keel-gateway", "configserver"];

/// The compiled table. Immutable; replaced whole.
#[derive(Debug)]
pub struct Table {
    pub routes: Vec<Arc<Route>>,
    pub default_filters: Vec<Filter>,
    pub discovery: DiscoverySettings,
    include: Vec<Pattern>,
    ignore: Vec<Pattern>,
    /// The definitions it was built from, for the admin API.
    pub definitions: Vec<RouteDefinition>,
    /// Global CORS by path pattern, first match wins.
    pub cors: Vec<(Pattern, Arc<Cors>)>,
    /// Whether any CORS is configured (global or on a route): otherwise requests skip the check.
    pub has_cors: bool,
}

fn glob(g: &str) -> Result<Pattern, CompileError> {
    // Service-id globs reuse host patterns: `*` within one dot-free name, case-insensitive.
    Pattern::host(g).map_err(|e| CompileError {
        route: "discovery".into(),
        reason: e.to_string(),
    })
}

fn parse_uri(uri: &str, ctx: &CompileContext<'_>) -> Result<Target, String> {
    if let Some(service) = uri.strip_prefix("lb://") {
        let service = service.trim_end_matches('/');
        if service.is_empty() || service.contains('/') {
            return Err(format!("`{uri}`: expected lb://service-id"));
        }
        let service = if ctx.dry_run {
            ctx.services.detached(service)
        } else {
            ctx.services.get_or_create(service)
        };
        return Ok(Target::Service(service));
    }
    let parsed: http::Uri = uri.parse().map_err(|e| format!("`{uri}`: {e}"))?;
    let scheme = parsed
        .scheme()
        .cloned()
        .ok_or_else(|| format!("`{uri}`: no scheme"))?;
    let default_port = if scheme == Scheme::HTTP {
        80
    } else if scheme == Scheme::HTTPS {
        443
    } else {
        return Err(format!(
            "`{uri}`: only lb://, http:// and https:// targets are supported"
        ));
    };
    let host = parsed
        .authority()
        .ok_or_else(|| format!("`{uri}`: no host"))?;
    let authority: Authority = if host.port().is_some() {
        host.clone()
    } else {
        format!("{}:{default_port}", host.host())
            .parse()
            .map_err(|e| format!("`{uri}`: {e}"))?
    };
    let base = parsed.path().trim_end_matches('/').to_owned();
    Ok(Target::Url {
        endpoint: Endpoint {
            scheme,
            authority,
            h2c: false,
        },
        base,
    })
}

fn compile_filters(
    specs: &[Spec],
    route: &str,
) -> Result<(Vec<Filter>, Vec<RouteOption>), CompileError> {
    let mut filters = Vec::new();
    let mut options = Vec::new();
    for spec in specs {
        match filter::compile(spec).map_err(|e| CompileError {
            route: route.into(),
            reason: e.to_string(),
        })? {
            Compiled::Filter(f) => filters.push(f),
            Compiled::Option(o) => options.push(o),
        }
    }
    Ok((filters, options))
}

fn metadata_ms(def: &RouteDefinition, key: &str) -> Result<Option<Duration>, CompileError> {
    def.metadata
        .get(key)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map(|ms| Duration::from_millis(ms.max(0) as u64))
                .map_err(|_| CompileError {
                    route: def.id.clone(),
                    reason: format!("metadata `{key}` must be milliseconds, not `{v}`"),
                })
        })
        .transpose()
}

fn header_list(list: &[String]) -> Vec<HeaderName> {
    list.iter()
        .filter_map(|h| HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).ok())
        .collect()
}

impl Table {
    /// No declared routes; discovery on.
    pub fn empty() -> Table {
        Table {
            routes: Vec::new(),
            default_filters: Vec::new(),
            discovery: DiscoverySettings::default(),
            include: Vec::new(),
            ignore: Vec::new(),
            definitions: Vec::new(),
            cors: Vec::new(),
            has_cors: false,
        }
    }

    /// The global CORS configuration for `path`, if one's pattern matches.
    pub fn cors_for(&self, path: &str) -> Option<&Arc<Cors>> {
        self.cors
            .iter()
            .find(|(p, _)| p.matches(path, None))
            .map(|(_, c)| c)
    }

    /// Compiles a document; any error rejects the whole table.
    pub fn compile(doc: &RouteDocument, ctx: &CompileContext<'_>) -> Result<Table, CompileError> {
        let mut routes = Vec::with_capacity(doc.routes.len());
        for def in &doc.routes {
            routes.push(Self::compile_route(def, ctx)?);
        }
        assign_weights(
            routes
                .iter_mut()
                .flat_map(|r: &mut Route| r.predicates.iter_mut()),
        );
        // Stable: equal orders keep declaration order, as SCG does.
        routes.sort_by_key(|r| r.order);
        let (default_filters, default_options) =
            compile_filters(&doc.default_filters, "default-filters")?;
        if !default_options.is_empty() {
            return Err(CompileError {
                route: "default-filters".into(),
                reason: "CircuitBreaker, RequestRateLimiter, Retry and auth filters must be declared per route"
                    .into(),
            });
        }
        let discovery = doc.discovery.clone().unwrap_or_default();
        let cors: Vec<(Pattern, Arc<Cors>)> = doc
            .cors
            .iter()
            .flatten()
            .map(|c| {
                let fail = |reason: String| CompileError {
                    route: format!("globalcors [{}]", c.pattern),
                    reason,
                };
                let pattern = Pattern::path(&c.pattern).map_err(|e| fail(e.to_string()))?;
                let cors = Cors::compile(c.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(fail)?;
                Ok((pattern, Arc::new(cors)))
            })
            .collect::<Result<_, _>>()?;
        let has_cors = !cors.is_empty() || routes.iter().any(|r| r.cors.is_some());
        Ok(Table {
            cors,
            has_cors,
            routes: routes.into_iter().map(Arc::new).collect(),
            default_filters,
            include: discovery
                .include
                .iter()
                .map(|g| glob(g))
                .collect::<Result<_, _>>()?,
            ignore: discovery
                .ignore
                .iter()
                .map(|g| glob(g))
                .collect::<Result<_, _>>()?,
            discovery,
            definitions: doc.routes.clone(),
        })
    }

    fn compile_route(
        def: &RouteDefinition,
        ctx: &CompileContext<'_>,
    ) -> Result<Route, CompileError> {
        let fail = |reason: String| CompileError {
            route: def.id.clone(),
            reason,
        };
        if def.id.is_empty() || def.id.len() > 200 || def.id.contains(['/', ' ']) {
            return Err(fail(
                "route ids are 1-200 characters without `/` or spaces".into(),
            ));
        }
        let target = parse_uri(&def.uri, ctx).map_err(fail)?;
        let predicates: Vec<Predicate> = def
            .predicates
            .iter()
            .map(|p| Predicate::compile(p).map_err(|e| fail(e.to_string())))
            .collect::<Result<_, _>>()?;
        let (filters, options) = compile_filters(&def.filters, &def.id)?;
        let mut breaker = None;
        let mut limiter = None;
        let mut retry = RetryPolicy::implicit(ctx.default_retries);
        let mut auth: Option<Arc<Authenticator>> = None;
        let mut host = filter::UpstreamHost::Backend;
        for o in options {
            match o {
                RouteOption::Auth(a) => {
                    if auth.is_some() {
                        return Err(fail("a route takes one auth filter".into()));
                    }
                    auth = Some(a);
                }
                RouteOption::CircuitBreaker(b) => breaker = Some(b),
                RouteOption::Retry(r) => {
                    if matches!(target, Target::Url { .. }) {
                        return Err(fail(
                            "Retry needs an `lb://` route: Keel retries on another instance, and a \
                             fixed URI has only one"
                                .into(),
                        ));
                    }
                    retry = r;
                }
                RouteOption::Host(h) => host = h,
                RouteOption::RateLimiter(spec) => {
                    limiter = Some(
                        ctx.limiters
                            .route(&def.id, spec, ctx.metrics, ctx.dry_run)
                            .map_err(fail)?,
                    );
                }
            }
        }
        if auth.is_none()
            && limiter
                .as_ref()
                .is_some_and(|l| l.spec.key == filter::KeyResolver::JwtSubject)
        {
            return Err(fail(
                "keyResolver `jwt`/`principal` needs an auth filter (JwtAuth, ApiKeyAuth or BasicAuth) on the route, \
                 so the key is a verified identity"
                    .into(),
            ));
        }
        let h2c = match def
            .metadata
            .get("protocol")
            .map(|p| p.trim().to_ascii_lowercase())
        {
            None => false,
            Some(p) if p == "h2c" => true,
            Some(p) if p == "http/1.1" || p == "http1" || p.is_empty() => false,
            Some(p) => {
                return Err(fail(format!(
                    "metadata `protocol` is h2c or http/1.1, not `{p}`"
                )));
            }
        };
        let response_timeout = metadata_ms(def, "response-timeout")?
            .filter(|d| !d.is_zero())
            .unwrap_or(ctx.default_timeout);
        let sensitive = match (&target, def.metadata.get("sensitive-headers")) {
            (_, Some(list)) => header_list(&list.split(',').map(str::to_owned).collect::<Vec<_>>()),
            (Target::Url { .. }, None) => header_list(ctx.sensitive_headers),
            _ => Vec::new(),
        };
        let cors_settings: Vec<(&str, &str)> = def
            .metadata
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("cors.")?, v.as_str())))
            .collect();
        let cors = if cors_settings.is_empty() {
            None
        } else {
            Some(Arc::new(
                Cors::compile(cors_settings).map_err(|e| fail(format!("metadata cors: {e}")))?,
            ))
        };
        let needs_captures = filters.iter().any(|f| matches!(f, Filter::SetPath(_)));
        Ok(Route {
            id: def.id.as_str().into(),
            metrics: ctx.metrics.route(&def.id),
            target,
            predicates,
            filters,
            needs_captures,
            order: def.order,
            response_timeout,
            sensitive,
            breaker,
            limiter,
            retry,
            auth,
            h2c,
            host,
            cors,
        })
    }

    /// The discovery route for a service (`/{id}/**`, prefix stripped).
    pub fn discovery_route(service: &Service, ctx: &CompileContext<'_>) -> Route {
        let id = format!("discovery_{}", service.id);
        Route {
            metrics: ctx.metrics.route(&id),
            id: id.into(),
            target: Target::Discovered,
            predicates: Vec::new(),
            filters: vec![Filter::StripPrefix(1)],
            needs_captures: false,
            order: i32::MAX,
            response_timeout: ctx.default_timeout,
            sensitive: Vec::new(),
            breaker: None,
            limiter: None,
            retry: RetryPolicy::implicit(ctx.default_retries),
            auth: None,
            h2c: false,
            host: filter::UpstreamHost::Backend,
            cors: None,
        }
    }

    /// Whether discovery may route to `service`. Never to Keel's own components ([`NOT_DISCOVERED`])
    /// unless an include pattern names them outright: `/keel-gateway/…` would send a request back
    /// through a gateway, one hop per repeated prefix, and `/configserver/…` would publish every
    /// application's configuration, decrypted secrets included, at the edge.
    pub fn discovers(&self, service: &str) -> bool {
        self.discovery.enabled
            && (self.include.is_empty() || self.include.iter().any(|p| p.matches(service, None)))
            && !self.ignore.iter().any(|p| p.matches(service, None))
            && (!NOT_DISCOVERED
                .iter()
                .any(|own| service.eq_ignore_ascii_case(own))
                || self
                    .discovery
                    .include
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(service)))
    }

    /// The first declared route whose predicates all hold.
    #[inline]
    pub fn find(&self, req: &RequestView<'_>) -> Option<(Arc<Route>, Captures)> {
        let mut captures = Captures::new();
        for r in &self.routes {
            captures.clear();
            if r.predicates.iter().all(|p| p.test(req, &mut captures)) {
                return Some((r.clone(), captures));
            }
        }
        None
    }
}
