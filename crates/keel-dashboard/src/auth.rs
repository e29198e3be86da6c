//! Sessions for the page: a login when credentials are configured, and CSRF protection for
//! every state-changing request (same-origin `Origin` header and a per-session token).
#![allow(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, built only when a request is refused"
)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// Who may change things (and, with `protect_reads`, look). Empty means open, as the registry.
#[derive(Clone, Debug, Default)]
pub struct DashboardAuth {
    /// Accepted as the password with any user name.
    pub tokens: Vec<String>,
    pub users: Vec<(String, String)>,
    pub protect_reads: bool,
}

impl DashboardAuth {
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.users.is_empty()
    }

    fn accepts(&self, user: &str, password: &str) -> bool {
        let token = self.tokens.iter().any(|t| constant_eq(t, password));
        token
            || self
                .users
                .iter()
                .any(|(u, p)| constant_eq(u, user) & constant_eq(p, password))
    }
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
fn constant_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) const COOKIE: &str = "keel_session";
pub(crate) const CSRF_HEADER: &str = "x-keel-csrf";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub csrf: String,
    pub user: Option<String>,
    expires: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 24];
    // Without OS randomness no session can be trusted; an all-zero id would still be refused
    // by `get` because it is never inserted twice, but fail loudly in logs.
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no OS randomness for dashboard sessions");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let now = Instant::now();
        let map = self.lock();
        map.get(&id).filter(|s| s.expires > now).cloned()
    }

    /// The caller's session, or a new anonymous one with its `Set-Cookie` value.
    pub fn get_or_create(&self, headers: &HeaderMap) -> (Session, Option<HeaderValue>) {
        if let Some(s) = self.get(headers) {
            return (s, None);
        }
        let now = Instant::now();
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            user: None,
            expires: now + SESSION_TTL,
        };
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            // Anonymous sessions are cheap to recreate; logged-in ones are kept.
            map.retain(|_, s| s.user.is_some());
        }
        map.insert(id.clone(), session.clone());
        let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict");
        (session, HeaderValue::from_str(&cookie).ok())
    }

    fn set_user(&self, headers: &HeaderMap, user: Option<String>) {
        if let Some(id) = cookie(headers, COOKIE)
            && let Some(s) = self.lock().get_mut(&id)
        {
            s.user = user;
            s.csrf = random_hex();
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// 403 with a reason the page can show.
pub(crate) fn forbidden(status: StatusCode, reason: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": reason}))).into_response()
}

/// A state-changing request must come from this very origin (the `Origin` header names the
/// `Host` it was sent to) and carry the session's CSRF token.
pub(crate) fn check_write(sessions: &Sessions, headers: &HeaderMap) -> Result<Session, Response> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let same_origin = match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        _ => false,
    };
    if !same_origin {
        return Err(forbidden(
            StatusCode::FORBIDDEN,
            "cross-origin request refused (Origin must match Host)",
        ));
    }
    let Some(session) = sessions.get(headers) else {
        return Err(forbidden(
            StatusCode::FORBIDDEN,
            "no session; reload the page",
        ));
    };
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| constant_eq(t, &session.csrf)) {
        return Err(forbidden(
            StatusCode::FORBIDDEN,
            "missing or stale CSRF token",
        ));
    }
    Ok(session)
}

/// Checks a login request's credentials and marks the session logged in.
pub(crate) fn login(
    sessions: &Sessions,
    auth: &DashboardAuth,
    headers: &HeaderMap,
    user: &str,
    password: &str,
) -> Result<(), Response> {
    check_write(sessions, headers)?;
    if !auth.accepts(user, password) {
        return Err(forbidden(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    }
    sessions.set_user(headers, Some(user.to_owned()));
    Ok(())
}

pub(crate) fn logout(sessions: &Sessions, headers: &HeaderMap) -> Result<(), Response> {
    check_write(sessions, headers)?;
    sessions.set_user(headers, None);
    Ok(())
}
