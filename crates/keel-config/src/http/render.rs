//! The merged renderings: `/{name}-{profiles}.{yml,yaml,properties,json}` and `/{label}/…`.

use axum::http::StatusCode;
use axum::response::Response;
use keel_properties::render;

use crate::error::ServeError;
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
    let env = server.find_environment(name, profiles, label).await?;
    let bad = |e: render::InvalidKey| ServeError::BadRequest(e.to_string());
    Ok(match ext {
        ".properties" => super::text(
            StatusCode::OK,
            "text/plain;charset=UTF-8",
            render::properties(&env, resolve),
        ),
        ".json" => super::text(
            StatusCode::OK,
            "application/json",
            render::json(&env, resolve).map_err(bad)?,
        ),
        _ => super::text(
            StatusCode::OK,
            "text/plain;charset=UTF-8",
            render::yaml(&env, resolve).map_err(bad)?,
        ),
    })
}
