//! `LbRequest`: one call to `lb://app/path`, cloneable so retries can resend it, and its builder.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use keel_balance::{InstanceId, Safety};
use keel_eureka::AppName;
use keel_resilience::layer::BoxFallback;

use super::{CallError, LbClient};

/// A request for a service, not an address. Clones share [`Tried`], so every attempt of one
/// call knows which instances earlier attempts used.
#[derive(Debug, Clone)]
pub struct LbRequest {
    pub method: Method,
    pub app: AppName,
    /// `/path?query` as given after `lb://app`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether a retry may send it again: idempotent methods, or marked safe by the caller.
    pub safety: Safety,
    pub(crate) tried: Tried,
    /// Set by [`LbClient::send_or`]; the command layer takes it, so it runs inside the command.
    pub(crate) fallback: FallbackSlot,
}

impl LbRequest {
    /// Parses `lb://app/path?query`.
    pub fn new(method: Method, url: &str) -> Result<Self, CallError> {
        let bad = |reason| CallError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("lb://")
            .ok_or_else(|| bad("expected lb://service/path"))?;
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (app, path) = rest.split_at(split);
        let app = AppName::parse(app).map_err(|_| bad("bad service name"))?;
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        // Checked once here so the stack never meets an unusable path.
        http::uri::PathAndQuery::try_from(path_and_query.as_str()).map_err(|_| bad("bad path"))?;
        Ok(Self {
            safety: Safety::of_method(&method),
            method,
            app,
            path_and_query,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            tried: Tried::default(),
            fallback: FallbackSlot::default(),
        })
    }
}

/// Instances already used by attempts of one call, so a retry goes elsewhere.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tried(Arc<Mutex<Vec<InstanceId>>>);

impl Tried {
    pub fn get(&self) -> Vec<InstanceId> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn push(&self, id: InstanceId) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
    }
}

/// A request's own fallback, shared by its clones (only the original reaches the command layer).
#[derive(Clone, Default)]
pub(crate) struct FallbackSlot(Arc<Mutex<Option<BoxFallback<http::Response<Bytes>>>>>);

impl std::fmt::Debug for FallbackSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FallbackSlot")
    }
}

impl FallbackSlot {
    pub fn set(&self, fallback: BoxFallback<http::Response<Bytes>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(fallback);
    }
}

/// The command layer's source of per-request fallbacks.
pub(crate) fn take_fallback(req: &mut LbRequest) -> Option<BoxFallback<http::Response<Bytes>>> {
    req.fallback
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// Builds an [`LbRequest`] and sends it through the client's stack.
#[derive(Debug)]
#[must_use = "a request does nothing until sent"]
pub struct RequestBuilder {
    pub(super) client: LbClient,
    pub(super) request: Result<LbRequest, CallError>,
}

impl RequestBuilder {
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if let Ok(r) = &mut self.request {
            r.headers.append(name, value);
        }
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Ok(r) = &mut self.request {
            r.body = body.into();
        }
        self
    }

    /// Allows retries of a non-idempotent request (e.g. it carries an idempotency key).
    pub fn retry_safe(mut self) -> Self {
        if let Ok(r) = &mut self.request
            && !r.safety.retryable()
        {
            r.safety = Safety::MarkedSafe;
        }
        self
    }

    pub async fn send(self) -> Result<http::Response<Bytes>, CallError> {
        self.client.send(self.request?).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lb_urls_parse_once() {
        let r = LbRequest::new(Method::GET, "lb://demo-callee/hello?x=1").unwrap();
        assert_eq!(r.app.as_str(), "DEMO-CALLEE");
        assert_eq!(r.path_and_query, "/hello?x=1");
        assert_eq!(r.safety, Safety::Idempotent);
        assert_eq!(
            LbRequest::new(Method::GET, "lb://a")
                .unwrap()
                .path_and_query,
            "/"
        );
        assert_eq!(
            LbRequest::new(Method::POST, "lb://a?q")
                .unwrap()
                .path_and_query,
            "/?q"
        );
        assert_eq!(
            LbRequest::new(Method::POST, "lb://a/").unwrap().safety,
            Safety::Unsafe
        );
        assert!(LbRequest::new(Method::GET, "http://a/").is_err());
        assert!(LbRequest::new(Method::GET, "lb:///x").is_err());
    }
}
