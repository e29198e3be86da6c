//! The request path: normalise, match, protect, forward (streaming), and account — top to bottom in [`handle`].

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use keel_balance::{InstanceId, Pick};
use keel_resilience::Outcome;
use tokio::time::Instant;

use crate::Gateway;
use crate::access_log::{Instance, Line};
use crate::auth::Principal;
use crate::client;
use crate::cors::{self, Cors, Verdict};
use crate::filter::{self, Filter, KeyResolver, UpstreamHost};
use crate::forwarded::{self, Forwarded, Hop};
use crate::path;
use crate::pool;
use crate::predicate::RequestView;
use crate::rate_limit::{Decision, Source};
use crate::respond;
use crate::retry;
use crate::table::{Matched, Route, Table, Target};
use crate::upstream::{Endpoint, Service};

mod fallback;
mod protocol;

use fallback::{FallbackDepth, fallback, upstream_failure};
use protocol::Carried;

/// Per-request facts for the access log and metrics.
struct Ledger {
    start: Instant,
    request_id: HeaderValue,
    method: Method,
    /// The request's URI (a cheap clone) and the normalised path where it differs, for the log.
    uri: Uri,
    normalized: Option<String>,
    client: IpAddr,
    route: Option<Arc<Route>>,
    service: Option<Arc<str>>,
    instance: Option<Instance>,
    upstream: Option<Duration>,
    /// When the upstream's response head arrived, for a request its upstream answered: the end of
    /// the total latency too, so `finish` reads no clock of its own.
    answered: Option<Instant>,
    attempts: u32,
    decision: Option<&'static str>,
    /// Who decided the route's rate limit (the access log's `limiter`).
    limiter: Option<&'static str>,
    /// This request is a route's fallback: its own failures are answered plainly, never by another fallback.
    in_fallback: bool,
    /// The CORS configuration that applies, and for an allowed CORS request the
    /// `Access-Control-Allow-Origin` its answer gets.
    cors: Option<(Arc<Cors>, Option<HeaderValue>)>,
    /// What every attempt adds to the upstream request, and how it takes the response.
    via: Via,
}

/// What every attempt at a request adds to the upstream request and how it takes the response.
#[derive(Debug, Clone, Default)]
pub(crate) struct Via {
    /// How the upstream's response head is relayed when it can be (see [`handle`]).
    relay: Option<pool::Relay>,
    /// The forwarded headers, when they are kept out of the request's map.
    forwarded: Option<Forwarded>,
}

impl Via {
    /// For a fallback's request: its answer is edited like any other, so it is not relayed.
    pub(crate) fn for_fallback(&self) -> Via {
        Via {
            relay: None,
            forwarded: self.forwarded.clone(),
        }
    }
}

impl Ledger {
    /// The normalised request path.
    fn path(&self) -> &str {
        self.normalized
            .as_deref()
            .unwrap_or_else(|| self.uri.path())
    }
}

// Parsed once: a header name from a string is validated on every use.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `Keep-Alive` and `Proxy-Connection`).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names (no hashing) finds which are present; most messages carry none, and a
    // typical response only `Connection`, so only those are removed (each removal hashes).
    let mut present = 0u8;
    for name in h.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // Headers named by Connection are hop-by-hop too (RFC 9110 §7.6.1). The usual tokens (`close`,
    // `keep-alive`, `upgrade`) name nothing beyond the fixed list, so they cost no allocation.
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| {
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"close")
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"upgrade")
        })
        // `from_bytes` folds the name to lower case.
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            h.remove(n);
        }
    }
}

fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= 128
        && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return v.clone();
    }
    let mut id = [0u8; 32];
    let n = fastrand::u128(..);
    for (i, b) in id.iter_mut().enumerate() {
        *b = b"0123456789abcdef"[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    // 32 hex digits are always a valid header value.
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

/// Serves one request arriving from `peer`.
///
/// `relay_heads`: the response goes out through Keel's own HTTP/1.1 writer, which writes
/// [`keel_server::RawHeaders`]; an upstream's head is then relayed line by line, without a header
/// map, on routes that edit no response header.
pub async fn handle(
    gw: Gateway,
    peer: SocketAddr,
    req: Request<Body>,
    relay_heads: bool,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let client = gw
        .config
        .trusted_proxies
        .client_ip(peer.ip(), &parts.headers);
    let mut ledger = Ledger {
        start: Instant::now(),
        request_id: request_id(&parts.headers),
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        normalized: None,
        client,
        route: None,
        service: None,
        instance: None,
        upstream: None,
        answered: None,
        attempts: 0,
        decision: None,
        limiter: None,
        in_fallback: parts.extensions.get::<FallbackDepth>().is_some(),
        cors: None,
        via: Via::default(),
    };
    // hyper already lets Transfer-Encoding win and closes the connection (RFC 9112 §6.3); a request that
    // still carries both reached us over a path that did not, so it is refused outright.
    if parts.headers.contains_key(header::TRANSFER_ENCODING)
        && parts.headers.contains_key(header::CONTENT_LENGTH)
    {
        return finish(
            &gw,
            ledger,
            bad(
                &parts.uri,
                "both Content-Length and Transfer-Encoding",
                &parts.headers,
            ),
        );
    }
    // A cheap clone (shared buffers), so the normalised path can borrow it while `parts` moves on.
    let uri = parts.uri.clone();
    let normalized = match path::normalize(uri.path()) {
        Ok(p) => p,
        Err(e) => {
            let id = ledger.request_id.clone();
            ledger.decision = Some("bad_path");
            return finish(
                &gw,
                ledger,
                respond::error(
                    StatusCode::BAD_REQUEST,
                    "bad_path",
                    &e.to_string(),
                    parts.uri.path(),
                    &id,
                ),
            );
        }
    };
    if let Cow::Owned(p) = &normalized {
        ledger.normalized = Some(p.clone());
    }
    let host = host_of(&parts);
    let table = gw.table.load();
    let matched = {
        let view = RequestView {
            method: &parts.method,
            path: &normalized,
            query: parts.uri.query(),
            host: &host,
            headers: &parts.headers,
            client_ip: client,
            weight_draw: fastrand::f64(),
        };
        table
            .find(&view)
            .map(|(route, captures)| Matched {
                route,
                service: None,
                captures,
            })
            .or_else(|| discover(&gw, &table, &normalized))
    };
    // CORS, only where configured and for a foreign `Origin`: the route's own, else the global one
    // for the path (which also answers preflights no route admits).
    if table.has_cors
        && let Some(config) = matched
            .as_ref()
            .and_then(|m| m.route.cors.as_ref())
            .or_else(|| table.cors_for(&normalized))
    {
        let foreign = parts
            .headers
            .get(header::ORIGIN)
            .filter(|o| !cors::same_origin(o, gw.config.tls, parts.headers.get(header::HOST)));
        let verdict = match foreign {
            Some(origin) => config.judge(&parts.method, origin, &parts.headers),
            // Not a CORS request; its answer still varies by `Origin` for caches.
            None => Verdict::NotCors,
        };
        match verdict {
            Verdict::NotCors => ledger.cors = Some((config.clone(), None)),
            Verdict::Allowed(allow) => ledger.cors = Some((config.clone(), Some(allow))),
            Verdict::Preflight(mut resp) => {
                resp.headers_mut()
                    .insert(X_REQUEST_ID, ledger.request_id.clone());
                ledger.route = matched.map(|m| m.route);
                ledger.decision = Some("cors_preflight");
                return finish(&gw, ledger, resp);
            }
            Verdict::Refused(why) => {
                ledger.route = matched.map(|m| m.route);
                ledger.decision = Some("cors_rejected");
                let resp = cors::refused(why, &normalized, &ledger.request_id);
                return finish(&gw, ledger, resp);
            }
        }
    }
    let Some(matched) = matched else {
        ledger.decision = Some("no_route");
        let id = ledger.request_id.clone();
        let msg = format!("no route matches {normalized}");
        return finish(
            &gw,
            ledger,
            respond::error(StatusCode::NOT_FOUND, "no_route", &msg, &normalized, &id),
        );
    };
    drop(host);
    // Owned only once a filter rewrites it.
    let mut path: Cow<'_, str> = normalized;
    // Moved, not cloned: every clone of the shared `Arc` writes a line all workers write.
    let Matched {
        route,
        service: matched_service,
        captures,
    } = matched;
    ledger.route = Some(route.clone());

    // Authentication comes first, as Spring Security runs before SCG's filters; the verified identity
    // replaces any identity headers the client sent.
    let principal: Option<Principal> = match &route.auth {
        Some(auth) => match auth.authenticate(&parts, SystemTime::now()) {
            Ok(p) => {
                auth.forward(&p, &mut parts.headers);
                Some(p)
            }
            Err(rejection) => {
                ledger.decision = Some(rejection.reason);
                let resp = rejection.respond(ledger.path(), &ledger.request_id);
                return finish(&gw, ledger, resp);
            }
        },
        None => None,
    };

    // Request filters: default filters first, then the route's, in declaration order.
    let mut stripped = String::new();
    let mut max_body: Option<u64> = gw.config.max_body_bytes;
    for f in table.default_filters.iter().chain(route.filters.iter()) {
        match f {
            Filter::StripPrefix(_)
            | Filter::PrefixPath(_)
            | Filter::RewritePath { .. }
            | Filter::SetPath(_) => {
                filter::rewrite_path(f, path.to_mut(), &captures, &mut stripped);
            }
            Filter::AddRequestHeader(n, v) => {
                parts.headers.append(n, v.clone());
            }
            Filter::SetRequestHeader(n, v) => {
                parts.headers.insert(n, v.clone());
            }
            Filter::RemoveRequestHeader(n) => {
                parts.headers.remove(n);
            }
            Filter::MapRequestHeader(from, to) => {
                let values: Vec<HeaderValue> =
                    parts.headers.get_all(from).iter().cloned().collect();
                for v in values {
                    parts.headers.append(to, v);
                }
            }
            Filter::AddRequestParameter(name, value) => {
                set_query(&mut parts.uri, name, Some(value));
            }
            Filter::RemoveRequestParameter(name) => {
                set_query(&mut parts.uri, name, None);
            }
            Filter::RedirectTo(status, url, include) => {
                let mut resp = Response::new(Body::empty());
                *resp.status_mut() = *status;
                let location = match parts.uri.query().filter(|q| *include && !q.is_empty()) {
                    Some(q) => {
                        let base = url.to_str().unwrap_or("");
                        let join = if base.contains('?') { '&' } else { '?' };
                        HeaderValue::from_str(&format!("{base}{join}{q}"))
                            .unwrap_or_else(|_| url.clone())
                    }
                    None => url.clone(),
                };
                resp.headers_mut().insert(header::LOCATION, location);
                ledger.decision = Some("redirect");
                return finish(&gw, ledger, resp);
            }
            Filter::RequestSize(max) => max_body = Some(max_body.map_or(*max, |m| m.min(*max))),
            _ => {}
        }
    }
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (max_body, declared_len)
        && len > max
    {
        ledger.decision = Some("request_too_large");
        let id = ledger.request_id.clone();
        let msg = format!(
            "Request size is larger than permissible limit. Request size is {len} B where permissible limit is {max} B"
        );
        let mut resp = respond::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            &msg,
            ledger.path(),
            &id,
        );
        if let Ok(v) = HeaderValue::from_str(&msg) {
            resp.headers_mut().insert("errormessage", v);
        }
        return finish(&gw, ledger, resp);
    }

    // Rate limit, keyed per the route's resolver.
    let mut limit_decision: Option<Decision> = None;
    if let Some(limiter) = &route.limiter {
        let key = limit_key(&limiter.spec.key, &parts, client, principal.as_ref());
        let decision = match key.as_deref() {
            Some(k) => limiter.check(k).await,
            None if !limiter.spec.deny_empty_key => limiter.check("").await,
            None => {
                ledger.decision = Some("empty_key");
                let resp = respond::error(
                    StatusCode::FORBIDDEN,
                    "empty_key",
                    "no rate-limit key in request",
                    ledger.path(),
                    &ledger.request_id,
                );
                return finish(&gw, ledger, resp);
            }
        };
        ledger.limiter = Some(decision.source.as_str());
        if decision.source == Source::RedisFailClosed {
            ledger.decision = Some("rate_limiter_unavailable");
            let resp = Decision::unavailable_response(ledger.path(), &ledger.request_id);
            return finish(&gw, ledger, resp);
        }
        if !decision.allowed {
            route.metrics.rate_limited.inc();
            ledger.decision = Some("rate_limited");
            let id = ledger.request_id.clone();
            let mut resp = respond::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "rate limit exceeded",
                ledger.path(),
                &id,
            );
            rate_limit_headers(
                resp.headers_mut(),
                &decision,
                limiter.spec.replenish_rate,
                limiter.spec.requested_tokens,
            );
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(decision.retry_after_secs),
            );
            return finish(&gw, ledger, resp);
        }
        limit_decision = Some(decision).filter(Decision::counted);
    }

    // Upstream request headers.
    let carried = Carried::take(&parts.headers, parts.version);
    strip_hop_by_hop(&mut parts.headers);
    carried.restore(&mut parts.headers);
    let client_upgrade = if carried.is_upgrade() {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    // A pass over the names first: removing a header that is not there still hashes its name.
    if parts.headers.keys().any(|k| route.sensitive.contains(k)) {
        for h in &route.sensitive {
            parts.headers.remove(h);
        }
    }
    let original_host = parts.headers.remove(header::HOST).or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let hop = Hop {
        peer,
        trusted: gw.config.trusted_proxies.trusts(peer.ip()),
        proto: if gw.config.tls { "https" } else { "http" },
        host: original_host.as_ref(),
        local_port: if gw.config.tls { 443 } else { 80 },
        prefix: &stripped,
    };
    // An untrusted peer's forwarded headers are all replaced: ours go out as ready-made lines.
    ledger.via.forwarded = Forwarded::untrusted(&hop);
    match &ledger.via.forwarded {
        Some(_) => Forwarded::strip(&mut parts.headers),
        None => forwarded::apply(&mut parts.headers, &hop),
    }
    // Kept for `RewriteLocationResponseHeader` only.
    let location_host = table
        .default_filters
        .iter()
        .chain(route.filters.iter())
        .any(|f| matches!(f, Filter::RewriteLocation(_)))
        .then(|| original_host.clone())
        .flatten();
    // The upstream's header lines go out as they came unless something here reads, replaces or
    // removes a response header: a filter, CORS, the rate limit's headers. Adding one (the request
    // id, `AddResponseHeader`) goes in the response's own map, written after them.
    let sensitive_cookies =
        route.sensitive.contains(&header::SET_COOKIE) || route.sensitive.contains(&header::COOKIE);
    ledger.via.relay = (relay_heads
        && !ledger.in_fallback
        && ledger.cors.is_none()
        && route.limiter.is_none()
        && !table
            .default_filters
            .iter()
            .chain(route.filters.iter())
            .any(Filter::edits_response_headers))
    .then_some(pool::Relay {
        drop_set_cookie: sensitive_cookies,
    });
    match (&route.host, original_host) {
        (UpstreamHost::Client, Some(host)) => {
            parts.headers.insert(header::HOST, host);
        }
        (UpstreamHost::Fixed(host), _) => {
            parts.headers.insert(header::HOST, host.clone());
        }
        _ => {}
    }
    parts
        .headers
        .insert(X_REQUEST_ID, ledger.request_id.clone());

    let service = match (&route.target, matched_service) {
        (Target::Service(s), _) => Some(s.clone()),
        (Target::Discovered, s) => s,
        _ => None,
    };
    ledger.service = service.as_ref().map(|s| s.id.clone());

    let mut resp = match &service {
        Some(s) => {
            forward_to_service(&gw, &route, s, &mut ledger, &parts, body, &path, max_body).await
        }
        None => match &route.target {
            Target::Url { endpoint, base } => {
                // A URI without a path of its own (the usual case) adds nothing to copy.
                let full: Cow<'_, str> = if base.is_empty() {
                    Cow::Borrowed(&path)
                } else {
                    Cow::Owned(format!("{base}{path}"))
                };
                forward_once(
                    &gw,
                    &route,
                    endpoint,
                    &mut ledger,
                    &parts,
                    body,
                    &full,
                    max_body,
                )
                .await
            }
            // A service route always has a service.
            _ => respond::error(
                StatusCode::BAD_GATEWAY,
                "no_target",
                "route has no target",
                ledger.path(),
                &ledger.request_id,
            ),
        },
    };
    // The upstream request is written and no retry remains: its map goes back for the next message.
    keel_server::recycle_header_map(std::mem::take(&mut parts.headers));

    let switched = if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        match protocol::switch(&mut resp, client_upgrade) {
            Some(p) => Some(p),
            None => {
                ledger.decision = Some("bad_upgrade");
                let msg = "upstream switched protocols without a matching upgrade request";
                resp = respond::error(
                    StatusCode::BAD_GATEWAY,
                    "bad_upgrade",
                    msg,
                    ledger.path(),
                    &ledger.request_id,
                );
                None
            }
        }
    } else {
        None
    };

    // Response filters.
    let headers = resp.headers_mut();
    strip_hop_by_hop(headers);
    if let Some(p) = switched {
        protocol::answer_switch(headers, p);
    }
    if sensitive_cookies {
        headers.remove(header::SET_COOKIE);
    }
    let mut status_override = None;
    for f in table.default_filters.iter().chain(route.filters.iter()) {
        match f {
            Filter::AddResponseHeader(n, v) => {
                headers.append(n, v.clone());
            }
            Filter::SetResponseHeader(n, v) => {
                headers.insert(n, v.clone());
            }
            Filter::RemoveResponseHeader(n) => {
                headers.remove(n);
            }
            Filter::RewriteResponseHeader {
                name,
                regex,
                replacement,
            } => filter::rewrite_header(headers, name, regex, replacement),
            Filter::RewriteLocation(rw) => {
                let host = rw.host.as_ref().or(location_host.as_ref());
                let fixed = match (headers.get(&rw.header), host) {
                    (Some(at), Some(host)) => match (at.to_str(), host.to_str()) {
                        (Ok(at), Ok(host)) => rw.fix(at, host, ledger.path()),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(v) = fixed.and_then(|f| HeaderValue::from_str(&f).ok()) {
                    headers.insert(&rw.header, v);
                }
            }
            Filter::DedupeResponseHeader(names, strategy) => {
                for n in names {
                    strategy.apply(headers, n);
                }
            }
            Filter::SetStatus(s) => status_override = Some(*s),
            Filter::SecureHeaders => {
                for (n, v) in filter::SECURE_HEADERS {
                    if !headers.contains_key(*n) {
                        headers.insert(*n, HeaderValue::from_static(v));
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(d), Some(l)) = (limit_decision, &route.limiter) {
        rate_limit_headers(headers, &d, l.spec.replenish_rate, l.spec.requested_tokens);
    }
    headers.insert(X_REQUEST_ID, ledger.request_id.clone());
    if let Some(s) = status_override {
        *resp.status_mut() = s;
    }
    finish(&gw, ledger, resp)
}

/// Appends `name=value` to `uri`'s query, or drops every `name` pair (`value` `None`; an emptied
/// query drops the `?`). The filters' own text is valid query text.
fn set_query(uri: &mut Uri, name: &str, value: Option<&str>) {
    let query = filter::edit_query(uri.query(), name, value);
    let mut pq = String::with_capacity(uri.path().len() + 1 + query.len());
    pq.push_str(uri.path());
    if !query.is_empty() {
        pq.push('?');
        pq.push_str(&query);
    }
    let Ok(pq) = http::uri::PathAndQuery::try_from(pq) else {
        return;
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    if let Ok(u) = Uri::from_parts(parts) {
        *uri = u;
    }
}

fn bad(uri: &Uri, what: &str, headers: &HeaderMap) -> Response<Body> {
    respond::error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        what,
        uri.path(),
        &request_id(headers),
    )
}

fn host_of(parts: &http::request::Parts) -> Cow<'_, str> {
    let raw = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
        .unwrap_or("");
    let host = if raw.starts_with('[') {
        raw.split_once(']').map_or(raw, |(h, _)| &h[1..])
    } else {
        // A byte search: `str::rsplit_once` with a char pattern costs several times as much.
        raw.as_bytes()
            .iter()
            .rposition(|&b| b == b':')
            .map_or(raw, |i| &raw[..i])
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `/{service}/**` for a known service that discovery may route to.
fn discover(gw: &Gateway, table: &Table, path: &str) -> Option<Matched> {
    let first = path[1..].split('/').next().filter(|s| !s.is_empty())?;
    let service = gw.services.get(first)?;
    if !table.discovers(&service.id) {
        return None;
    }
    let route = service
        .discovery_route
        .get_or_init(|| Arc::new(Table::discovery_route(&service, &gw.compile_context(false))));
    Some(Matched {
        route: route.clone(),
        service: Some(service),
        captures: Vec::new(),
    })
}

fn limit_key(
    resolver: &KeyResolver,
    parts: &http::request::Parts,
    client: IpAddr,
    principal: Option<&Principal>,
) -> Option<String> {
    match resolver {
        KeyResolver::ClientIp => Some(client.to_string()),
        KeyResolver::Header(h) => parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        KeyResolver::ApiKey => parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                parts
                    .uri
                    .query()?
                    .split('&')
                    .find_map(|p| p.strip_prefix("apikey=").map(str::to_owned))
            })
            .filter(|k| !k.is_empty()),
        // Only a verified identity: the route compiler insists on an auth filter for this resolver.
        KeyResolver::JwtSubject => principal.and_then(|p| p.subject.clone()),
    }
}

fn rate_limit_headers(h: &mut HeaderMap, d: &Decision, rate: u32, tokens: u32) {
    h.insert("ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-replenish-rate", HeaderValue::from(rate));
    h.insert("x-ratelimit-burst-capacity", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-requested-tokens", HeaderValue::from(tokens));
}

/// The body, either buffered (replayable) or streamed once.
enum Payload {
    Replayable(Bytes),
    Stream(Option<Body>),
}

impl Payload {
    fn take(&mut self) -> pool::Outgoing {
        match self {
            Payload::Replayable(b) => pool::Outgoing::Full(b.clone()),
            Payload::Stream(s) => pool::Outgoing::Stream(s.take().unwrap_or_else(Body::empty)),
        }
    }
    fn replayable(&self) -> bool {
        matches!(self, Payload::Replayable(_))
    }
}

async fn payload(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
    max_body: Option<u64>,
) -> Result<Payload, (StatusCode, &'static str)> {
    use http_body::Body as _;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let small = match declared {
        Some(n) => n <= gw.config.max_replay_body as u64,
        None => body.is_end_stream(),
    };
    if small {
        let limit = gw
            .config
            .max_replay_body
            .min(max_body.map_or(usize::MAX, |m| m as usize));
        return match http_body_util::Limited::new(body, limit).collect().await {
            Ok(c) => Ok(Payload::Replayable(c.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err((StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"))
            }
            Err(_) => Err((StatusCode::BAD_REQUEST, "body_read_failed")),
        };
    }
    match max_body {
        // Chunked bodies are cut off at the route's limit mid-stream (the upstream sees a reset).
        Some(m) => Ok(Payload::Stream(Some(Body::new(
            http_body_util::Limited::new(body, m as usize),
        )))),
        None => Ok(Payload::Stream(Some(body))),
    }
}

enum Attempt {
    Response(Response<Body>),
    /// The request never reached the upstream (connect failure).
    NotSent(String),
    Failed(String),
    TimedOut,
}

/// One try at `endpoint`; the response head must arrive by `deadline`.
#[allow(
    clippy::too_many_arguments,
    reason = "three call sites; the request's pieces travel together"
)]
async fn attempt(
    gw: &Gateway,
    endpoint: &Endpoint,
    parts: &http::request::Parts,
    path: &str,
    body: pool::Outgoing,
    deadline: Instant,
    h2c: bool,
    via: &Via,
) -> Attempt {
    // An unchanged path reuses the request's own path-and-query (a shared buffer): no copy, no parse.
    let path_and_query = match parts.uri.path_and_query() {
        Some(pq) if pq.path() == path => Ok(pq.clone()),
        _ => {
            let mut pq =
                String::with_capacity(path.len() + 1 + parts.uri.query().map_or(0, str::len));
            pq.push_str(path);
            if let Some(q) = parts.uri.query() {
                pq.push('?');
                pq.push_str(q);
            }
            http::uri::PathAndQuery::try_from(pq)
        }
    };
    let Ok(path_and_query) = path_and_query else {
        return Attempt::Failed("cannot build upstream URI".into());
    };
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    // Plain HTTP/1.1 goes through this worker's own connections, written straight from the
    // request's parts; h2c (multiplexed) and upgrades (the connection leaves the pool) through
    // hyper's pooled client.
    if !h2c && !upgrade && endpoint.scheme == http::uri::Scheme::HTTP {
        let head = pool::Head {
            method: &parts.method,
            path: &path_and_query,
            headers: &parts.headers,
            extra: via.forwarded.as_ref().map_or(&[], Forwarded::lines),
            relay: via.relay,
        };
        let sent = pool::send(
            &endpoint.authority,
            head,
            body,
            (gw.config.connect_timeout, gw.config.upstream_idle_timeout),
            deadline,
        );
        return match sent.await {
            Ok(resp) => Attempt::Response(resp),
            Err(pool::SendError::Pool(pool::PoolError::NotSent(e))) => Attempt::NotSent(e),
            Err(pool::SendError::Pool(pool::PoolError::Failed(e))) => Attempt::Failed(e),
            Err(pool::SendError::TimedOut) => Attempt::TimedOut,
        };
    }
    let body = match body {
        pool::Outgoing::Full(b) => Body::from(b),
        pool::Outgoing::Stream(s) => s,
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.headers_mut() = parts.headers.clone();
    if let Some(f) = &via.forwarded {
        f.add_to(req.headers_mut());
    }
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(endpoint.scheme.clone());
    uri.authority = Some(endpoint.authority.clone());
    uri.path_and_query = Some(path_and_query);
    let Ok(uri) = Uri::from_parts(uri) else {
        return Attempt::Failed("cannot build upstream URI".into());
    };
    *req.uri_mut() = uri;
    let timeouts = (gw.config.connect_timeout, gw.config.upstream_idle_timeout);
    let sent = if endpoint.scheme == http::uri::Scheme::HTTPS {
        // Upgrades exist only in HTTP/1.1, so they offer only it in ALPN.
        let client = client::secure_upstream(timeouts, &gw.upstream_tls, upgrade);
        tokio::time::timeout_at(deadline, client.request(req)).await
    } else {
        // Upgrades exist only in HTTP/1.1, whatever the backend otherwise speaks.
        let client = client::upstream(timeouts, h2c && !upgrade);
        tokio::time::timeout_at(deadline, client.request(req)).await
    };
    match sent {
        Ok(Ok(resp)) => Attempt::Response(resp.map(Body::new)),
        Ok(Err(e)) if e.is_connect() => Attempt::NotSent(error_chain(&e)),
        Ok(Err(e)) => Attempt::Failed(error_chain(&e)),
        Err(_) => Attempt::TimedOut,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn into_response(resp: Response<Body>) -> Response<Body> {
    resp
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the request's pieces travel together"
)]
async fn forward_once(
    gw: &Gateway,
    route: &Route,
    endpoint: &Endpoint,
    ledger: &mut Ledger,
    parts: &http::request::Parts,
    body: Body,
    path: &str,
    max_body: Option<u64>,
) -> Response<Body> {
    let mut payload = match payload(gw, &parts.headers, body, max_body).await {
        Ok(p) => p,
        Err((status, reason)) => {
            return respond::error(status, reason, reason, ledger.path(), &ledger.request_id);
        }
    };
    ledger.attempts = 1;
    // The route's own address, read from the route when the line is written (no clone to count).
    ledger.instance = Some(Instance::RouteUri);
    let t = Instant::now();
    let result = attempt(
        gw,
        endpoint,
        parts,
        path,
        payload.take(),
        t + route.response_timeout,
        route.h2c || endpoint.h2c,
        &ledger.via,
    )
    .await;
    let end = Instant::now();
    let upstream = end - t;
    ledger.upstream = Some(upstream);
    route
        .metrics
        .upstream_latency
        .observe(upstream.as_secs_f64());
    match result {
        Attempt::Response(r) => {
            ledger.answered = Some(end);
            into_response(r)
        }
        Attempt::TimedOut => {
            upstream_failure(
                gw,
                route,
                ledger,
                parts,
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "upstream timed out",
            )
            .await
        }
        Attempt::NotSent(e) | Attempt::Failed(e) => {
            upstream_failure(
                gw,
                route,
                ledger,
                parts,
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                &e,
            )
            .await
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site; the request's pieces travel together"
)]
async fn forward_to_service(
    gw: &Gateway,
    route: &Route,
    service: &Arc<Service>,
    ledger: &mut Ledger,
    parts: &http::request::Parts,
    body: Body,
    path: &str,
    max_body: Option<u64>,
) -> Response<Body> {
    // The breaker guards the service as a whole; an open breaker answers without touching it.
    let Ok(permit) = service.breaker.try_acquire() else {
        service.publish_state();
        return upstream_failure(
            gw,
            route,
            ledger,
            parts,
            StatusCode::SERVICE_UNAVAILABLE,
            "breaker_open",
            &format!("circuit breaker for service {} is open", service.id),
        )
        .await;
    };
    // The adaptive limit sheds load before queues build up in the service.
    let mut token = match &service.limit {
        Some(l) => match l.try_acquire() {
            Ok(t) => Some(t),
            Err(_) => {
                service.breaker.cancel(permit);
                return upstream_failure(
                    gw,
                    route,
                    ledger,
                    parts,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    &format!("service {} is at its concurrency limit", service.id),
                )
                .await;
            }
        },
        None => None,
    };
    if service.instance_count() == 0 {
        service.breaker.cancel(permit);
        return no_instance(gw, route, ledger, parts, service).await;
    }
    let mut payload = match payload(gw, &parts.headers, body, max_body).await {
        Ok(p) => p,
        Err((status, reason)) => {
            service.breaker.cancel(permit);
            return respond::error(status, reason, reason, ledger.path(), &ledger.request_id);
        }
    };
    service.budget.deposit();
    let idempotent = keel_balance::Safety::of_method(&parts.method).retryable();
    let replayable = payload.replayable();
    let policy = &route.retry;
    let mut tried: Vec<InstanceId> = Vec::new();
    let t = Instant::now();
    // The pause before the next attempt, if one may follow the last, which ended as `ended` (`None`:
    // its request provably never reached the backend, so any method may be replayed).
    // `current` is the instance just tried; `tried` the ones before it. Both are looked at only
    // once a retry is due, so a request answered at once allocates nothing for this.
    let retry =
        |ended: Option<retry::Ended>, attempts: u32, tried: &[InstanceId], current: &InstanceId| {
            let allowed = match ended {
                None => true,
                Some(e) => policy.retries_after(e, &parts.method, idempotent),
            };
            if !(allowed && replayable && attempts <= policy.retries) {
                return None;
            }
            // Only when an instance not yet tried is there to take it: otherwise the answer in hand stands.
            let refs: Vec<&InstanceId> = tried.iter().chain([current]).collect();
            let candidate = service
                .balancer
                .pick_excluding_at(&refs, Instant::now())
                .filter(|p| !refs.contains(&p.id()))?;
            // Released unreported: it only proved there is one; the next attempt picks afresh.
            drop(candidate);
            let delay = policy.delay(attempts);
            (policy.in_time(t.elapsed(), delay) && service.budget.try_withdraw()).then_some(delay)
        };
    let mut last_error: (StatusCode, &'static str, String) = (
        StatusCode::SERVICE_UNAVAILABLE,
        "no_instance",
        String::new(),
    );
    let mut last_outcome = Outcome::Failure;
    let mut delay = Duration::ZERO;
    loop {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            if let Some(t) = &mut token {
                t.restart();
            }
        }
        let refs: Vec<&InstanceId> = tried.iter().collect();
        // One clock read starts the attempt's latency sample (the first attempt's is `t`), another
        // ends it and times the exchange.
        let at = if ledger.attempts == 0 {
            t
        } else {
            Instant::now()
        };
        let pick: Option<Pick<Endpoint>> = service.balancer.pick_excluding_at(&refs, at);
        let Some(pick) = pick.filter(|p| !tried.contains(p.id())) else {
            break;
        };
        drop(refs);
        ledger.attempts += 1;
        let id = pick.id().clone();
        ledger.instance = Some(Instance::Id(id.clone()));
        let result = attempt(
            gw,
            pick.endpoint(),
            parts,
            path,
            payload.take(),
            at + route.response_timeout,
            route.h2c || pick.endpoint().h2c,
            &ledger.via,
        )
        .await;
        let end = Instant::now();
        let (ended, error) = match result {
            Attempt::Response(r) => {
                let status = r.status();
                if status.is_server_error() {
                    service.balancer.failure_at(pick, end);
                } else {
                    service.balancer.success_at(pick, end);
                }
                if let Some(d) = retry(
                    Some(retry::Ended::Status(status)),
                    ledger.attempts,
                    &tried,
                    &id,
                ) {
                    tried.push(id);
                    route.metrics.retries.inc();
                    last_error = (
                        status,
                        "upstream_status",
                        format!("upstream answered {status}"),
                    );
                    last_outcome = Outcome::Failure;
                    delay = d;
                    continue;
                }
                ledger.upstream = Some(end - t);
                route
                    .metrics
                    .upstream_latency
                    .observe((end - t).as_secs_f64());
                let failed = status.is_server_error()
                    || route
                        .breaker
                        .as_ref()
                        .is_some_and(|b| b.status_codes.contains(&status));
                finish_call(
                    service,
                    permit,
                    token,
                    if failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    },
                );
                if route
                    .breaker
                    .as_ref()
                    .is_some_and(|b| b.status_codes.contains(&status))
                {
                    // Boxed, as in `upstream_failure`: rare, and large.
                    return Box::pin(fallback(
                        gw,
                        route,
                        ledger,
                        parts,
                        status,
                        "upstream_status",
                        "upstream failed",
                    ))
                    .await;
                }
                ledger.answered = Some(end);
                return into_response(r);
            }
            // Never reached the instance: safe to try another whatever the method.
            Attempt::NotSent(e) => (None, (StatusCode::BAD_GATEWAY, "connect_failed", e)),
            Attempt::Failed(e) => (
                Some(retry::Ended::Error),
                (StatusCode::BAD_GATEWAY, "upstream_error", e),
            ),
            Attempt::TimedOut => (
                Some(retry::Ended::TimedOut),
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "upstream timed out".to_owned(),
                ),
            ),
        };
        service.balancer.failure_at(pick, end);
        last_error = error;
        last_outcome = match ended {
            Some(retry::Ended::TimedOut) => Outcome::Timeout,
            _ => Outcome::Failure,
        };
        match retry(ended, ledger.attempts, &tried, &id) {
            Some(d) => {
                tried.push(id);
                route.metrics.retries.inc();
                delay = d;
            }
            None => break,
        }
    }
    ledger.upstream = Some(t.elapsed());
    if ledger.attempts == 0 {
        service.breaker.cancel(permit);
        drop(token);
        return no_instance(gw, route, ledger, parts, service).await;
    }
    finish_call(service, permit, token, last_outcome);
    let (status, reason, msg) = last_error;
    upstream_failure(gw, route, ledger, parts, status, reason, &msg).await
}

fn finish_call(
    service: &Service,
    permit: keel_resilience::Permit,
    token: Option<keel_resilience::LimitToken>,
    outcome: Outcome,
) {
    service.breaker.record(permit, outcome);
    if let Some(t) = token {
        if outcome == Outcome::Success {
            t.success()
        } else {
            t.dropped()
        }
    }
    service.publish_state();
}

/// 503, or the route's fallback: as in Spring Cloud Gateway, where the load balancer's "unable to
/// find instance" is raised inside the CircuitBreaker filter's chain.
async fn no_instance(
    gw: &Gateway,
    route: &Route,
    ledger: &mut Ledger,
    parts: &http::request::Parts,
    service: &Service,
) -> Response<Body> {
    let msg = format!("no healthy instance of service {}", service.id);
    upstream_failure(
        gw,
        route,
        ledger,
        parts,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_instance",
        &msg,
    )
    .await
}

fn finish(gw: &Gateway, mut ledger: Ledger, mut resp: Response<Body>) -> Response<Body> {
    match ledger.cors.take() {
        Some((cors, Some(allow))) => cors.decorate(resp.headers_mut(), allow),
        Some((_, None)) => cors::vary(resp.headers_mut()),
        None => {}
    }
    let end = ledger.answered.unwrap_or_else(Instant::now);
    let total = end - ledger.start;
    let status = resp.status().as_u16();
    if let Some(r) = &ledger.route {
        r.metrics.count(status);
        r.metrics.gateway_latency.observe(total.as_secs_f64());
    }
    if gw.access_log.enabled() {
        let ts = crate::access_log::unix_millis(end);
        gw.access_log.record(&Line {
            ts,
            request_id: ledger.request_id.to_str().unwrap_or(""),
            route: ledger.route.as_ref().map(|r| &*r.id),
            service: ledger.service.as_deref(),
            instance: ledger.instance.as_ref().and_then(|i| match i {
                Instance::Id(id) => Some(id.as_str()),
                Instance::RouteUri => match &ledger.route.as_ref()?.target {
                    Target::Url { endpoint, .. } => Some(endpoint.authority.as_str()),
                    _ => None,
                },
            }),
            method: ledger.method.as_str(),
            path: ledger
                .normalized
                .as_deref()
                .unwrap_or_else(|| ledger.uri.path()),
            status,
            bytes: match resp.extensions().get::<keel_server::RawHeaders>() {
                Some(raw) => raw.content_length(),
                None => resp
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok()),
            },
            // Whole microseconds: `0.852`, not `0.8517779999999999` (shorter to write and to read).
            total_us: total.as_micros() as u64,
            upstream_us: ledger.upstream.map(|d| d.as_micros() as u64),
            client: ledger.client,
            attempts: ledger.attempts,
            decision: ledger.decision,
            limiter: ledger.limiter,
        });
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Custom"),
        );
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade,x-second"),
        );
        h.insert("x-custom", HeaderValue::from_static("1"));
        h.insert("x-second", HeaderValue::from_static("2"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-t"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic x"),
        );
        h.insert(PROXY_CONNECTION, HeaderValue::from_static("close"));
        h.insert("x-kept", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);

        // Nothing hop-by-hop: untouched.
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
