//! Answers the gateway gives itself (no route, no instance, limits, breakers) as JSON bodies.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

/// A JSON error in Spring's error shape, plus the reason and request id. `path` is the request's own
/// (normalised) path, as Spring's error attributes give it, not the one a route forwards.
pub fn error(
    status: StatusCode,
    reason: &'static str,
    message: &str,
    path: &str,
    request_id: &HeaderValue,
) -> Response<Body> {
    let body = serde_json::json!({
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or(""),
        "reason": reason,
        "message": message,
        "path": path,
        "requestId": request_id.to_str().unwrap_or(""),
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert("x-request-id", request_id.clone());
    resp
}
