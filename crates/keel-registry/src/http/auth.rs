//! Optional credentials: Bearer tokens or HTTP basic auth, for writes and optionally reads.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::AuthConfig;
use crate::engine::Registry;

pub(crate) async fn check(
    State(registry): State<Registry>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &registry.config().auth;
    if !auth.is_enabled() {
        return next.run(request).await;
    }
    let is_read = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if is_read && !auth.protect_reads {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if presented.is_some_and(|h| accepts(auth, h)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"keel\", Bearer"),
        )],
        "credentials required\n",
    )
        .into_response()
}

fn accepts(auth: &AuthConfig, header: &str) -> bool {
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return auth
            .tokens
            .iter()
            .any(|t| constant_eq(t.as_bytes(), value.as_bytes()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some(decoded) = base64_decode(value) else {
        return false;
    };
    let Ok(decoded) = std::str::from_utf8(&decoded) else {
        return false;
    };
    let Some((user, password)) = decoded.split_once(':') else {
        return false;
    };
    // With a token configured, any user name works: py-eureka-client only sends basic auth.
    let token_ok = auth
        .tokens
        .iter()
        .any(|t| constant_eq(t.as_bytes(), password.as_bytes()));
    token_ok
        || auth.users.iter().any(|(u, p)| {
            constant_eq(u.as_bytes(), user.as_bytes())
                & constant_eq(p.as_bytes(), password.as_bytes())
        })
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with optional padding (all that basic auth needs).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= sextet(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer() {
        let auth = AuthConfig {
            tokens: vec!["s3cret".into()],
            users: vec![("alice".into(), "pw".into())],
            protect_reads: false,
        };
        assert_eq!(base64_decode("YWxpY2U6cHc=").unwrap(), b"alice:pw");
        assert!(accepts(&auth, "Basic YWxpY2U6cHc="));
        assert!(accepts(&auth, "Bearer s3cret"));
        // any user with the token as password
        assert!(accepts(&auth, "Basic a2VlbDpzM2NyZXQ="));
        assert!(!accepts(&auth, "Bearer nope"));
        assert!(!accepts(&auth, "Basic YWxpY2U6eA=="));
    }
}
