//! Reading a bearer token's `sub` claim for rate-limit keys (no signature check: see [`subject`]).

use http::HeaderMap;

/// The `sub` claim of `Authorization: Bearer <jwt>`.
///
/// The signature is not verified here, so a client can choose its own key; with per-route JWT auth
/// (not built yet) the verified subject should be used instead. Requests without a token fall back
/// to the route's empty-key policy.
pub fn subject(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("sub")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().take_while(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_sub() {
        let mut h = http::HeaderMap::new();
        // {"sub":"alice"}
        h.insert(
            "authorization",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."
                .parse()
                .unwrap(),
        );
        assert_eq!(super::subject(&h).as_deref(), Some("alice"));
    }
}
