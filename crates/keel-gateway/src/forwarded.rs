//! Client address resolution through trusted proxies, and the X-Forwarded-* / Forwarded headers we send.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
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

/// Sets `name` to `value`, appended to what arrived when the peer is trusted. The header's buffer is
/// one exact-size allocation.
fn append_or_set(out: &mut HeaderMap, name: HeaderName, trusted: bool, value: &[u8]) {
    let v = match out.get(&name) {
        Some(prev) if trusted && !prev.is_empty() => {
            let mut joined = Vec::with_capacity(prev.len() + 2 + value.len());
            joined.extend_from_slice(prev.as_bytes());
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(value);
            HeaderValue::from_maybe_shared(Bytes::from(joined))
        }
        _ => HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value)),
    };
    if let Ok(v) = v {
        out.insert(name, v);
    }
}

/// `X-Forwarded-Port`'s value for `port`: almost every request carries the same one, so each thread
/// keeps the last value made instead of formatting and allocating it per request.
fn port_value(port: u16) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(u16, HeaderValue)>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((p, v)) if *p == port => v.clone(),
        _ => {
            let v = HeaderValue::from(port);
            *last = Some((port, v.clone()));
            v
        }
    })
}

/// Sets `X-Forwarded-For/-Proto/-Host/-Port/-Prefix` and `Forwarded` on the upstream request.
/// Values that arrived are kept (and appended to) only from trusted proxies. Runs on every proxied
/// request: this hop's own `X-Forwarded-For` and `Forwarded` values are remembered per thread for
/// the last (address, scheme, host) seen, so a client's (or a load balancer's) requests share them
/// instead of formatting and allocating both each time.
pub fn apply(out: &mut HeaderMap, hop: &Hop<'_>) {
    let ip = hop.peer.ip();
    let host = hop.host.and_then(|h| h.to_str().ok());
    let (own_for, own_forwarded) = own_values(ip, hop.proto, host);
    if hop.trusted {
        append_or_set(out, X_FORWARDED_FOR, true, own_for.as_bytes());
    } else {
        // `insert` replaces whatever the client sent.
        out.insert(X_FORWARDED_FOR, own_for);
    }
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
        let port = host
            .and_then(|h| {
                // After the last colon; a bracketed IPv6 address without a port (`[::1]`) leaves
                // `1]`, which is no port.
                let at = h.as_bytes().iter().rposition(|&b| b == b':')?;
                h[at + 1..].parse::<u16>().ok()
            })
            .unwrap_or(hop.local_port);
        out.insert(X_FORWARDED_PORT, port_value(port));
    }
    if hop.prefix.is_empty() {
        if !hop.trusted {
            out.remove(X_FORWARDED_PREFIX);
        }
    } else if let Ok(v) = HeaderValue::from_str(hop.prefix) {
        out.insert(X_FORWARDED_PREFIX, v);
    }
    if hop.trusted {
        append_or_set(out, header::FORWARDED, true, own_forwarded.as_bytes());
    } else {
        out.insert(header::FORWARDED, own_forwarded);
    }
}

/// The forwarded headers this gateway sets, in the order [`apply`] sets them.
const NAMES: [HeaderName; 6] = [
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    X_FORWARDED_PORT,
    X_FORWARDED_PREFIX,
    header::FORWARDED,
];

/// The forwarded headers for a hop whose own ones are not kept (an untrusted peer), kept out of
/// the request's map: what [`apply`] would leave in the map, as `name: value\r\n` lines for an
/// upstream request head written straight from the map, with [`Forwarded::strip`] removing the
/// ones that arrived. Saves six map insertions per request, each hashing its name. Made once per
/// thread for the last (address, scheme, host, port, prefix) seen.
#[derive(Debug, Clone)]
pub struct Forwarded(Bytes);

impl Forwarded {
    /// `None` for a trusted peer, whose headers [`apply`] extends instead.
    pub fn untrusted(hop: &Hop<'_>) -> Option<Forwarded> {
        struct Last {
            peer: IpAddr,
            proto: &'static str,
            host: Option<Box<[u8]>>,
            local_port: u16,
            prefix: Box<str>,
            lines: Bytes,
        }
        thread_local! {
            static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
        }
        if hop.trusted {
            return None;
        }
        let ip = hop.peer.ip();
        let host = hop.host.map(HeaderValue::as_bytes);
        let lines = LAST.with_borrow_mut(|last| {
            if let Some(l) = last.as_ref()
                && l.peer == ip
                && l.proto == hop.proto
                && l.host.as_deref() == host
                && l.local_port == hop.local_port
                && *l.prefix == *hop.prefix
            {
                return l.lines.clone();
            }
            // What `apply` puts in an empty map, written out: the two cannot disagree.
            let mut map = HeaderMap::new();
            apply(&mut map, hop);
            let mut lines = Vec::with_capacity(256);
            for (name, value) in &map {
                lines.extend_from_slice(name.as_str().as_bytes());
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(value.as_bytes());
                lines.extend_from_slice(b"\r\n");
            }
            let lines = Bytes::from(lines);
            *last = Some(Last {
                peer: ip,
                proto: hop.proto,
                host: host.map(Into::into),
                local_port: hop.local_port,
                prefix: hop.prefix.into(),
                lines: lines.clone(),
            });
            lines
        });
        Some(Forwarded(lines))
    }

    /// Removes the forwarded headers that arrived, which these replace. One pass over the names
    /// finds whether there are any (most requests carry none), so none is hashed in vain.
    pub fn strip(headers: &mut HeaderMap) {
        if headers.keys().any(|k| NAMES.contains(k)) {
            for name in NAMES {
                headers.remove(name);
            }
        }
    }

    /// The header lines, each `name: value\r\n`.
    pub fn lines(&self) -> &[u8] {
        &self.0
    }

    /// Adds them to a map, for an upstream request that is sent from one (hyper's client).
    pub fn add_to(&self, headers: &mut HeaderMap) {
        for line in self.0.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) {
                headers.append(name, value);
            }
        }
    }
}

/// This hop's own values: `X-Forwarded-For`'s address and `Forwarded`'s element.
fn own_values(ip: IpAddr, proto: &'static str, host: Option<&str>) -> (HeaderValue, HeaderValue) {
    struct Own {
        ip: IpAddr,
        proto: &'static str,
        host: Option<Box<str>>,
        xff: HeaderValue,
        forwarded: HeaderValue,
    }
    thread_local! {
        static LAST: RefCell<Option<Own>> = const { RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some(own) = last.as_ref()
            && own.ip == ip
            && own.proto == proto
            && own.host.as_deref() == host
        {
            return (own.xff.clone(), own.forwarded.clone());
        }
        // Forwarded's element first; X-Forwarded-For takes the address from it. RFC 7239: IPv6
        // addresses are quoted and bracketed.
        let mut forwarded = Vec::with_capacity(64);
        forwarded.extend_from_slice(b"for=");
        let ip_start = if ip.is_ipv6() { 6 } else { 4 };
        if ip.is_ipv6() {
            forwarded.extend_from_slice(b"\"[");
        }
        // Writing into a Vec cannot fail.
        let _ = write!(forwarded, "{ip}");
        let ip_end = forwarded.len();
        if ip.is_ipv6() {
            forwarded.extend_from_slice(b"]\"");
        }
        forwarded.extend_from_slice(b";proto=");
        forwarded.extend_from_slice(proto.as_bytes());
        if let Some(h) = host {
            forwarded.extend_from_slice(b";host=\"");
            forwarded.extend_from_slice(h.as_bytes());
            forwarded.push(b'"');
        }
        let forwarded = Bytes::from(forwarded);
        // An address and a host that was already a header value: both are valid header values.
        let xff = HeaderValue::from_maybe_shared(forwarded.slice(ip_start..ip_end))
            .expect("an IP address is a valid header value");
        let forwarded =
            HeaderValue::from_maybe_shared(forwarded).expect("built from valid header values");
        let own = last.insert(Own {
            ip,
            proto,
            host: host.map(Into::into),
            xff,
            forwarded,
        });
        (own.xff.clone(), own.forwarded.clone())
    })
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

    #[test]
    fn headers_for_untrusted_ipv4_and_trusted_ipv6_peers() {
        let host = HeaderValue::from_static("example.com:8443");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("forwarded", HeaderValue::from_static("for=6.6.6.6"));
        let hop = Hop {
            peer: "10.1.2.3:5000".parse().unwrap(),
            trusted: false,
            proto: "https",
            host: Some(&host),
            local_port: 443,
            prefix: "",
        };
        apply(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(
            h["forwarded"],
            "for=10.1.2.3;proto=https;host=\"example.com:8443\""
        );
        assert_eq!(h["x-forwarded-port"], "8443");
        assert_eq!(h["x-forwarded-proto"], "https");

        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("forwarded", HeaderValue::from_static("for=1.1.1.1"));
        let hop = Hop {
            peer: "[2001:db8::1]:5000".parse().unwrap(),
            trusted: true,
            proto: "http",
            host: None,
            local_port: 80,
            prefix: "/api",
        };
        apply(&mut h, &hop);
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2001:db8::1");
        assert_eq!(
            h["forwarded"],
            "for=1.1.1.1, for=\"[2001:db8::1]\";proto=http"
        );
        assert_eq!(h["x-forwarded-port"], "80");
        assert_eq!(h["x-forwarded-prefix"], "/api");
    }
}
