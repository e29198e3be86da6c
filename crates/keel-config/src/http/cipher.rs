//! `POST /encrypt`, `POST /decrypt` and `GET /encrypt/status`, with Spring's status bodies.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use keel_properties::{Decryptor as _, Encryptor as _};

use crate::server::ConfigServer;

use super::Access;

fn status_body(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"status": code, "description": description})),
    )
        .into_response()
}

fn no_key() -> Response {
    status_body(
        StatusCode::NOT_FOUND,
        "NO_KEY",
        "No key was installed for encryption service",
    )
}

/// The request text. curl's `-d` sends a form body, which Spring strips of a trailing `=`.
#[allow(clippy::result_large_err, reason = "the error is the response itself")]
fn input(headers: &HeaderMap, body: &Bytes) -> Result<String, Response> {
    let text = std::str::from_utf8(body)
        .map_err(|_| status_body(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Body is not UTF-8"))?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let text = if form {
        let t = text.strip_suffix('=').unwrap_or(text);
        percent_encoding::percent_decode_str(&t.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    } else {
        text.to_owned()
    };
    Ok(text)
}

pub(crate) async fn encrypt(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = super::auth::check(&server, Access::Admin, &headers, uri.path()) {
        return r;
    }
    let Some(enc) = &server.inner.encryptor else {
        return no_key();
    };
    let text = match input(&headers, &body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match enc.encrypt(&text) {
        Ok(ct) => super::text(StatusCode::OK, "text/plain;charset=UTF-8", ct),
        Err(e) => status_body(StatusCode::INTERNAL_SERVER_ERROR, "INVALID", &e.to_string()),
    }
}

pub(crate) async fn decrypt(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = super::auth::check(&server, Access::Admin, &headers, uri.path()) {
        return r;
    }
    let Some(enc) = &server.inner.encryptor else {
        return no_key();
    };
    let text = match input(&headers, &body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let text = text.trim();
    let text = text.strip_prefix("{cipher}").unwrap_or(text);
    match enc.decrypt(keel_properties::strip_cipher_prefixes(text)) {
        Ok(plain) => super::text(StatusCode::OK, "text/plain;charset=UTF-8", plain),
        Err(_) => status_body(
            StatusCode::BAD_REQUEST,
            "INVALID",
            "Text not encrypted with this key",
        ),
    }
}

pub(crate) async fn status(State(server): State<ConfigServer>) -> Response {
    if server.inner.encryptor.is_none() {
        return no_key();
    }
    axum::Json(serde_json::json!({"status": "OK"})).into_response()
}
