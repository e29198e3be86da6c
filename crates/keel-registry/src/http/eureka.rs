//! Handlers for Eureka's REST endpoints, with Eureka's status codes.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keel_eureka::{Format, decode_instance, write_instance_document};

use super::respond::{
    BadRequest, LeaseParams, app_name, bad_request, document, instance_id, negotiated, not_found,
    ok, origin, response_format,
};
use crate::engine::{Registry, RenewOutcome};

type Result<T = Response> = std::result::Result<T, BadRequest>;

/// `POST /apps/{APP}`: 204. The whole body is read (up to the server's limit, else 413)
/// before anything is decided, and nothing changes unless it decodes and validates.
pub(crate) async fn register(
    State(registry): State<Registry>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result {
    let app = app_name(&app)?;
    let format = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type)
        .unwrap_or_else(|| Format::sniff(&body));
    let info = decode_instance(format, &body).map_err(bad_request)?;
    info.check_registrable(&app).map_err(bad_request)?;
    registry.register(info, origin(&headers));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /apps/{APP}/{ID}`: the heartbeat. 200, 404 (re-register) or, for a peer, 409 + our copy.
pub(crate) async fn renew(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    let params = LeaseParams::parse(query.as_deref())?;
    let outcome = registry.renew(
        &app,
        &id,
        params.last_dirty_timestamp,
        params.overridden_status,
        origin(&headers),
    );
    Ok(match outcome {
        RenewOutcome::Renewed => ok(),
        RenewOutcome::NotFound => not_found(),
        RenewOutcome::Conflict(record) => {
            let format = response_format(&headers);
            let mut out = Vec::new();
            write_instance_document(format, record.fragment(format), &mut out);
            let mut response = document(format, out.into());
            *response.status_mut() = StatusCode::CONFLICT;
            response
        }
    })
}

/// `DELETE /apps/{APP}/{ID}`: 200 or 404.
pub(crate) async fn cancel(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    Ok(found(registry.cancel(&app, &id, origin(&headers))))
}

/// `PUT /apps/{APP}/{ID}/status?value=X`: 200 or 404; an invalid value is a 400 here
/// (Eureka answers 500).
pub(crate) async fn set_status(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    let params = LeaseParams::parse(query.as_deref())?;
    let Some(value) = params.value else {
        return Err(bad_request("missing query parameter `value` (the status)"));
    };
    Ok(found(registry.set_status_override(
        &app,
        &id,
        value,
        params.last_dirty_timestamp,
        origin(&headers),
    )))
}

/// `DELETE /apps/{APP}/{ID}/status[?value=X]`: 200 or 404.
pub(crate) async fn delete_status(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    let params = LeaseParams::parse(query.as_deref())?;
    Ok(found(registry.delete_status_override(
        &app,
        &id,
        params.value,
        params.last_dirty_timestamp,
        origin(&headers),
    )))
}

/// `PUT /apps/{APP}/{ID}/metadata?k=v…`: 200 or 404.
pub(crate) async fn update_metadata(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    Query(entries): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    Ok(found(registry.update_metadata(
        &app,
        &id,
        entries,
        origin(&headers),
    )))
}

fn found(found: bool) -> Response {
    if found { ok() } else { not_found() }
}

/// `GET /apps`: the full registry, never staler than the last acknowledged write.
pub(crate) async fn get_apps(State(registry): State<Registry>, headers: HeaderMap) -> Response {
    let format = response_format(&headers);
    let snapshot = registry.snapshot();
    negotiated(
        format,
        &headers,
        || snapshot.encoded(format),
        || snapshot.encoded_gzip(format),
    )
}

/// `GET /apps/delta`: changes of the last three minutes with the full registry's hashcode.
pub(crate) async fn get_delta(State(registry): State<Registry>, headers: HeaderMap) -> Response {
    let format = response_format(&headers);
    let delta = registry.delta();
    negotiated(
        format,
        &headers,
        || delta.encoded(format),
        || delta.encoded_gzip(format),
    )
}

/// `GET /apps/{APP}`: 200 or 404.
pub(crate) async fn get_app(
    State(registry): State<Registry>,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let format = response_format(&headers);
    let snapshot = registry.snapshot();
    Ok(match snapshot.app(&app) {
        Some(a) => negotiated(
            format,
            &headers,
            || a.encoded(format),
            || a.encoded_gzip(format),
        ),
        None => not_found(),
    })
}

/// `GET /apps/{APP}/{ID}`: 200 or 404.
pub(crate) async fn get_instance(
    State(registry): State<Registry>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result {
    let app = app_name(&app)?;
    let id = instance_id(&id)?;
    let snapshot = registry.snapshot();
    Ok(instance_document(snapshot.instance(&app, &id), &headers))
}

/// `GET /instances/{ID}`: the first instance with that id in any application.
pub(crate) async fn find_instance(
    State(registry): State<Registry>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result {
    let id = instance_id(&id)?;
    let snapshot = registry.snapshot();
    Ok(instance_document(snapshot.find_instance(&id), &headers))
}

fn instance_document(
    record: Option<&std::sync::Arc<crate::Record>>,
    headers: &HeaderMap,
) -> Response {
    let Some(record) = record else {
        return not_found();
    };
    let format = response_format(headers);
    let mut out = Vec::new();
    write_instance_document(format, record.fragment(format), &mut out);
    document(format, out.into())
}

/// `GET /vips/{vip}`: 200 even when nothing matches, as in Eureka.
pub(crate) async fn get_vip(
    State(registry): State<Registry>,
    Path(vip): Path<String>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let body = registry
        .snapshot()
        .encode_filtered(format, 1, |r| r.info().has_vip(&vip));
    document(format, body.into())
}

/// `GET /svips/{svip}`.
pub(crate) async fn get_svip(
    State(registry): State<Registry>,
    Path(svip): Path<String>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let body = registry
        .snapshot()
        .encode_filtered(format, 1, |r| r.info().has_secure_vip(&svip));
    document(format, body.into())
}
