//! Keel's API for people and the dashboard: history, diff, watchers and refresh status.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keel_properties::MergedConfig;

use crate::error::ServeError;
use crate::refresh::Origin;
use crate::server::ConfigServer;

use super::Access;

const DEFAULT_HISTORY: usize = 50;
const MAX_HISTORY: usize = 1000;

/// `GET /keel/v1/history/{application}?label=&limit=`: commits that touched the application's
/// files (its own and the shared `application*` ones), newest first.
pub(crate) async fn history(
    State(server): State<ConfigServer>,
    Path(application): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if let Err(r) = super::auth::check(&server, Access::Read, &headers, path) {
        return r;
    }
    let query = uri.query().unwrap_or("");
    let Origin::Git(mirror) = &server.inner.origin else {
        return super::serve_error(
            &server,
            &ServeError::NotFound("history needs a git backend".into()),
            path,
        );
    };
    let label = super::query_param(query, "label")
        .unwrap_or_else(|| server.inner.config.default_label.clone());
    let limit = super::query_param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(DEFAULT_HISTORY)
        .min(MAX_HISTORY);
    let app = match keel_properties::AppNames::parse(&application) {
        Ok(a) => a,
        Err(e) => return super::serve_error(&server, &e.into(), path),
    };
    let tip = match server.snapshot_for(&label.replace("(_)", "/")).await {
        Ok(s) => s,
        Err(e) => return super::serve_error(&server, &e, path),
    };
    let Ok(tip_id) = gix::ObjectId::from_hex(tip.id.as_bytes()) else {
        return super::serve_error(&server, &ServeError::NotFound(tip.id.clone()), path);
    };
    let mirror = std::sync::Arc::clone(mirror);
    // The walk reads local objects only (no fetch); it still runs off the async threads.
    let log = tokio::task::spawn_blocking(move || mirror.log(tip_id, limit * 20)).await;
    let log = match log {
        Ok(Ok(log)) => log,
        Ok(Err(e)) => {
            return super::serve_error(&server, &ServeError::Unavailable(e.to_string()), path);
        }
        Err(e) => {
            return super::serve_error(&server, &ServeError::Unavailable(e.to_string()), path);
        }
    };
    let names = app.names().to_vec();
    let commits: Vec<serde_json::Value> = log
        .into_iter()
        .filter_map(|entry| {
            let files: Vec<&String> = entry
                .changed
                .iter()
                .filter(|p| belongs_to(p, &names))
                .collect();
            (!files.is_empty()).then(|| {
                serde_json::json!({
                    "commit": entry.commit.to_string(),
                    "author": entry.author,
                    "timestamp": crate::time::iso8601_secs(entry.seconds, 0),
                    "message": entry.message,
                    "files": files,
                })
            })
        })
        .take(limit)
        .collect();
    axum::Json(serde_json::json!({
        "application": app.as_str(),
        "label": label,
        "commits": commits,
    }))
    .into_response()
}

/// Whether a path is a config file of one of `apps` or a shared `application*` file.
fn belongs_to(path: &str, apps: &[String]) -> bool {
    if !keel_properties::is_config_file(path) {
        return false;
    }
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let is = |name: &str| stem == name || stem.starts_with(&format!("{name}-"));
    is("application") || apps.iter().any(|a| is(a.rsplit('/').next().unwrap_or(a)))
}

/// `GET /keel/v1/diff/{from}/{to}?application=&profile=`: how the merged configuration of an
/// application changed between two labels or commits.
pub(crate) async fn diff(
    State(server): State<ConfigServer>,
    Path((from, to)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if let Err(r) = super::auth::check(&server, Access::Read, &headers, path) {
        return r;
    }
    let query = uri.query().unwrap_or("");
    let Some(application) = super::query_param(query, "application").filter(|a| !a.is_empty())
    else {
        return super::serve_error(
            &server,
            &ServeError::BadRequest("the application parameter is required".into()),
            path,
        );
    };
    let profile = super::query_param(query, "profile")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let build = |label: String| {
        let server = server.clone();
        let (application, profile) = (application.clone(), profile.clone());
        async move {
            let resolved = server.resolve(&application, &profile, Some(&label)).await?;
            let env = server.environment(&resolved)?;
            Ok::<_, ServeError>((resolved.snapshot.id.clone(), MergedConfig::of(&env)))
        }
    };
    let (old, new) = match (build(from).await, build(to).await) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return super::serve_error(&server, &e, path),
    };
    let diff = old.1.diff(&new.1);
    axum::Json(serde_json::json!({
        "application": application,
        "profile": profile,
        "from": old.0,
        "to": new.0,
        "added": diff.added,
        "removed": diff.removed,
        "changed": diff.changed,
    }))
    .into_response()
}

/// `GET /keel/v1/watchers`: who watches what, at which version.
pub(crate) async fn watchers(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = super::auth::check(&server, Access::Read, &headers, uri.path()) {
        return r;
    }
    axum::Json(server.inner.hub.watchers()).into_response()
}

/// `GET /keel/v1/status`: per label, the served and latest versions and any rejected commit.
pub(crate) async fn status(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = super::auth::check(&server, Access::Read, &headers, uri.path()) {
        return r;
    }
    let state = server.state();
    let labels: serde_json::Map<String, serde_json::Value> = state
        .labels
        .iter()
        .map(|(name, l)| {
            (
                name.clone(),
                serde_json::json!({
                    "kind": l.kind,
                    "served": l.served.id,
                    "latest": l.latest,
                    "rejected": l.rejected,
                }),
            )
        })
        .collect();
    let body = serde_json::json!({
        "labels": labels,
        "fetchedAt": state.fetched_at.map(crate::time::iso8601),
        "fetchError": state.fetch_error,
        "generation": state.generation,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}
