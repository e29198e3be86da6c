//! Plain-text resources `/{name}/{profile}/{label}/{path}`, read from the snapshot's tree
//! objects only: no filesystem path is ever built from request input.

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::ServeError;
use crate::server::ConfigServer;

pub(crate) async fn resource(
    server: &ConfigServer,
    app: &str,
    profile: &str,
    label: Option<&str>,
    path: &[String],
    query: &str,
) -> Result<Response, ServeError> {
    let bad = || ServeError::BadRequest("invalid resource path".into());
    if path.is_empty() {
        return Err(bad());
    }
    for seg in path {
        if seg.is_empty() || seg == "." || seg.contains(['/', '\\', ':']) || seg.starts_with('~') {
            return Err(bad());
        }
    }
    let path = path.join("/");
    let resolved = server.resolve(app, profile, label).await?;
    let snapshot = &resolved.snapshot;
    let profiles = resolved.query.profiles.accepted();
    let (stem, ext) = match path.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && !s.ends_with('/') => (s, Some(e)),
        _ => (path.as_str(), None),
    };
    // Spring's lookup: in each location, `{stem}-{profile}.{ext}` for each profile, then `{path}`.
    let mut found = None;
    'outer: for loc in locations(server, &resolved) {
        for p in &profiles {
            let candidate = match ext {
                Some(ext) => format!("{loc}{stem}-{p}.{ext}"),
                None => format!("{loc}{stem}-{p}"),
            };
            if let Some(b) = snapshot.file(&candidate) {
                found = Some(b.clone());
                break 'outer;
            }
        }
        if let Some(b) = snapshot.file(&format!("{loc}{path}")) {
            found = Some(b.clone());
            break;
        }
    }
    let bytes = found.ok_or_else(|| ServeError::NotFound(path.clone()))?;
    let resolve = super::query_param(query, "resolvePlaceholders").is_none_or(|v| v != "false");
    match std::str::from_utf8(&bytes) {
        Ok(text) if resolve && text.contains("${") => {
            let env = server.environment(&resolved)?;
            Ok(super::text(
                StatusCode::OK,
                "text/plain;charset=UTF-8",
                keel_properties::resolve_placeholders(&env, text),
            ))
        }
        Ok(_) => Ok(super::text(
            StatusCode::OK,
            "text/plain;charset=UTF-8",
            bytes,
        )),
        Err(_) => Ok(super::text(
            StatusCode::OK,
            "application/octet-stream",
            bytes,
        )),
    }
}

/// The root, then each search path with its placeholders filled in (wildcards are skipped:
/// a resource names one file).
fn locations(server: &ConfigServer, resolved: &crate::server::Resolved) -> Vec<String> {
    let mut out = vec![String::new()];
    let q = &resolved.query;
    let label = q.label.as_ref().map(|l| l.as_str()).unwrap_or("");
    for pattern in &server.inner.config.search_paths {
        for app in q.applications.names() {
            for p in q.profiles.accepted() {
                let dir = pattern
                    .replace("{application}", app)
                    .replace("{profile}", &p)
                    .replace("{label}", label);
                let dir = dir.trim_matches('/');
                if dir.is_empty()
                    || dir.contains(['*', '?', '{'])
                    || dir
                        .split('/')
                        .any(|s| s == ".." || s == "." || s.is_empty())
                {
                    continue;
                }
                let dir = format!("{dir}/");
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
    }
    out
}
