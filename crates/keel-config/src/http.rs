//! The HTTP surface: Spring Cloud Config's routes plus Keel's watch, history, diff and watchers.
//!
//! Spring's GET routes overlap (`/{name}/{profiles}` against `/{label}/{name}-{profiles}.yml`,
//! `/{name}/{profile}/{label}` against resources), so one dispatcher splits the raw path itself:
//! each segment is percent-decoded exactly once and checked before anything is looked up.

mod auth;
mod cipher;
mod environment;
mod history;
mod monitor;
mod render;
mod resource;
mod watch;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ServeError;
use crate::server::ConfigServer;

pub(crate) use auth::{Access, base64, constant_time_eq};

/// The config server's HTTP routes.
pub fn router(server: ConfigServer) -> Router {
    Router::new()
        .route("/encrypt", post(cipher::encrypt))
        .route("/encrypt/{name}/{profiles}", post(cipher::encrypt))
        .route("/decrypt", post(cipher::decrypt))
        .route("/decrypt/{name}/{profiles}", post(cipher::decrypt))
        .route("/encrypt/status", get(cipher::status))
        .route("/monitor", post(monitor::monitor))
        .route("/keel/v1/watch", get(watch::watch))
        .route("/keel/v1/watchers", get(history::watchers))
        .route("/keel/v1/history/{application}", get(history::history))
        .route("/keel/v1/diff/{from}/{to}", get(history::diff))
        .route("/keel/v1/status", get(history::status))
        .fallback(dispatch)
        .with_state(server)
}

/// A Spring Boot error body (`{"timestamp","status","error","message","path"}`).
pub(crate) fn boot_error(
    server: &ConfigServer,
    status: StatusCode,
    message: &str,
    path: &str,
) -> Response {
    let body = serde_json::json!({
        "timestamp": crate::time::iso8601(server.now()),
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or(""),
        "message": message,
        "path": path,
    });
    (status, axum::Json(body)).into_response()
}

pub(crate) fn serve_error(server: &ConfigServer, e: &ServeError, path: &str) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(path, error = %e, "config request not served");
    }
    boot_error(server, status, &e.to_string(), path)
}

pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Decodes one path segment once; refuses what could climb out of a tree or smuggle a second
/// encoding (`..%252F`) past the checks.
fn decode_segment(raw: &str) -> Result<String, ServeError> {
    let bad = || ServeError::BadRequest(format!("invalid path segment {raw:?}"));
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad())?
        .into_owned();
    // An encoded `/` (`%2F`) is refused as servlet containers refuse it; `(_)` is the
    // supported way to put a slash in a name or label.
    if decoded.contains("..") || decoded.contains(['\0', '\\', '/']) {
        return Err(bad());
    }
    if decoded.contains('%') {
        let twice = percent_encoding::percent_decode_str(&decoded).decode_utf8_lossy();
        if twice.contains("..") || twice.contains('/') || twice.contains('\\') {
            return Err(bad());
        }
    }
    Ok(decoded)
}

const FLAT_EXTENSIONS: [&str; 4] = [".yml", ".yaml", ".properties", ".json"];

fn flat_extension(segment: &str) -> Option<&'static str> {
    FLAT_EXTENSIONS.into_iter().find(|e| segment.ends_with(e))
}

async fn dispatch(State(server): State<ConfigServer>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return boot_error(
            &server,
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            &path,
        );
    }
    if let Err(r) = auth::check(&server, Access::Read, request.headers(), &path) {
        return r;
    }
    let query = request.uri().query().unwrap_or("").to_owned();
    let mut raw: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if raw.last() == Some(&"") {
        raw.pop();
    }
    let segments: Result<Vec<String>, ServeError> = raw.iter().map(|s| decode_segment(s)).collect();
    let segments = match segments {
        Ok(s) => s,
        Err(e) => return serve_error(&server, &e, &path),
    };
    let use_default_label = query_flag(&query, "useDefaultLabel");
    let headers = request.headers();
    let result = match segments.as_slice() {
        [] => Err(ServeError::NotFound(path.clone())),
        [one] if flat_extension(one).is_some() => render::flat(&server, None, one, &query).await,
        [label, one] if flat_extension(one).is_some() => {
            render::flat(&server, Some(label), one, &query).await
        }
        [app, profiles] => environment::environment(&server, app, profiles, None, headers).await,
        [app, profile, rest @ ..] if use_default_label => {
            resource::resource(&server, app, profile, None, rest, &query).await
        }
        [app, profiles, label] => {
            environment::environment(&server, app, profiles, Some(label), headers).await
        }
        [app, profile, label, rest @ ..] => {
            resource::resource(&server, app, profile, Some(label), rest, &query).await
        }
        [_] => Err(ServeError::NotFound(path.clone())),
    };
    match result {
        Ok(r) => r,
        Err(e) => serve_error(&server, &e, &path),
    }
}

/// Whether `name` is present in the query (with any value but `false`).
pub(crate) fn query_flag(query: &str, name: &str) -> bool {
    query_param(query, name).is_some_and(|v| v != "false")
}

/// The first value of `name` in a query string, percent-decoded (`+` as space).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
