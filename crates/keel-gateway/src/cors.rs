//! CORS, as Spring Cloud Gateway configures it and Spring's `DefaultCorsProcessor` applies it.
//!
//! Global settings come from `spring.cloud.gateway.globalcors.cors-configurations.[<path pattern>].*`
//! and apply before routing, so a preflight is answered even where no route's predicates admit
//! `OPTIONS` (SCG's `add-to-simple-url-handler-mapping`); a route's metadata `cors.*` overrides them
//! for that route. A request without `Origin`, or whose `Origin` is the gateway's own, is not a CORS
//! request. A preflight is answered by the gateway; a request from an origin, or (for a preflight)
//! with a method or headers, that is not allowed gets 403; an allowed request goes on and its
//! response gets `Access-Control-Allow-Origin` and its companions in place of the backend's own.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use regex::Regex;

/// One compiled CORS configuration.
#[derive(Debug)]
pub struct Cors {
    /// Exact origins (lower case, without a trailing `/`); `*` allows any.
    origins: Vec<String>,
    any_origin: bool,
    origin_patterns: Vec<Regex>,
    /// `None`: any method (`*`).
    methods: Option<Vec<Method>>,
    /// The `Access-Control-Allow-Methods` of a preflight when methods are listed.
    methods_value: HeaderValue,
    /// Lower case; `None`: any header (`*`).
    headers: Option<Vec<String>>,
    exposed: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

/// What a CORS configuration says of a request.
#[derive(Debug)]
pub enum Verdict {
    /// A preflight, answered here.
    Preflight(Response<axum::body::Body>),
    /// Allowed: the response gets these headers (`Access-Control-Allow-Origin` and companions).
    Allowed(HeaderValue),
    /// Refused (403), with why.
    Refused(&'static str),
    /// Not a CORS request (no `Origin`, or the gateway's own).
    NotCors,
}

const VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

impl Cors {
    /// Compiles settings given as `(key, value)`, keys relaxed as Spring binds them
    /// (`allowedOrigins`, `allowed-origins`, `allowedOrigins[0]`).
    pub fn compile<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Cors, String> {
        let mut origins = Vec::new();
        let mut patterns = Vec::new();
        let mut methods: Vec<String> = Vec::new();
        let mut headers: Vec<String> = Vec::new();
        let mut exposed: Vec<String> = Vec::new();
        let mut credentials = false;
        let mut max_age = None;
        for (key, value) in settings {
            let base = key.split('[').next().unwrap_or(key);
            let relaxed: String = base
                .chars()
                .filter(|c| *c != '-' && *c != '_')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            let items = split_list(value).into_iter().map(str::to_owned);
            match relaxed.as_str() {
                "allowedorigins" => origins.extend(items),
                "allowedoriginpatterns" => patterns.extend(items),
                "allowedmethods" => methods.extend(items),
                "allowedheaders" => headers.extend(items),
                "exposedheaders" => exposed.extend(items),
                "allowcredentials" => {
                    credentials = match value.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        v => {
                            return Err(format!(
                                "`allowCredentials` must be true or false, not `{v}`"
                            ));
                        }
                    }
                }
                "maxage" => {
                    let secs: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| format!("`maxAge` must be whole seconds, not `{value}`"))?;
                    max_age = Some(HeaderValue::from(secs));
                }
                _ => {
                    return Err(format!(
                        "unknown CORS setting `{key}` (known: allowedOrigins, allowedOriginPatterns, \
                         allowedMethods, allowedHeaders, exposedHeaders, allowCredentials, maxAge)"
                    ));
                }
            }
        }
        let any_origin = origins.iter().any(|o| o == "*");
        if credentials && any_origin {
            return Err(
                "`allowCredentials` with `allowedOrigins: \"*\"` would let any site act with the user's \
                 credentials; list the origins, or use `allowedOriginPatterns`"
                    .into(),
            );
        }
        let origins = origins
            .into_iter()
            .filter(|o| o != "*")
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        let origin_patterns = patterns
            .iter()
            .map(|p| origin_pattern(p))
            .collect::<Result<_, _>>()?;
        let methods = if methods.iter().any(|m| m == "*") {
            None
        } else if methods.is_empty() {
            // Spring's default when none are given.
            Some(vec![Method::GET, Method::HEAD])
        } else {
            Some(
                methods
                    .iter()
                    .map(|m| {
                        Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                            .map_err(|_| format!("`{m}` is not an HTTP method"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        };
        let methods_value = HeaderValue::from_str(
            &methods
                .iter()
                .flatten()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(","),
        )
        .map_err(|e| e.to_string())?;
        let headers = if headers.iter().any(|h| h == "*") {
            None
        } else {
            Some(headers.iter().map(|h| h.to_ascii_lowercase()).collect())
        };
        let exposed = if exposed.is_empty() {
            None
        } else {
            Some(HeaderValue::from_str(&exposed.join(",")).map_err(|e| e.to_string())?)
        };
        Ok(Cors {
            origins,
            any_origin,
            origin_patterns,
            methods,
            methods_value,
            headers,
            exposed,
            credentials,
            max_age,
        })
    }

    fn allows_origin(&self, origin: &str) -> bool {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        self.any_origin
            || self.origins.contains(&o)
            || self.origin_patterns.iter().any(|p| p.is_match(&o))
    }

    fn allows_method(&self, m: &Method) -> bool {
        self.methods.as_ref().is_none_or(|ms| ms.contains(m))
    }

    /// Judges a CORS request (one with a foreign `Origin`).
    pub fn judge(&self, method: &Method, origin: &HeaderValue, headers: &HeaderMap) -> Verdict {
        let Ok(o) = origin.to_str() else {
            return Verdict::Refused("origin is not text");
        };
        if !self.allows_origin(o) {
            return Verdict::Refused("origin not allowed");
        }
        // With credentials the origin itself is echoed, never `*` (which browsers then refuse).
        let allow_origin = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        };
        let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD);
        let Some(requested) = requested.filter(|_| method == Method::OPTIONS) else {
            return if self.allows_method(method) {
                Verdict::Allowed(allow_origin)
            } else {
                Verdict::Refused("method not allowed")
            };
        };
        let Ok(want) = Method::from_bytes(requested.as_bytes()) else {
            return Verdict::Refused("bad Access-Control-Request-Method");
        };
        if !self.allows_method(&want) {
            return Verdict::Refused("method not allowed");
        }
        let asked: Vec<&str> = headers
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if let Some(allowed) = &self.headers
            && !asked
                .iter()
                .all(|h| allowed.iter().any(|a| a.eq_ignore_ascii_case(h)))
        {
            return Verdict::Refused("header not allowed");
        }
        let mut resp = Response::new(axum::body::Body::empty());
        let h = resp.headers_mut();
        self.decorate(h, allow_origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            match self.methods {
                Some(_) => self.methods_value.clone(),
                None => requested.clone(),
            },
        );
        if !asked.is_empty()
            && let Ok(v) = HeaderValue::from_str(&asked.join(", "))
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = &self.max_age {
            h.insert(header::ACCESS_CONTROL_MAX_AGE, age.clone());
        }
        Verdict::Preflight(resp)
    }

    /// Puts the CORS answer on a response, replacing any the backend gave.
    pub fn decorate(&self, h: &mut HeaderMap, allow_origin: HeaderValue) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        if self.credentials {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        } else {
            h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        match &self.exposed {
            Some(e) => {
                h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
            }
            None => {
                h.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
            }
        }
        vary(h);
    }
}

/// Says that the answer varies by origin, as Spring does for every request a CORS configuration
/// covers, so a cache never serves one origin's answer to another.
pub fn vary(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("Origin")));
    if !present {
        h.append(header::VARY, HeaderValue::from_static(VARY));
    }
}

/// A comma-separated list, where a comma inside `[…]` (a pattern's port list) does not split.
fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in value.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `origin` is the gateway's own (`scheme://Host`): a same-origin request is not CORS.
pub fn same_origin(origin: &HeaderValue, tls: bool, host: Option<&HeaderValue>) -> bool {
    let (Ok(o), Some(Ok(h))) = (origin.to_str(), host.map(HeaderValue::to_str)) else {
        return false;
    };
    let scheme = if tls { "https://" } else { "http://" };
    o.strip_prefix(scheme)
        .is_some_and(|rest| rest.eq_ignore_ascii_case(h))
}

/// Spring's origin patterns: `*` for any part of a host, and `:[*]` or `:[8080,8081]` for ports.
fn origin_pattern(p: &str) -> Result<Regex, String> {
    let p = p.trim().trim_end_matches('/').to_ascii_lowercase();
    let (base, ports) = match p.rsplit_once(":[") {
        Some((b, rest)) => (
            b,
            rest.strip_suffix(']')
                .map(Some)
                .ok_or_else(|| format!("bad origin pattern `{p}`"))?,
        ),
        None => (p.as_str(), None),
    };
    let mut re = String::from("^");
    re.push_str(&regex::escape(base).replace("\\*", ".*"));
    match ports {
        None => {}
        Some("*") => re.push_str("(:[0-9]+)?"),
        Some(list) => {
            let alts: Vec<String> = list
                .split(',')
                .map(str::trim)
                .map(|n| {
                    n.parse::<u16>()
                        .map(|n| n.to_string())
                        .map_err(|_| format!("bad port `{n}` in origin pattern `{p}`"))
                })
                .collect::<Result<_, _>>()?;
            re.push_str(&format!("(:({}))?", alts.join("|")));
        }
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("bad origin pattern `{p}`: {e}"))
}

/// The 403 for a refused CORS request.
pub fn refused(
    why: &'static str,
    path: &str,
    request_id: &HeaderValue,
) -> Response<axum::body::Body> {
    crate::respond::error(
        StatusCode::FORBIDDEN,
        "cors_rejected",
        &format!("Invalid CORS request: {why}"),
        path,
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(pairs: &[(&str, &str)]) -> Cors {
        Cors::compile(pairs.iter().copied()).unwrap()
    }

    fn req(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const SITE: HeaderValue = HeaderValue::from_static("https://app.example.com");

    #[test]
    fn origins_exact_wildcard_and_patterns() {
        let c = cors(&[("allowedOrigins", "https://app.example.com/")]);
        assert!(
            matches!(c.judge(&Method::GET, &SITE, &HeaderMap::new()), Verdict::Allowed(o) if o == SITE)
        );
        let evil = HeaderValue::from_static("https://evil.example");
        assert!(matches!(
            c.judge(&Method::GET, &evil, &HeaderMap::new()),
            Verdict::Refused(_)
        ));
        let any = cors(&[("allowed-origins[0]", "*")]);
        assert!(
            matches!(any.judge(&Method::GET, &evil, &HeaderMap::new()), Verdict::Allowed(o) if o == "*")
        );
        let p = cors(&[(
            "allowedOriginPatterns",
            "https://*.example.com:[*], http://localhost:[3000,3001]",
        )]);
        for (o, ok) in [
            ("https://app.example.com", true),
            ("https://app.example.com:8443", true),
            ("http://localhost:3001", true),
            ("http://localhost:4000", false),
            ("https://example.org", false),
        ] {
            let v = p.judge(
                &Method::GET,
                &HeaderValue::from_static(o),
                &HeaderMap::new(),
            );
            assert_eq!(matches!(v, Verdict::Allowed(_)), ok, "{o}");
        }
        // Credentials echo the origin.
        let cred = cors(&[
            ("allowedOriginPatterns", "https://*"),
            ("allowCredentials", "true"),
        ]);
        assert!(
            matches!(cred.judge(&Method::GET, &SITE, &HeaderMap::new()), Verdict::Allowed(o) if o == SITE)
        );
    }

    #[test]
    fn preflights_check_method_and_headers_as_spring_does() {
        let c = cors(&[
            ("allowedOrigins", "*"),
            ("allowedMethods", "GET,POST"),
            ("allowedHeaders", "Content-Type, X-Token"),
            ("maxAge", "600"),
        ]);
        let ok = req(&[
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-token"),
        ]);
        let Verdict::Preflight(r) = c.judge(&Method::OPTIONS, &SITE, &ok) else {
            panic!("a preflight")
        };
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "content-type, x-token");
        assert_eq!(h["access-control-max-age"], "600");
        let put = req(&[("access-control-request-method", "PUT")]);
        assert!(matches!(
            c.judge(&Method::OPTIONS, &SITE, &put),
            Verdict::Refused("method not allowed")
        ));
        let odd = req(&[
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-other"),
        ]);
        assert!(matches!(
            c.judge(&Method::OPTIONS, &SITE, &odd),
            Verdict::Refused("header not allowed")
        ));
        // Spring's defaults: GET and HEAD, and no request headers.
        let d = cors(&[("allowedOrigins", "*")]);
        assert!(matches!(
            d.judge(
                &Method::OPTIONS,
                &SITE,
                &req(&[("access-control-request-method", "DELETE")])
            ),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            d.judge(
                &Method::OPTIONS,
                &SITE,
                &req(&[("access-control-request-method", "HEAD")])
            ),
            Verdict::Preflight(_)
        ));
        // A plain OPTIONS (no Access-Control-Request-Method) is an ordinary request.
        assert!(matches!(
            d.judge(&Method::OPTIONS, &SITE, &HeaderMap::new()),
            Verdict::Refused("method not allowed")
        ));
    }

    #[test]
    fn bad_settings_are_refused() {
        for (pairs, says) in [
            (
                vec![("allowedOrigins", "*"), ("allowCredentials", "true")],
                "allowCredentials",
            ),
            (vec![("allowedMethod", "GET")], "unknown CORS setting"),
            (vec![("maxAge", "30m")], "whole seconds"),
            (
                vec![("allowedOriginPatterns", "http://x:[abc]")],
                "bad port",
            ),
            (vec![("allowCredentials", "yes")], "true or false"),
        ] {
            let e = Cors::compile(pairs.iter().copied()).unwrap_err();
            assert!(e.contains(says), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn same_origin_is_not_cors() {
        let host = HeaderValue::from_static("gw.example.com:8080");
        assert!(same_origin(
            &HeaderValue::from_static("http://gw.example.com:8080"),
            false,
            Some(&host)
        ));
        assert!(!same_origin(
            &HeaderValue::from_static("https://gw.example.com:8080"),
            false,
            Some(&host)
        ));
        assert!(!same_origin(&SITE, false, Some(&host)));
    }
}
