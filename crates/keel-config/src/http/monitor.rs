//! `POST /monitor`: verify the webhook, answer with Spring's service list, fetch (debounced).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::monitor;
use crate::server::ConfigServer;

use super::Access;

pub(crate) async fn monitor(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = super::auth::check(&server, Access::Admin, &headers, uri.path()) {
        return r;
    }
    let provider = monitor::provider(&headers);
    if let Some(secret) = &server.inner.config.monitor_secret
        && !monitor::verify(provider, &headers, &body, secret)
    {
        tracing::warn!(?provider, "webhook refused: bad signature or token");
        return super::boot_error(
            &server,
            StatusCode::UNAUTHORIZED,
            "invalid webhook signature",
            uri.path(),
        );
    }
    let push = match monitor::parse(provider, &headers, &body) {
        Ok(p) => p,
        Err(e) => {
            return super::boot_error(&server, StatusCode::BAD_REQUEST, &e.to_string(), uri.path());
        }
    };
    if push.is_push {
        tracing::info!(?provider, services = ?push.services, "webhook: refresh requested");
        server.trigger_refresh_and_announce();
    }
    axum::Json(push.services).into_response()
}
