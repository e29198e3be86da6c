//! Request parsing at the edge and Eureka-shaped responses: status codes, formats, errors.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keel_eureka::{AppName, Format, InstanceId, InstanceStatus};

use crate::engine::Origin;

/// Eureka answers JSON only when `Accept` mentions JSON; py-eureka-client sends no Accept
/// header and parses XML.
pub(crate) fn response_format(headers: &HeaderMap) -> Format {
    Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

/// A cached document in the encoding the client asked for: its gzipped copy (cached too) when the
/// client prefers gzip, as Eureka's Java client and Spring's do on every fetch; otherwise the plain
/// one, which the compression layer may still compress for unusual `Accept-Encoding` values.
pub(crate) fn negotiated(
    format: Format,
    headers: &HeaderMap,
    plain: impl FnOnce() -> Bytes,
    gzip: impl FnOnce() -> Bytes,
) -> Response {
    if !prefers_gzip(headers) {
        return document(format, plain());
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        gzip(),
    )
        .into_response()
}

/// Whether `Accept-Encoding` accepts gzip (named, or through `*`) with a q-value above zero and
/// prefers nothing else over it.
fn prefers_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: Option<f32> = None;
    let mut any: Option<f32> = None;
    let mut other = 0.0f32;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for item in value.split(',') {
            let mut params = item.split(';');
            let name = params.next().unwrap_or("").trim();
            let mut q = 1.0f32;
            for p in params {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    match v.trim().parse::<f32>() {
                        Ok(v) if (0.0..=1.0).contains(&v) => q = v,
                        // Malformed: the compression layer decides.
                        _ => return false,
                    }
                }
            }
            if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(gzip.map_or(q, |g| g.max(q)));
            } else if name == "*" {
                any = Some(any.map_or(q, |a| a.max(q)));
            } else if !name.is_empty() {
                other = other.max(q);
            }
        }
    }
    gzip.or(any).is_some_and(|g| g > 0.0 && g >= other)
}

pub(crate) fn document(format: Format, body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

/// A request refused before it reaches the engine: 400 with a message naming the problem.
#[derive(Debug)]
pub(crate) struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.0).into_response()
    }
}

pub(crate) fn bad_request(message: impl std::fmt::Display) -> BadRequest {
    BadRequest(format!("{message}\n"))
}

pub(crate) fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

pub(crate) fn ok() -> Response {
    StatusCode::OK.into_response()
}

pub(crate) fn app_name(raw: &str) -> Result<AppName, BadRequest> {
    AppName::parse(raw).map_err(bad_request)
}

pub(crate) fn instance_id(raw: &str) -> Result<InstanceId, BadRequest> {
    InstanceId::parse(raw).map_err(bad_request)
}

/// Peers mark their calls with `x-netflix-discovery-replication: true`.
pub(crate) fn origin(headers: &HeaderMap) -> Origin {
    let replicated = headers
        .get("x-netflix-discovery-replication")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if replicated {
        Origin::Replicated
    } else {
        Origin::Client
    }
}

/// The few query parameters of renew and status calls, read without allocating.
#[derive(Debug, Default)]
pub(crate) struct LeaseParams {
    pub last_dirty_timestamp: Option<i64>,
    pub overridden_status: Option<InstanceStatus>,
    pub value: Option<InstanceStatus>,
}

impl LeaseParams {
    pub fn parse(query: Option<&str>) -> Result<Self, BadRequest> {
        let mut params = Self::default();
        for pair in query.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "lastDirtyTimestamp" if !value.is_empty() => {
                    params.last_dirty_timestamp = Some(value.parse().map_err(|_| {
                        bad_request(format_args!(
                            "lastDirtyTimestamp must be epoch milliseconds, got {value:?}"
                        ))
                    })?);
                }
                // Sent by peers; clients send it empty or not at all.
                "overriddenstatus" if !value.is_empty() => {
                    params.overridden_status = Some(status(value)?);
                }
                "value" if !value.is_empty() => params.value = Some(status(value)?),
                // `status` is sent by every client and, as in Eureka, ignored.
                _ => {}
            }
        }
        Ok(params)
    }
}

fn status(raw: &str) -> Result<InstanceStatus, BadRequest> {
    InstanceStatus::parse(raw).ok_or_else(|| {
        bad_request(format_args!(
            "{raw:?} is not a status (expected UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(accept_encoding: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in accept_encoding {
            h.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn gzip_is_preferred_only_when_the_client_says_so() {
        for yes in [
            &["gzip"][..],
            &["gzip, deflate"],
            &["deflate;q=0.5, GZIP"],
            &["identity;q=0.5", "gzip;q=0.8"],
            &["x-gzip"],
            &["br;q=0.9, gzip"],
            &["*"],
            &["identity;q=0.5, *"],
        ] {
            assert!(prefers_gzip(&with(yes)), "{yes:?}");
        }
        for no in [
            &[][..],
            &["identity"],
            &["gzip;q=0"],
            &["gzip;q=0.5, br"],
            &["gzip;q=0, *"],
            &["identity, *;q=0.5"],
            &["gzip;q=abc"],
            &["gzip;q=2"],
        ] {
            assert!(!prefers_gzip(&with(no)), "{no:?}");
        }
    }
}
