//! The merged renderings: `/{name}-{profiles}.{yml,yaml,properties,json}` and `/{label}/…`.

use axum::http::StatusCode;
use axum::response::Response;
use keel_properties::render;

use crate::error::ServeError;
use crate::response_cache::{Format, Key, Rendered};
use crate::server::ConfigServer;

pub(crate) async fn flat(
    server: &ConfigServer,
    label: Option<&str>,
    file: &str,
    query: &str,
) -> Result<Response, ServeError> {
    let ext = super::flat_extension(file).unwrap_or(".yml");
    let stem = &file[..file.len() - ext.len()];
    // `{name}-{profiles}` is a greedy match: the profiles are after the last hyphen.
    let (name, profiles) = stem
        .rsplit_once('-')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| ServeError::NotFound(file.to_owned()))?;
    let resolve = super::query_param(query, "resolvePlaceholders").is_none_or(|v| v != "false");
    let resolved = server.resolve(name, profiles, label).await?;
    let (format, content_type) = match ext {
        ".properties" => (Format::Properties { resolve }, "text/plain;charset=UTF-8"),
        ".json" => (Format::Json { resolve }, "application/json"),
        _ => (Format::Yaml { resolve }, "text/plain;charset=UTF-8"),
    };
    let key = Key {
        snapshot: &resolved.snapshot.id,
        application: name,
        profiles,
        label: label.unwrap_or(&server.inner.config.default_label),
        format,
    };
    let rendered = server.inner.responses.get_or_render(key, || {
        let env = server.environment(&resolved)?;
        let bad = |e: render::InvalidKey| ServeError::BadRequest(e.to_string());
        let body = match format {
            Format::Properties { .. } => render::properties(&env, resolve),
            Format::Json { .. } => render::json(&env, resolve).map_err(bad)?,
            _ => render::yaml(&env, resolve).map_err(bad)?,
        };
        let etag = super::environment::etag(&body);
        Ok::<_, ServeError>(Rendered {
            body: body.into(),
            etag,
        })
    })?;
    Ok(super::text(
        StatusCode::OK,
        content_type,
        rendered.body.clone(),
    ))
}
