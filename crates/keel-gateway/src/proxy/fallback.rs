//! Failure answers: plain JSON errors, or the route's CircuitBreaker fallback (forward, URL or static).

use std::net::SocketAddr;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};

use super::{Attempt, Ledger, attempt, handle, into_response};
use crate::Gateway;
use crate::respond;
use crate::table::Route;
use crate::upstream::Endpoint;

#[allow(
    clippy::too_many_arguments,
    reason = "one call site shape for every failure"
)]
pub(super) async fn upstream_failure(
    gw: &Gateway,
    route: &Route,
    ledger: &mut Ledger,
    parts: &http::request::Parts,
    status: StatusCode,
    reason: &'static str,
    message: &str,
) -> Response<Body> {
    if route.breaker.is_some() && !ledger.in_fallback {
        // Boxed: the fallback's state is large and rare, and every future awaiting this one (the
        // whole request path) would otherwise be sized for it and copied at that size.
        return Box::pin(fallback(gw, route, ledger, parts, status, reason, message)).await;
    }
    ledger.decision = Some(reason);
    respond::error(status, reason, message, ledger.path(), &ledger.request_id)
}

/// The route's CircuitBreaker fallback: a forward inside the gateway, a URL, or a static answer.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site shape for every failure"
)]
pub(super) async fn fallback(
    gw: &Gateway,
    route: &Route,
    ledger: &mut Ledger,
    parts: &http::request::Parts,
    status: StatusCode,
    reason: &'static str,
    message: &str,
) -> Response<Body> {
    let Some(spec) = route.breaker.as_ref().filter(|_| !ledger.in_fallback) else {
        ledger.decision = Some(reason);
        return respond::error(status, reason, message, ledger.path(), &ledger.request_id);
    };
    ledger.decision = Some("fallback");
    let uri = spec.fallback_uri.as_deref();
    let mut resp = if let Some(fwd) = uri.and_then(|u| u.strip_prefix("forward:")) {
        // Re-enter the gateway with the fallback path; one level only, so fallbacks cannot loop.
        let mut req = Request::new(Body::empty());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = fwd.parse().unwrap_or_else(|_| Uri::from_static("/"));
        *req.headers_mut() = parts.headers.clone();
        req.headers_mut().remove(header::CONTENT_LENGTH);
        Box::pin(handle_fallback(gw.clone(), req)).await
    } else if let Some(url) = uri {
        match url.parse::<Uri>() {
            Ok(u) if u.authority().is_some() => {
                let endpoint = Endpoint {
                    scheme: u.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
                    authority: u
                        .authority()
                        .cloned()
                        .unwrap_or_else(|| http::uri::Authority::from_static("127.0.0.1")),
                    h2c: false,
                };
                let mut p = http::Request::new(()).into_parts().0;
                p.method = parts.method.clone();
                p.headers = parts.headers.clone();
                p.headers.remove(header::CONTENT_LENGTH);
                p.uri = u.path_and_query().map_or(Uri::from_static("/"), |pq| {
                    pq.as_str()
                        .parse()
                        .unwrap_or_else(|_| Uri::from_static("/"))
                });
                let fpath = p.uri.path().to_owned();
                match attempt(
                    gw,
                    &endpoint,
                    &p,
                    &fpath,
                    crate::pool::Outgoing::Full(bytes::Bytes::new()),
                    tokio::time::Instant::now() + route.response_timeout,
                    false,
                    &ledger.via.for_fallback(),
                )
                .await
                {
                    Attempt::Response(r) => into_response(r),
                    _ => respond::error(status, reason, message, ledger.path(), &ledger.request_id),
                }
            }
            _ => respond::error(status, reason, message, ledger.path(), &ledger.request_id),
        }
    } else {
        let mut r = Response::new(Body::from(spec.fallback_body.clone().unwrap_or_default()));
        *r.status_mut() = spec
            .fallback_status
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        r
    };
    if let Ok(v) = HeaderValue::from_str(reason) {
        resp.headers_mut().insert("x-keel-fallback", v);
    }
    resp
}

async fn handle_fallback(gw: Gateway, req: Request<Body>) -> Response<Body> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 0));
    let (parts, body) = req.into_parts();
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(FallbackDepth);
    handle(gw, peer, req, false).await
}

/// Marks a request that is already a fallback, so its own failure does not fall back again.
#[derive(Clone, Copy, Debug)]
pub(super) struct FallbackDepth;
