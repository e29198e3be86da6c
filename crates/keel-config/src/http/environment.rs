//! `GET /{application}/{profiles}[/{label}]`: the Environment JSON, with an ETag for pollers.

use std::hash::{Hash, Hasher};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::error::ServeError;
use crate::response_cache::{Format, Key, Rendered};
use crate::server::ConfigServer;

const V2: &str = "application/vnd.spring-cloud.config-server.v2+json";

pub(crate) async fn environment(
    server: &ConfigServer,
    app: &str,
    profiles: &str,
    label: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ServeError> {
    let resolved = server.resolve(app, profiles, label).await?;
    let key = Key {
        snapshot: &resolved.snapshot.id,
        application: app,
        profiles,
        label: label.unwrap_or(&server.inner.config.default_label),
        format: Format::Environment,
    };
    let rendered = server.inner.responses.get_or_render(key, || {
        let body = server.environment(&resolved)?.to_json();
        let etag = etag(&body);
        Ok::<_, ServeError>(Rendered {
            body: Bytes::from(body),
            etag,
        })
    })?;
    let etag = rendered.etag.clone();
    // The Spring client asks for v2 and checks the media type it gets back; the body is the
    // same (values without origins), which v2 clients accept.
    let content_type = if accepts(headers, V2) {
        V2
    } else {
        "application/json"
    };
    if if_none_match(headers, &etag) {
        let mut r = super::text(StatusCode::NOT_MODIFIED, content_type, "");
        r.headers_mut().insert(header::ETAG, etag);
        return Ok(r);
    }
    let mut r = super::text(StatusCode::OK, content_type, rendered.body.clone());
    r.headers_mut().insert(header::ETAG, etag);
    Ok(r)
}

fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.trim().starts_with(media)))
}

/// A strong ETag over the body: equal configuration gives equal tags across commits.
pub(crate) fn etag(body: &str) -> HeaderValue {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    // Invariant: a quoted hex string is a valid header value.
    HeaderValue::from_str(&format!("\"{:016x}\"", h.finish())).expect("hex etag")
}

pub(crate) fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(tag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}
