//! The dashboard's HTTP surface: the page, its JSON feeds, the live event stream, the login
//! flow and the one action (status override).
#![allow(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, built only when a request is refused"
)]

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use keel_eureka::{AppName, InstanceId, InstanceStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{self, forbidden};
use crate::sampler::Frame;
use crate::{Dashboard, Peer};

/// `GET /` (the page) and everything under `/keel/v1/dashboard/`.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/keel/v1/dashboard/app.js", get(script))
        .route("/keel/v1/dashboard/app.css", get(style))
        .route("/keel/v1/dashboard/session", get(session))
        .route("/keel/v1/dashboard/login", post(login))
        .route("/keel/v1/dashboard/logout", post(logout))
        .route("/keel/v1/dashboard/health", get(health))
        .route("/keel/v1/dashboard/state", get(state))
        .route("/keel/v1/dashboard/events", get(events))
        .route("/keel/v1/dashboard/config/merged", get(config_merged))
        .route("/keel/v1/dashboard/config/history", get(config_history))
        .route("/keel/v1/dashboard/config/diff", get(config_diff))
        .route("/keel/v1/dashboard/status", post(set_status))
        .with_state(dashboard)
}

const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

async fn page() -> impl IntoResponse {
    (
        [
            NO_STORE,
            // The page loads only its own script and style, and may not be framed.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            ),
        ],
        Html(include_str!("page.html")),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            NO_STORE,
        ],
        include_str!("app.js"),
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            NO_STORE,
        ],
        include_str!("app.css"),
    )
}

/// Reads are open unless the registry protects reads; then a logged-in session is needed.
fn check_read(d: &Dashboard, headers: &HeaderMap) -> Result<(), Response> {
    let auth = &d.inner.config.auth;
    if !auth.is_enabled() || !auth.protect_reads {
        return Ok(());
    }
    match d.inner.sessions.get(headers) {
        Some(s) if s.user.is_some() => Ok(()),
        _ => Err(forbidden(
            StatusCode::UNAUTHORIZED,
            "log in to see the dashboard",
        )),
    }
}

/// `GET /keel/v1/dashboard/session`: creates the session cookie and tells the page whether it
/// must log in, and the CSRF token its writes carry.
async fn session(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    let (s, cookie) = d.inner.sessions.get_or_create(&headers);
    let auth = &d.inner.config.auth;
    let body = Json(json!({
        "authRequired": auth.is_enabled(),
        "readsProtected": auth.is_enabled() && auth.protect_reads,
        "user": s.user,
        "csrf": s.csrf,
    }));
    let mut response = ([NO_STORE], body).into_response();
    if let Some(c) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

async fn login(State(d): State<Dashboard>, headers: HeaderMap, Json(l): Json<Login>) -> Response {
    match auth::login(
        &d.inner.sessions,
        &d.inner.config.auth,
        &headers,
        &l.user,
        &l.password,
    ) {
        Ok(()) => {
            let s = d.inner.sessions.get(&headers);
            Json(
                json!({"user": s.as_ref().and_then(|s| s.user.clone()), "csrf": s.map(|s| s.csrf)}),
            )
            .into_response()
        }
        Err(r) => r,
    }
}

async fn logout(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match auth::logout(&d.inner.sessions, &headers) {
        Ok(()) => {
            let s = d.inner.sessions.get(&headers);
            Json(json!({"user": null, "csrf": s.map(|s| s.csrf)})).into_response()
        }
        Err(r) => r,
    }
}

/// Every watched component's health; an unreachable one is reported DOWN with the reason.
async fn health(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    let mut out = serde_json::Map::new();
    for watched in d.inner.components.iter() {
        let value = match watched.health.health().await {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(e) => json!({"status": "DOWN", "error": e.to_string()}),
        };
        out.insert(watched.name.clone(), value);
    }
    Json(Value::Object(out)).into_response()
}

/// `GET /keel/v1/dashboard/state`: the latest frame (waits for the first one after start).
async fn state(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    d.ensure_started();
    let mut frame = d.frame();
    if frame.seq == 0 {
        frame = d.next_frame().await;
    }
    Json(&*frame).into_response()
}

/// `GET /keel/v1/dashboard/events`: `event: registry|traffic|config|health` with the view's
/// JSON, first all of them, then each one whenever it changes.
async fn events(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    d.ensure_started();
    let rx = d.inner.frames.subscribe();
    let end = d.streams_end();
    let sent: Vec<(String, String)> = Vec::new();
    let stream = futures_util::stream::unfold(
        (rx, sent, true, Vec::<Event>::new()),
        move |(mut rx, mut sent, mut first, mut pending)| {
            let end = end.clone();
            async move {
                loop {
                    if let Some(e) = pending.pop() {
                        return Some((Ok::<_, Infallible>(e), (rx, sent, first, pending)));
                    }
                    if !first {
                        tokio::select! {
                            () = end.cancelled() => return None,
                            changed = rx.changed() => if changed.is_err() { return None },
                        }
                    }
                    first = false;
                    let frame: Arc<Frame> = rx.borrow_and_update().clone();
                    if frame.seq == 0 {
                        continue;
                    }
                    for (name, value) in frame.parts() {
                        let text = value.to_string();
                        match sent.iter_mut().find(|(n, _)| n == name) {
                            Some((_, old)) if *old == text => continue,
                            Some((_, old)) => *old = text.clone(),
                            None => sent.push((name.to_owned(), text.clone())),
                        }
                        pending.insert(0, Event::default().event(name).data(text));
                    }
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn no_config() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "no config centre (none registered as CONFIGSERVER)"})),
    )
        .into_response()
}

fn source_error(e: &crate::SourceError) -> Response {
    let status = match e {
        crate::SourceError::NotFound { .. } => StatusCode::NOT_FOUND,
        crate::SourceError::Rejected { .. } | crate::SourceError::BadUrl { .. } => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::BAD_GATEWAY,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn config_view(d: &Dashboard) -> Option<Arc<dyn crate::ConfigView>> {
    match &d.inner.config_server {
        Peer::Given(c) => Some(c.clone()),
        Peer::Discover => crate::sampler::discovered_config(&d.inner),
    }
}

#[derive(Deserialize)]
struct ConfigQuery {
    app: String,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

async fn config_merged(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    let Some(config) = config_view(&d) else {
        return no_config();
    };
    let profile = q
        .profile
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    let label = q.label.as_deref().filter(|l| !l.is_empty());
    match config.merged(&q.app, profile, label).await {
        Ok(m) => Json(m).into_response(),
        Err(e) => source_error(&e),
    }
}

async fn config_history(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    let Some(config) = config_view(&d) else {
        return no_config();
    };
    match config.history(&q.app).await {
        Ok(h) => Json(h).into_response(),
        Err(e) => source_error(&e),
    }
}

async fn config_diff(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> Response {
    if let Err(r) = check_read(&d, &headers) {
        return r;
    }
    let Some(config) = config_view(&d) else {
        return no_config();
    };
    let (Some(from), Some(to)) = (q.from.as_deref(), q.to.as_deref()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "from and to are required"})),
        )
            .into_response();
    };
    let profile = q
        .profile
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    match config.diff(from, to, &q.app, profile).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => source_error(&e),
    }
}

#[derive(Deserialize)]
struct StatusChange {
    app: String,
    id: String,
    status: String,
}

/// `POST /keel/v1/dashboard/status` `{"app","id","status"}`: `OUT_OF_SERVICE` takes an
/// instance out of rotation, `UP` puts it back.
async fn set_status(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Json(change): Json<StatusChange>,
) -> Response {
    let session = match auth::check_write(&d.inner.sessions, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if d.inner.config.auth.is_enabled() && session.user.is_none() {
        return forbidden(StatusCode::UNAUTHORIZED, "log in to change instances");
    }
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({"error": m}))).into_response();
    let app = match AppName::parse(&change.app) {
        Ok(a) => a,
        Err(e) => return bad(e.to_string()),
    };
    let id = match InstanceId::parse(&change.id) {
        Ok(i) => i,
        Err(e) => return bad(e.to_string()),
    };
    let status = match InstanceStatus::parse(&change.status) {
        Some(s @ (InstanceStatus::Up | InstanceStatus::OutOfService)) => s,
        _ => return bad("status must be UP or OUT_OF_SERVICE".to_owned()),
    };
    match d.inner.registry.set_status(&app, &id, status).await {
        Ok(()) => {
            tracing::info!(app = %app, instance = %id, status = %status, user = ?session.user, "status changed from the dashboard");
            Json(
                json!({"app": app.to_string(), "id": id.to_string(), "status": status.to_string()}),
            )
            .into_response()
        }
        Err(e) => source_error(&e),
    }
}
