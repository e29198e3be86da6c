//! Client address resolution through trusted proxies, and the X-Forwarded-* / Forwarded headers we send.

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::predicate::Cidr;

// Parsed once: a header name from a string is validated on every use.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Which peers may tell us who the client is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<Cidr>);

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client: the peer, or, when the peer is trusted, the right-most untrusted address in
    /// `X-Forwarded-For` (a forged left part cannot pick the key of per-IP limits).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(s) = value.to_str() else { return client };
            for part in s.rsplit(',') {
                match part.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        client = ip;
                        if !self.trusts(ip) {
                            return ip;
                        }
                    }
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

/// What the gateway knows about the hop it received.
#[derive(Debug)]
pub struct Hop<'a> {
    pub peer: SocketAddr,
    pub trusted: bool,
    pub proto: &'static str,
    /// The `Host` the client asked for (with port, as sent).
    pub host: Option<&'a HeaderValue>,
    pub local_port: u16,
    /// The prefix stripped from the path before forwarding, if any.
    pub prefix: &'a str,
}

fn append_or_set(out: &mut HeaderMap, name: HeaderName, trusted: bool, value: &str) {
    let v = match out.get(&name).and_then(|v| v.to_str().ok()) {
        Some(prev) if trusted && !prev.is_empty() => {
            HeaderValue::from_str(&format!("{prev}, {value}"))
        }
        _ => HeaderValue::from_str(value),
    };
    if let Ok(v) = v {
        out.insert(name, v);
    }
}

/// Sets `X-Forwarded-For/-Proto/-Host/-Port/-Prefix` and `Forwarded` on the upstream request.
/// Values that arrived are kept (and appended to) only from trusted proxies.
pub fn apply(out: &mut HeaderMap, hop: &Hop<'_>) {
    let ip = hop.peer.ip();
    let ip_text = ip.to_string();
    append_or_set(out, X_FORWARDED_FOR, hop.trusted, &ip_text);
    let keep = |out: &HeaderMap, name: &HeaderName| hop.trusted && out.contains_key(name);
    if !keep(out, &X_FORWARDED_PROTO) {
        out.insert(X_FORWARDED_PROTO, HeaderValue::from_static(hop.proto));
    }
    if !keep(out, &X_FORWARDED_HOST) {
        match hop.host {
            Some(h) => {
                out.insert(X_FORWARDED_HOST, h.clone());
            }
            None => {
                out.remove(X_FORWARDED_HOST);
            }
        }
    }
    if !keep(out, &X_FORWARDED_PORT) {
        let port = hop
            .host
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.rsplit_once(':')
                    .filter(|(_, p)| !p.contains(']'))
                    .and_then(|(_, p)| p.parse::<u16>().ok())
            })
            .unwrap_or(hop.local_port);
        out.insert(X_FORWARDED_PORT, HeaderValue::from(port));
    }
    if hop.prefix.is_empty() {
        if !hop.trusted {
            out.remove(X_FORWARDED_PREFIX);
        }
    } else if let Ok(v) = HeaderValue::from_str(hop.prefix) {
        out.insert(X_FORWARDED_PREFIX, v);
    }
    // RFC 7239: IPv6 addresses are quoted and bracketed.
    let node = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip_text
    };
    let mut element = format!("for={node};proto={}", hop.proto);
    if let Some(h) = hop.host.and_then(|h| h.to_str().ok()) {
        element.push_str(";host=\"");
        element.push_str(h);
        element.push('"');
    }
    if !hop.trusted {
        out.remove(header::FORWARDED);
    }
    append_or_set(out, header::FORWARDED, hop.trusted, &element);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_xff_is_ignored_from_untrusted_peers() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip("9.9.9.9".parse().unwrap(), &h),
            "9.9.9.9".parse::<IpAddr>().unwrap()
        );
        let lb = TrustedProxies(vec!["10.0.0.0/8".parse().unwrap()]);
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 2.2.2.2, 10.0.0.5"),
        );
        assert_eq!(
            lb.client_ip("10.0.0.1".parse().unwrap(), &h),
            "2.2.2.2".parse::<IpAddr>().unwrap()
        );
    }
}
