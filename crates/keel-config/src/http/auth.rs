//! Optional HTTP Basic or bearer auth, configured separately for reads and for admin endpoints.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::config::Credentials;
use crate::server::ConfigServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Configuration reads and the keel API.
    Read,
    /// `/encrypt`, `/decrypt`, `/monitor`.
    Admin,
}

/// `Ok` when the request may proceed; otherwise the 401 to send.
#[allow(clippy::result_large_err, reason = "the error is the response itself")]
pub(crate) fn check(
    server: &ConfigServer,
    access: Access,
    headers: &HeaderMap,
    path: &str,
) -> Result<(), Response> {
    let config = &server.inner.config;
    let required = match access {
        Access::Read => &config.read_auth,
        Access::Admin => &config.admin_auth,
    };
    let Some(creds) = required else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if allowed(creds, presented) {
        return Ok(());
    }
    let mut r = super::boot_error(server, StatusCode::UNAUTHORIZED, "Unauthorized", path);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"keel\""),
    );
    Err(r)
}

fn allowed(creds: &Credentials, presented: &str) -> bool {
    let (scheme, value) = presented.split_once(' ').unwrap_or((presented, ""));
    if scheme.eq_ignore_ascii_case("basic")
        && let Some((user, pass)) = &creds.basic
    {
        let expected = base64(format!("{user}:{pass}").as_bytes());
        return constant_time_eq(value.trim().as_bytes(), expected.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("bearer")
        && let Some(token) = &creds.bearer
    {
        return constant_time_eq(value.trim().as_bytes(), token.as_bytes());
    }
    false
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding (only used to build the expected Basic credentials).
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }
}
