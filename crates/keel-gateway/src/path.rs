//! Request-path normalisation: one canonical path is matched and forwarded, so encodings can't bypass routes.

use std::borrow::Cow;

/// Why a request path was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// `%2F` or `%5C` inside a segment: backends disagree on whether it separates segments.
    #[error("encoded path separators (%2F, %5C) are not allowed")]
    EncodedSeparator,
    /// A backslash, a control byte, `%00`, a malformed escape, or a path not starting with `/`.
    #[error("malformed request path: {0}")]
    Malformed(&'static str),
}

/// Normalises an origin-form path (without its query):
/// - percent-escapes of unreserved characters are decoded (`/%61dmin` → `/admin`), other escapes
///   are kept with upper-case hex; `%2F`/`%5C` are refused;
/// - empty segments collapse (`//admin` → `/admin`), `.` segments go, `..` pops (never above `/`);
/// - `;` matrix parameters are removed from each segment (Zuul's `removeSemicolonContent`);
/// - a trailing slash is kept.
///
/// The common case (nothing to change) borrows.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::Malformed("a path must start with `/`"));
    }
    if is_canonical(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut segments: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_params = false;
    let mut trailing_slash = false;
    let mut i = 1;
    let finish = |segments: &mut Vec<String>, current: &mut String| -> bool {
        let seg = std::mem::take(current);
        match seg.as_str() {
            "" | "." => true,
            ".." => {
                segments.pop();
                true
            }
            _ => {
                segments.push(seg);
                false
            }
        }
    };
    while i <= bytes.len() {
        let b = if i == bytes.len() { b'/' } else { bytes[i] };
        match b {
            b'/' => {
                let at_end = i == bytes.len();
                let dir_like = finish(&mut segments, &mut current);
                if at_end {
                    trailing_slash = dir_like;
                }
                in_params = false;
            }
            _ if in_params => {}
            b';' => in_params = true,
            b'\\' => return Err(PathError::Malformed("backslash in path")),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(PathError::Malformed("bad percent-escape"))?;
                match hex {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Malformed("%00 in path")),
                    c if is_unreserved(c) => current.push(c as char),
                    c => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        current.push('%');
                        current.push(HEX[usize::from(c >> 4)] as char);
                        current.push(HEX[usize::from(c & 15)] as char);
                    }
                }
                i += 2;
            }
            c if c < 0x20 || c == 0x7f => return Err(PathError::Malformed("control byte in path")),
            c => current.push(c as char),
        }
        i += 1;
    }
    let mut out = String::with_capacity(raw.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// True when `normalize` would return the path unchanged.
fn is_canonical(raw: &str) -> bool {
    let mut segments = raw[1..].split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        // Only the last segment may be empty: a trailing slash, or the root itself.
        if seg.is_empty() && !last {
            return false;
        }
        if seg == "." || seg == ".." {
            return false;
        }
        if seg
            .bytes()
            .any(|b| matches!(b, b'%' | b';' | b'\\') || b < 0x20 || b == 0x7f)
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    #[test]
    fn canonical_paths_borrow() {
        for p in ["/", "/a", "/a/b/", "/users/42/orders"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn bypass_attempts_normalise_to_admin() {
        for p in [
            "//admin",
            "/%61dmin",
            "/./admin",
            "/x/../admin",
            "/admin;jsessionid=1",
            "/%2e/admin",
            "/x/%2e%2e/admin",
            "///admin",
            "/.%2e/admin",
            "/../admin",
            "/%2E%2E/admin",
        ] {
            assert_eq!(n(p).unwrap(), "/admin", "{p}");
        }
    }

    #[test]
    fn separators_and_junk_are_refused() {
        assert_eq!(n("/admin/..%2f"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%2Fb"), Err(PathError::EncodedSeparator));
        assert_eq!(n("/a%5cb"), Err(PathError::EncodedSeparator));
        assert!(matches!(n("/a\\b"), Err(PathError::Malformed(_))));
        assert!(matches!(n("/a%00"), Err(PathError::Malformed(_))));
        assert!(matches!(n("/a%zz"), Err(PathError::Malformed(_))));
        assert!(matches!(n("a"), Err(PathError::Malformed(_))));
    }

    #[test]
    fn trailing_slash_and_escapes_are_kept() {
        assert_eq!(n("/a//b/").unwrap(), "/a/b/");
        assert_eq!(n("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a%20b").unwrap(), "/a%20b");
        assert_eq!(n("/a%c3%a9").unwrap(), "/a%C3%A9");
        assert_eq!(n("/..").unwrap(), "/");
        assert_eq!(n("//").unwrap(), "/");
    }
}
