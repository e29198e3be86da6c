//! Per-route authentication (`JwtAuth`, `ApiKeyAuth`, `BasicAuth` filters): verifying callers,
//! answering 401/403 with a JSON error, and forwarding the verified identity as headers.
//!
//! A route has at most one authenticator. Identity headers it forwards are always removed from the
//! incoming request first, so a client can never supply its own `X-Auth-Subject`.

mod credentials;
mod jwt;

use std::time::SystemTime;

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::definition::Spec;
use crate::filter::FilterError;
use crate::respond;

pub use credentials::{ApiKeyAuth, BasicAuth};
pub use jwt::JwtAuth;

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// JWT `sub`, API-key consumer or basic-auth user; the rate limiter's `principal` key.
    pub subject: Option<String>,
    /// A JWT's claims (empty for other methods).
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 401 (no or bad credentials) or 403 (valid credentials without the required claims).
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
    /// `WWW-Authenticate` for 401s.
    pub challenge: Option<HeaderValue>,
}

impl Rejection {
    pub(crate) fn unauthorized(
        reason: &'static str,
        message: impl Into<String>,
        challenge: &HeaderValue,
    ) -> Self {
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            reason,
            message: message.into(),
            challenge: Some(challenge.clone()),
        }
    }

    pub(crate) fn forbidden(reason: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::FORBIDDEN,
            reason,
            message: message.into(),
            challenge: None,
        }
    }

    /// The JSON error answer.
    pub fn respond(&self, path: &str, request_id: &HeaderValue) -> Response<Body> {
        let mut resp = respond::error(self.status, self.reason, &self.message, path, request_id);
        if let Some(c) = &self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, c.clone());
        }
        resp
    }
}

/// One route's authenticator.
#[derive(Debug)]
pub enum Authenticator {
    Jwt(JwtAuth),
    ApiKey(ApiKeyAuth),
    Basic(BasicAuth),
}

impl Authenticator {
    /// Compiles an auth filter; `None` when `spec` is not one.
    pub fn compile(spec: &Spec) -> Option<Result<Authenticator, FilterError>> {
        Some(match spec.name.as_str() {
            "JwtAuth" => JwtAuth::compile(spec).map(Authenticator::Jwt),
            "ApiKeyAuth" => ApiKeyAuth::compile(spec).map(Authenticator::ApiKey),
            "BasicAuth" => BasicAuth::compile(spec).map(Authenticator::Basic),
            _ => return None,
        })
    }

    /// Verifies the request's credentials at wall-clock time `now`.
    pub fn authenticate(
        &self,
        parts: &http::request::Parts,
        now: SystemTime,
    ) -> Result<Principal, Rejection> {
        match self {
            Authenticator::Jwt(j) => j.authenticate(&parts.headers, now),
            Authenticator::ApiKey(k) => k.authenticate(parts),
            Authenticator::Basic(b) => b.authenticate(&parts.headers),
        }
    }

    /// Replaces identity headers with the verified ones and hides credentials the route hides.
    pub fn forward(&self, principal: &Principal, headers: &mut HeaderMap) {
        let (map, hide): (&[(String, HeaderName)], Option<&HeaderName>) = match self {
            Authenticator::Jwt(j) => (&j.claim_headers, j.hide_credentials.then_some(&j.header)),
            Authenticator::ApiKey(k) => {
                (&k.identity_headers, k.hide_credentials.then_some(&k.header))
            }
            Authenticator::Basic(b) => (
                &b.identity_headers,
                b.hide_credentials.then_some(&header::AUTHORIZATION),
            ),
        };
        if let Some(h) = hide {
            headers.remove(h);
        }
        for (claim, name) in map {
            headers.remove(name);
            let value = if claim == "sub" && principal.claims.is_empty() {
                principal.subject.clone()
            } else {
                principal.claims.get(claim).map(claim_text)
            };
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name.clone(), v);
            }
        }
    }
}

/// A claim as header text: strings as they are, arrays space-separated (like `scope`), others as JSON.
fn claim_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(claim_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

/// `claim:Header, claim:Header` pairs (shared by all methods; non-JWT methods know only `sub`).
pub(crate) fn identity_headers(
    spec: &Spec,
    arg: &str,
    default: &[(&str, &str)],
) -> Result<Vec<(String, HeaderName)>, FilterError> {
    let pairs: Vec<(String, String)> =
        if named(spec, arg).is_none() && named_list(spec, arg).is_empty() {
            default
                .iter()
                .map(|(c, h)| ((*c).to_owned(), (*h).to_owned()))
                .collect()
        } else {
            named_list(spec, arg)
                .into_iter()
                .map(|p| {
                    p.split_once(':')
                        .map(|(c, h)| (c.trim().to_owned(), h.trim().to_owned()))
                        .ok_or_else(|| {
                            arg_error(
                                spec,
                                format!("`{arg}` entries are claim:Header-Name, not `{p}`"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        };
    pairs
        .into_iter()
        .map(|(c, h)| {
            HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map(|n| (c, n))
                .map_err(|e| arg_error(spec, format!("header `{h}`: {e}")))
        })
        .collect()
}

pub(crate) fn arg_error(spec: &Spec, reason: impl Into<String>) -> FilterError {
    FilterError {
        name: spec.name.clone(),
        reason: reason.into(),
    }
}

/// A named argument only (auth filters take no positional arguments: secrets must be labelled).
pub(crate) fn named<'s>(spec: &'s Spec, name: &str) -> Option<&'s str> {
    spec.note(name);
    spec.args
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A comma-separated or indexed list argument, named only.
pub(crate) fn named_list<'s>(spec: &'s Spec, name: &str) -> Vec<&'s str> {
    spec.note(name);
    let lower = name.to_ascii_lowercase();
    spec.args
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == lower || k.starts_with(&format!("{lower}["))
        })
        .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|s| !s.is_empty()))
        .collect()
}

pub(crate) fn flag(spec: &Spec, name: &str, default: bool) -> Result<bool, FilterError> {
    match named(spec, name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(arg_error(
            spec,
            format!("`{name}` must be true or false, not `{v}`"),
        )),
    }
}

/// Equal-length-independent comparison that does not stop at the first differing byte.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
