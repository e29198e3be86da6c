//! Compiled route predicates: Path, Host, Method, Header, Query, Cookie, RemoteAddr, Weight, and
//! After/Before/Between.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, Method};
use regex::Regex;

use crate::definition::Spec;
use crate::pattern::{Captures, Pattern};

/// What predicates look at; built once per request.
#[derive(Debug)]
pub struct RequestView<'a> {
    pub method: &'a Method,
    /// The normalised path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// Lower-case host without port.
    pub host: &'a str,
    pub headers: &'a http::HeaderMap,
    pub client_ip: IpAddr,
    /// One uniform draw in [0, 1) per request, shared by every Weight group.
    pub weight_draw: f64,
}

/// One compiled predicate.
#[derive(Debug, Clone)]
pub enum Predicate {
    /// Patterns, and whether a trailing `/` the pattern lacks is ignored (SCG's `matchTrailingSlash`).
    Path(Vec<Pattern>, bool),
    Host(Vec<Pattern>),
    Method(Vec<Method>),
    Header {
        name: HeaderName,
        regex: Option<Regex>,
    },
    Query {
        param: String,
        regex: Option<Regex>,
    },
    Cookie {
        name: String,
        regex: Regex,
    },
    RemoteAddr(Vec<Cidr>),
    /// `After`, `Before`, `Between`: the request arrives after `after` and before `before`.
    Time {
        after: Option<SystemTime>,
        before: Option<SystemTime>,
    },
    /// Matches when the request's draw falls in `[lo, hi)`; ranges are assigned per group at compile time.
    Weight {
        group: String,
        weight: u32,
        lo: f64,
        hi: f64,
    },
}

/// Why a predicate could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("predicate `{name}`: {reason}")]
pub struct PredicateError {
    pub name: String,
    pub reason: String,
}

fn err(spec: &Spec, reason: impl Into<String>) -> PredicateError {
    PredicateError {
        name: spec.name.clone(),
        reason: reason.into(),
    }
}

fn regex_arg(spec: &Spec, name: &str, pos: usize) -> Result<Option<Regex>, PredicateError> {
    spec.arg(name, pos)
        .filter(|r| !r.is_empty())
        .map(|r| Regex::new(&format!("^(?:{r})$")).map_err(|e| err(spec, e.to_string())))
        .transpose()
}

/// An instant as Spring Cloud Gateway writes one: `2017-01-20T17:42:47.789-07:00[America/Denver]`
/// (RFC 3339; the zone name is dropped, the offset fixes the instant; Java omits `:00` seconds),
/// or milliseconds since the Unix epoch.
fn instant(spec: &Spec, name: &str, pos: usize) -> Result<SystemTime, PredicateError> {
    let raw = spec
        .arg(name, pos)
        .ok_or_else(|| err(spec, format!("needs `{name}`")))?
        .trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = raw
            .parse()
            .map_err(|_| err(spec, format!("`{raw}` is out of range")))?;
        return Ok(UNIX_EPOCH + Duration::from_millis(ms));
    }
    let text = raw.split_once('[').map_or(raw, |(t, _)| t);
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(text, rfc3339).or_else(|e| {
        // `…T17:42-07:00`: a time without seconds, as Java's ZonedDateTime prints one.
        match text.find('T').map(|t| t + 6) {
            Some(at) if text.len() > at && !text[at..].starts_with(':') => {
                let with_seconds = format!("{}:00{}", &text[..at], &text[at..]);
                time::OffsetDateTime::parse(&with_seconds, rfc3339).map_err(|_| e)
            }
            _ => Err(e),
        }
    });
    parsed.map(SystemTime::from).map_err(|e| {
        err(
            spec,
            format!("`{raw}` is not an instant such as 2017-01-20T17:42:47.789-07:00[America/Denver] ({e})"),
        )
    })
}

impl Predicate {
    /// Compiles one predicate; an argument it does not read is refused, naming the ones it does.
    pub fn compile(spec: &Spec) -> Result<Predicate, PredicateError> {
        let (compiled, unread) = spec.reading(|| Self::compile_args(spec));
        let compiled = compiled?;
        if let Some(why) = unread.refusal() {
            return Err(err(spec, why));
        }
        Ok(compiled)
    }

    fn compile_args(spec: &Spec) -> Result<Predicate, PredicateError> {
        match spec.name.as_str() {
            "Path" => {
                let mut list = spec.list("patterns");
                // Named, or SCG's shortcut tail flag (`Path=/a/{x},false`); spelt
                // `matchOptionalTrailingSeparator` before SCG 4.
                let named = match (
                    spec.arg("matchTrailingSlash", usize::MAX),
                    spec.arg("matchOptionalTrailingSeparator", usize::MAX),
                ) {
                    (Some(a), Some(b)) if !a.trim().eq_ignore_ascii_case(b.trim()) => {
                        return Err(err(
                            spec,
                            "`matchTrailingSlash` and `matchOptionalTrailingSeparator` disagree",
                        ));
                    }
                    (a, b) => a.or(b),
                };
                let flag = match named {
                    Some(v) => Some(v),
                    None => list
                        .last()
                        .copied()
                        .filter(|v| {
                            v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
                        })
                        .inspect(|_| {
                            list.pop();
                        }),
                };
                let trailing = match flag.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => {
                        return Err(err(
                            spec,
                            format!("`matchTrailingSlash` must be true or false, not `{v}`"),
                        ));
                    }
                };
                if list.is_empty() {
                    return Err(err(spec, "needs at least one pattern"));
                }
                list.into_iter()
                    .map(|p| Pattern::path(p).map_err(|e| err(spec, e.to_string())))
                    .collect::<Result<_, _>>()
                    .map(|ps| Predicate::Path(ps, trailing))
            }
            "Host" => spec
                .list("patterns")
                .into_iter()
                .map(|p| Pattern::host(p).map_err(|e| err(spec, e.to_string())))
                .collect::<Result<_, _>>()
                .map(Predicate::Host),
            "Method" => spec
                .list("methods")
                .into_iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|e| err(spec, e.to_string()))
                })
                .collect::<Result<_, _>>()
                .map(Predicate::Method),
            "Header" => {
                let name = spec
                    .arg("header", 0)
                    .ok_or_else(|| err(spec, "needs a header name"))?;
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| err(spec, e.to_string()))?;
                Ok(Predicate::Header {
                    name,
                    regex: regex_arg(spec, "regexp", 1)?,
                })
            }
            "Query" => {
                let param = spec
                    .arg("param", 0)
                    .ok_or_else(|| err(spec, "needs a parameter name"))?;
                Ok(Predicate::Query {
                    param: param.to_owned(),
                    regex: regex_arg(spec, "regexp", 1)?,
                })
            }
            "Cookie" => {
                let name = spec
                    .arg("name", 0)
                    .ok_or_else(|| err(spec, "needs a cookie name"))?;
                let regex =
                    regex_arg(spec, "regexp", 1)?.ok_or_else(|| err(spec, "needs a regexp"))?;
                Ok(Predicate::Cookie {
                    name: name.to_owned(),
                    regex,
                })
            }
            "RemoteAddr" => spec
                .list("sources")
                .into_iter()
                .map(|s| s.parse::<Cidr>().map_err(|e| err(spec, e)))
                .collect::<Result<_, _>>()
                .map(Predicate::RemoteAddr),
            "After" => Ok(Predicate::Time {
                after: Some(instant(spec, "datetime", 0)?),
                before: None,
            }),
            "Before" => Ok(Predicate::Time {
                after: None,
                before: Some(instant(spec, "datetime", 0)?),
            }),
            "Between" => {
                let (after, before) = (
                    instant(spec, "datetime1", 0)?,
                    instant(spec, "datetime2", 1)?,
                );
                if after >= before {
                    return Err(err(spec, "the first instant must come before the second"));
                }
                Ok(Predicate::Time {
                    after: Some(after),
                    before: Some(before),
                })
            }
            "Weight" => {
                let group = spec
                    .arg("group", 0)
                    .ok_or_else(|| err(spec, "needs a group"))?;
                let weight = spec
                    .arg("weight", 1)
                    .ok_or_else(|| err(spec, "needs a weight"))?;
                let weight = weight
                    .parse()
                    .map_err(|_| err(spec, format!("weight `{weight}` is not an integer")))?;
                Ok(Predicate::Weight {
                    group: group.to_owned(),
                    weight,
                    lo: 0.0,
                    hi: 0.0,
                })
            }
            other => Err(err(
                spec,
                format!(
                    "unknown predicate `{other}` (known: Path, Host, Method, Header, Query, Cookie, RemoteAddr, Weight, \
                     After, Before, Between)"
                ),
            )),
        }
    }

    /// Whether `now` lies after `after` and before `before` (bounds excluded, as Spring's
    /// `isAfter`/`isBefore`).
    fn within(after: Option<SystemTime>, before: Option<SystemTime>, now: SystemTime) -> bool {
        after.is_none_or(|a| now > a) && before.is_none_or(|b| now < b)
    }

    /// Evaluates against a request; Path/Host variables are appended to `captures`.
    #[inline]
    pub fn test(&self, req: &RequestView<'_>, captures: &mut Captures) -> bool {
        match self {
            Predicate::Path(ps, trailing) => ps.iter().any(|p| {
                (*trailing || p.allows_trailing(req.path)) && p.matches(req.path, Some(captures))
            }),
            Predicate::Host(ps) => ps.iter().any(|p| p.matches(req.host, Some(captures))),
            Predicate::Method(ms) => ms.contains(req.method),
            Predicate::Header { name, regex } => req.headers.get_all(name).iter().any(|v| {
                regex
                    .as_ref()
                    .is_none_or(|r| v.to_str().is_ok_and(|s| r.is_match(s)))
            }),
            Predicate::Query { param, regex } => req.query.is_some_and(|q| {
                q.split('&').any(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    k == param && regex.as_ref().is_none_or(|r| r.is_match(v))
                })
            }),
            Predicate::Cookie { name, regex } => {
                req.headers.get_all(http::header::COOKIE).iter().any(|v| {
                    v.to_str().is_ok_and(|s| {
                        s.split(';').any(|c| {
                            c.trim()
                                .split_once('=')
                                .is_some_and(|(k, v)| k == name && regex.is_match(v))
                        })
                    })
                })
            }
            Predicate::RemoteAddr(cidrs) => cidrs.iter().any(|c| c.contains(req.client_ip)),
            Predicate::Time { after, before } => Self::within(*after, *before, SystemTime::now()),
            Predicate::Weight { lo, hi, .. } => req.weight_draw >= *lo && req.weight_draw < *hi,
        }
    }
}

/// An address block such as `10.0.0.0/8`, `192.168.1.7` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("bad prefix in `{s}`"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

/// Assigns each Weight predicate its slice of [0, 1) within its group.
pub fn assign_weights<'a>(preds: impl Iterator<Item = &'a mut Predicate>) {
    let mut all: Vec<&mut Predicate> = preds
        .filter(|p| matches!(p, Predicate::Weight { .. }))
        .collect();
    let mut totals: std::collections::HashMap<String, (u64, u64)> =
        std::collections::HashMap::new();
    for p in &all {
        if let Predicate::Weight { group, weight, .. } = p {
            totals.entry(group.clone()).or_default().0 += u64::from(*weight);
        }
    }
    for p in &mut all {
        if let Predicate::Weight {
            group,
            weight,
            lo,
            hi,
        } = p
        {
            let (total, used) = totals
                .get_mut(group.as_str())
                .map(|t| (t.0, &mut t.1))
                .expect("counted above");
            let total = total.max(1) as f64;
            *lo = *used as f64 / total;
            *used += u64::from(*weight);
            *hi = *used as f64 / total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
    }

    fn path_matches(spec: &Spec, path: &str) -> bool {
        let headers = http::HeaderMap::new();
        let view = RequestView {
            method: &Method::GET,
            path,
            query: None,
            host: "h",
            headers: &headers,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            weight_draw: 0.0,
        };
        Predicate::compile(spec)
            .unwrap()
            .test(&view, &mut Captures::new())
    }

    #[test]
    fn a_trailing_slash_is_ignored_unless_match_trailing_slash_is_false() {
        let named = |flag: &str| Spec {
            name: "Path".into(),
            args: vec![
                ("patterns".into(), "/red/{segment},/blue/**".into()),
                ("matchTrailingSlash".into(), flag.into()),
            ],
        };
        assert!(path_matches(&named("true"), "/red/a/"));
        assert!(!path_matches(&named("false"), "/red/a/"));
        assert!(path_matches(&named("false"), "/red/a"));
        assert!(
            path_matches(&named("false"), "/blue/a/"),
            "`**` takes the slash"
        );
        let rest = Spec::shortcut("Path=/green/{*rest},false").unwrap();
        assert!(path_matches(&rest, "/green/a/"), "so does `{{*rest}}`");
        let tail = Spec::shortcut("Path=/red/{segment},false").unwrap();
        assert!(!path_matches(&tail, "/red/a/"));
        assert!(path_matches(
            &Spec::shortcut("Path=/red/{segment}").unwrap(),
            "/red/a/"
        ));
        let e = Predicate::compile(&named("maybe")).unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
    }

    #[test]
    fn an_argument_the_predicate_does_not_read_is_refused() {
        let spec = Spec {
            name: "Header".into(),
            args: vec![
                ("header".into(), "X-Id".into()),
                ("regex".into(), "\\d+".into()),
            ],
        };
        let e = Predicate::compile(&spec).unwrap_err().to_string();
        assert!(
            e.contains("unknown argument `regex`") && e.contains("regexp"),
            "{e}"
        );
    }

    fn at(spec: &str) -> Result<SystemTime, PredicateError> {
        instant(&Spec::shortcut(spec).unwrap(), "datetime", 0)
    }

    #[test]
    fn instants_are_read_in_spring_cloud_gateways_forms() {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis();
        let want = 1_484_959_367_789;
        assert_eq!(
            ms(at("After=2017-01-20T17:42:47.789-07:00[America/Denver]").unwrap()),
            want
        );
        assert_eq!(ms(at("After=2017-01-21T00:42:47.789Z").unwrap()), want);
        assert_eq!(ms(at("After=1484959367789").unwrap()), want);
        assert_eq!(
            ms(at("After=2017-01-20T17:42-07:00[America/Denver]").unwrap()),
            1_484_959_320_000,
            "Java leaves out zero seconds"
        );
        for bad in [
            "After=yesterday",
            "After=2017-01-20",
            "After=2017-13-01T00:00:00Z",
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
        let between = Spec::shortcut("Between=2018-01-01T00:00:00Z, 2017-01-01T00:00:00Z").unwrap();
        assert!(Predicate::compile(&between).is_err(), "reversed bounds");
    }

    #[test]
    fn time_bounds_are_exclusive() {
        let t = UNIX_EPOCH + Duration::from_secs(1000);
        let s = Duration::from_secs(1);
        assert!(Predicate::within(Some(t - s), Some(t + s), t));
        assert!(
            !Predicate::within(Some(t), None, t),
            "After is strictly after"
        );
        assert!(
            !Predicate::within(None, Some(t), t),
            "Before is strictly before"
        );
        assert!(Predicate::within(None, None, t));
    }
}
