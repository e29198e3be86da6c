//! `PeerUrl`: a peer's Eureka service URL (`http://host:8761/eureka/`), parsed once at the edge.

use std::fmt;
use std::str::FromStr;

/// A peer's service URL, normalised so that `{base}apps` and `{base}peerreplication/batch/`
/// are the peer's routes. A bare origin (`http://host:8761`) means `http://host:8761/eureka/`,
/// which is where Eureka and Keel serve. Credentials in the URL (`http://user:pw@host/…`)
/// become HTTP basic auth, as py-eureka-client does it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerUrl {
    host: String,
    port: u16,
    /// Always starts and ends with `/`.
    base_path: String,
    /// `user:password`, if the URL carried it.
    userinfo: Option<String>,
}

/// A peer URL that is not `http://host[:port][/path]`.
#[derive(Debug, thiserror::Error)]
#[error("peer URL {url:?}: {reason}")]
pub struct PeerUrlError {
    pub url: String,
    pub reason: &'static str,
}

impl PeerUrl {
    pub fn parse(raw: &str) -> Result<Self, PeerUrlError> {
        let err = |reason| PeerUrlError {
            url: raw.to_owned(),
            reason,
        };
        let trimmed = raw.trim();
        let rest = trimmed
            .strip_prefix("http://")
            .ok_or_else(|| err("only http:// peers are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            // IPv6 literal: `[::1]:8761`.
            Some(v6) => {
                let (h, rest) = v6.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
                match rest.strip_prefix(':') {
                    Some(p) => (h, p.parse().map_err(|_| err("invalid port"))?),
                    None => (h, 80),
                }
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| err("invalid port"))?),
                None => (hostport, 80),
            },
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if path.contains(['?', '#']) {
            return Err(err("a query or fragment is not allowed"));
        }
        let base_path = match path.trim_end_matches('/') {
            "" => "/eureka/".to_owned(),
            p => format!("{p}/"),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            base_path,
            userinfo,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path of one of the peer's Eureka routes, e.g. `path("apps")` → `/eureka/apps`.
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.base_path)
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `Basic …` for the credentials in the URL, if any.
    pub fn basic_auth(&self) -> Option<String> {
        self.userinfo
            .as_deref()
            .map(|u| format!("Basic {}", base64(u.as_bytes())))
    }
}

impl FromStr for PeerUrl {
    type Err = PeerUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Never prints credentials.
impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.base_path)
    }
}

impl fmt::Debug for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn base64(input: &[u8]) -> String {
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
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
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
    fn normalises_base_paths() {
        let p = PeerUrl::parse("http://peer:8761/eureka").unwrap();
        assert_eq!(p.path("apps"), "/eureka/apps");
        assert_eq!(p.authority(), "peer:8761");
        let p = PeerUrl::parse("http://10.0.0.1:9000").unwrap();
        assert_eq!(
            p.path("peerreplication/batch/"),
            "/eureka/peerreplication/batch/"
        );
        let p = PeerUrl::parse("http://h/eureka/v2/").unwrap();
        assert_eq!((p.port(), p.path("apps").as_str()), (80, "/eureka/v2/apps"));
        assert!(PeerUrl::parse("https://h/").is_err());
        assert!(PeerUrl::parse("http://:80/").is_err());
    }

    #[test]
    fn credentials_become_basic_auth_and_are_never_printed() {
        let p = PeerUrl::parse("http://alice:pw@h:1/eureka/").unwrap();
        assert_eq!(p.basic_auth().as_deref(), Some("Basic YWxpY2U6cHc="));
        assert_eq!(p.to_string(), "http://h:1/eureka/");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
