//! Compiled route filters: path rewrites, header edits, status, redirects, size limits, security headers.

use http::{HeaderName, HeaderValue, StatusCode};
use regex::Regex;

use crate::definition::Spec;
use crate::pattern::Captures;
use crate::retry::RetryPolicy;

/// One compiled filter that acts on the request or the response.
#[derive(Debug, Clone)]
pub enum Filter {
    StripPrefix(usize),
    PrefixPath(String),
    RewritePath {
        regex: Regex,
        replacement: String,
    },
    SetPath(String),
    AddRequestHeader(HeaderName, HeaderValue),
    SetRequestHeader(HeaderName, HeaderValue),
    RemoveRequestHeader(HeaderName),
    /// `MapRequestHeader`: every value of the first header is also sent under the second.
    MapRequestHeader(HeaderName, HeaderName),
    /// `AddRequestParameter`: `name=value` appended to the query (both already valid query text).
    AddRequestParameter(String, String),
    /// `RemoveRequestParameter`: every `name=…` pair dropped from the query.
    RemoveRequestParameter(String),
    AddResponseHeader(HeaderName, HeaderValue),
    SetResponseHeader(HeaderName, HeaderValue),
    RemoveResponseHeader(HeaderName),
    /// `RewriteLocationResponseHeader`: a redirect's backend `host[:port]` replaced by the host the
    /// client asked for (or a fixed one).
    RewriteLocation(Box<LocationRewrite>),
    /// `RewriteResponseHeader`: every match of the regex in each value of the header replaced.
    RewriteResponseHeader {
        name: HeaderName,
        regex: Regex,
        replacement: String,
    },
    /// `DedupeResponseHeader`: repeated values of each named header reduced to one.
    DedupeResponseHeader(Vec<HeaderName>, Dedupe),
    SetStatus(StatusCode),
    /// Status, URL, and whether the request's query is carried over (SCG's `includeRequestParams`).
    RedirectTo(StatusCode, HeaderValue, bool),
    /// Largest body in bytes; larger declared bodies get 413.
    RequestSize(u64),
    SecureHeaders,
}

impl Filter {
    /// Whether the filter reads, replaces or removes response headers, which then have to be in
    /// the response's map (adding one, `AddResponseHeader`, does not need the upstream's there).
    pub fn edits_response_headers(&self) -> bool {
        matches!(
            self,
            Filter::SetResponseHeader(..)
                | Filter::RemoveResponseHeader(_)
                | Filter::RewriteLocation(_)
                | Filter::RewriteResponseHeader { .. }
                | Filter::DedupeResponseHeader(..)
                | Filter::SecureHeaders
        )
    }
}

/// Which values `DedupeResponseHeader` keeps (Spring Cloud Gateway's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedupe {
    /// `RETAIN_FIRST` (the default): the first value.
    First,
    /// `RETAIN_LAST`: the last value.
    Last,
    /// `RETAIN_UNIQUE`: each distinct value once, in order.
    Unique,
}

impl Dedupe {
    /// Applies the strategy to `name`'s values in `headers`.
    pub fn apply(self, headers: &mut http::HeaderMap, name: &HeaderName) {
        let values: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
        if values.len() < 2 {
            return;
        }
        let kept: Vec<HeaderValue> = match self {
            Dedupe::First => values.into_iter().take(1).collect(),
            Dedupe::Last => values.into_iter().last().into_iter().collect(),
            Dedupe::Unique => {
                let mut kept: Vec<HeaderValue> = Vec::with_capacity(values.len());
                for v in values {
                    if !kept.contains(&v) {
                        kept.push(v);
                    }
                }
                kept
            }
        };
        headers.remove(name);
        for v in kept {
            headers.append(name, v);
        }
    }
}

/// `RewriteLocationResponseHeader`'s settings.
#[derive(Debug, Clone)]
pub struct LocationRewrite {
    pub strip: StripVersion,
    pub header: HeaderName,
    /// The host put in; `None`: the request's `Host`.
    pub host: Option<HeaderValue>,
    /// Schemes rewritten (SCG's `protocolsRegex`, anchored).
    pub protocols: Regex,
}

/// Whether a `/v<n>` right after the host is dropped too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripVersion {
    Never,
    /// Only when the request's own path has no version (`/v<n>/…`) in front.
    AsInRequest,
    Always,
}

impl LocationRewrite {
    /// SCG's rewrite of one value: `scheme://host[:port]` (and `/v<n>` when stripping) followed by
    /// `/` becomes `scheme://<host>`; anything else is left as it is.
    pub fn fix(&self, location: &str, host: &str, request_path: &str) -> Option<String> {
        let (scheme, rest) = location.split_once("://")?;
        if !self.protocols.is_match(scheme) {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let (name, port) = authority.split_once(':').unwrap_or((authority, "0"));
        if name.is_empty()
            || port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || !rest[end..].starts_with('/')
        {
            return None;
        }
        let mut tail = &rest[end..];
        let strip = match self.strip {
            StripVersion::Never => false,
            StripVersion::Always => true,
            StripVersion::AsInRequest => {
                version_len(request_path).is_none_or(|n| !request_path[n..].starts_with('/'))
            }
        };
        if strip
            && let Some(n) = version_len(tail)
            && tail[n..].starts_with('/')
        {
            tail = &tail[n..];
        }
        Some(format!("{scheme}://{host}{tail}"))
    }
}

/// The length of a leading `/v<digits>`.
fn version_len(path: &str) -> Option<usize> {
    let digits = path
        .strip_prefix("/v")?
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    (digits > 0).then_some(2 + digits)
}

/// `RewriteResponseHeader`: replaces every match in each value of `name`; a value the replacement
/// would make invalid is left as it was.
pub fn rewrite_header(
    headers: &mut http::HeaderMap,
    name: &HeaderName,
    regex: &Regex,
    replacement: &str,
) {
    if !headers.contains_key(name) {
        return;
    }
    let values: Vec<HeaderValue> = headers
        .get_all(name)
        .iter()
        .map(|v| match v.to_str() {
            Ok(text) => match regex.replace_all(text, replacement) {
                std::borrow::Cow::Owned(new) => {
                    HeaderValue::from_str(&new).unwrap_or_else(|_| v.clone())
                }
                std::borrow::Cow::Borrowed(_) => v.clone(),
            },
            Err(_) => v.clone(),
        })
        .collect();
    headers.remove(name);
    for v in values {
        headers.append(name, v);
    }
}

/// The `Host` header sent upstream.
#[derive(Debug, Clone, Default)]
pub enum UpstreamHost {
    /// The backend's own address (the default, as in Spring Cloud Gateway).
    #[default]
    Backend,
    /// `PreserveHostHeader`: the client's.
    Client,
    /// `SetRequestHostHeader`: a fixed one.
    Fixed(HeaderValue),
}

/// Filters that configure the route's protection instead of editing messages.
#[derive(Debug, Clone)]
pub enum RouteOption {
    /// `JwtAuth`, `ApiKeyAuth` or `BasicAuth`.
    Auth(std::sync::Arc<crate::auth::Authenticator>),
    CircuitBreaker(CircuitBreakerSpec),
    RateLimiter(RateLimitSpec),
    Retry(RetryPolicy),
    /// `PreserveHostHeader` or `SetRequestHostHeader`: the `Host` the backend gets.
    Host(UpstreamHost),
}

/// `CircuitBreaker`: what to answer when the service's breaker is open or the call fails.
#[derive(Debug, Clone, Default)]
pub struct CircuitBreakerSpec {
    pub name: Option<String>,
    /// `forward:/path` (re-routed inside the gateway) or `http://host:port/path`.
    pub fallback_uri: Option<String>,
    /// A static fallback when no URI is given.
    pub fallback_status: Option<StatusCode>,
    pub fallback_body: Option<String>,
    /// Upstream statuses that count as failures and trigger the fallback (SCG `statusCodes`).
    pub status_codes: Vec<StatusCode>,
}

/// How a rate-limit key is taken from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyResolver {
    /// The client address (after trusted-proxy resolution).
    ClientIp,
    /// A request header's value.
    Header(HeaderName),
    /// `X-API-Key` header, else `apikey` query parameter.
    ApiKey,
    /// The verified caller of the route's auth filter (JWT `sub`, API-key consumer, basic-auth user).
    JwtSubject,
}

/// `RequestRateLimiter` (SCG's Redis limiter arguments), served by this gateway's own GCRA limiter
/// or, with `backend: redis`, by buckets in Redis shared with every gateway using the same Redis.
#[derive(Debug, Clone)]
pub struct RateLimitSpec {
    pub replenish_rate: u32,
    pub burst_capacity: u32,
    pub requested_tokens: u32,
    pub key: KeyResolver,
    /// Requests with no key (no header/API key/token): denied when true (SCG `deny-empty-key`).
    pub deny_empty_key: bool,
    pub backend: LimiterBackend,
    /// `failMode`: with Redis unreachable or slow, admit (`open`) or refuse (`closed`);
    /// `None` follows `gateway.redis-fail-mode`.
    pub fail_open: Option<bool>,
}

/// Where a route's buckets live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimiterBackend {
    /// In this gateway: each gateway has its own budget.
    Local,
    /// In Redis (`gateway.redis-url`): one budget across gateways.
    Redis,
}

/// A filter that could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("filter `{name}`: {reason}")]
pub struct FilterError {
    pub name: String,
    pub reason: String,
}

pub(crate) fn err(spec: &Spec, reason: impl Into<String>) -> FilterError {
    FilterError {
        name: spec.name.clone(),
        reason: reason.into(),
    }
}

fn need<'s>(spec: &'s Spec, name: &str, pos: usize) -> Result<&'s str, FilterError> {
    spec.arg(name, pos)
        .ok_or_else(|| err(spec, format!("argument `{name}` is required")))
}

fn header_name(spec: &Spec, pos: usize) -> Result<HeaderName, FilterError> {
    HeaderName::from_bytes(need(spec, "name", pos)?.as_bytes())
        .map_err(|e| err(spec, e.to_string()))
}

fn header_pair(spec: &Spec) -> Result<(HeaderName, HeaderValue), FilterError> {
    let value =
        HeaderValue::from_str(need(spec, "value", 1)?).map_err(|e| err(spec, e.to_string()))?;
    Ok((header_name(spec, 0)?, value))
}

pub(crate) fn status(spec: &Spec, raw: &str) -> Result<StatusCode, FilterError> {
    if let Ok(n) = raw.trim().parse::<u16>() {
        return StatusCode::from_u16(n).map_err(|e| err(spec, e.to_string()));
    }
    // SCG also accepts enum names such as NOT_FOUND or BAD_GATEWAY.
    (100..600)
        .filter_map(|n| StatusCode::from_u16(n).ok())
        .find(|s| {
            s.canonical_reason()
                .is_some_and(|r| r.to_ascii_uppercase().replace([' ', '-'], "_") == raw.trim())
        })
        .ok_or_else(|| err(spec, format!("`{raw}` is not an HTTP status")))
}

/// Parses sizes as bytes, or with SCG's `KB`/`MB`/`GB` suffixes (binary multiples).
fn size(spec: &Spec, raw: &str) -> Result<u64, FilterError> {
    let raw = raw.trim();
    let end = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let n: u64 = raw[..end]
        .parse()
        .map_err(|_| err(spec, format!("`{raw}` is not a size")))?;
    let scale = match raw[end..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return Err(err(spec, format!("`{raw}` is not a size"))),
    };
    Ok(n * scale)
}

pub(crate) fn number<T: std::str::FromStr>(
    spec: &Spec,
    name: &str,
    pos: usize,
    default: Option<T>,
) -> Result<T, FilterError> {
    match spec.arg(name, pos) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| err(spec, format!("`{name}` must be a number, not `{v}`"))),
        None => default.ok_or_else(|| err(spec, format!("argument `{name}` is required"))),
    }
}

/// A query parameter's name or value as given: it must already be valid query text (percent-encode
/// anything else), and a name holds no `=`.
fn query_text(spec: &Spec, raw: &str, name: bool) -> Result<String, FilterError> {
    let ok = |b: u8| {
        b.is_ascii_alphanumeric() || b"-._~%!$'()*+,;:@/?".contains(&b) || (!name && b == b'=')
    };
    if (name && raw.is_empty()) || !raw.bytes().all(ok) {
        return Err(err(
            spec,
            format!(
                "`{raw}` is not valid in a query {}; percent-encode it",
                if name { "name" } else { "value" }
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// The query with `name=value` appended, or with every `name` pair removed (`value` `None`).
pub fn edit_query(query: Option<&str>, name: &str, value: Option<&str>) -> String {
    let mut out = String::with_capacity(query.map_or(0, str::len) + name.len() + 16);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if value.is_none() && key == name {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    if let Some(v) = value {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// A compiled filter: a message edit or a route option.
#[derive(Debug, Clone)]
pub enum Compiled {
    Filter(Filter),
    Option(RouteOption),
}

/// Compiles one filter; an argument it does not read is refused, naming the ones it does.
pub fn compile(spec: &Spec) -> Result<Compiled, FilterError> {
    let (compiled, unread) = spec.reading(|| compile_args(spec));
    let compiled = compiled?;
    if let Some(why) = unread.refusal() {
        return Err(err(spec, why));
    }
    Ok(compiled)
}

fn compile_args(spec: &Spec) -> Result<Compiled, FilterError> {
    use Compiled::{Filter as F, Option as O};
    if let Some(auth) = crate::auth::Authenticator::compile(spec) {
        return auth.map(|a| O(RouteOption::Auth(std::sync::Arc::new(a))));
    }
    Ok(match spec.name.as_str() {
        "StripPrefix" => F(Filter::StripPrefix(number(spec, "parts", 0, Some(1))?)),
        "PrefixPath" => {
            let p = need(spec, "prefix", 0)?;
            if !p.starts_with('/') {
                return Err(err(spec, "prefix must start with `/`"));
            }
            F(Filter::PrefixPath(p.trim_end_matches('/').to_owned()))
        }
        "RewritePath" => {
            let regex =
                Regex::new(need(spec, "regexp", 0)?).map_err(|e| err(spec, e.to_string()))?;
            // YAML files write Java's `${name}` as `$\{name}`; SCG turns `$\` back into `$`.
            let replacement = spec.arg("replacement", 1).unwrap_or("").replace("$\\", "$");
            F(Filter::RewritePath { regex, replacement })
        }
        "RewriteLocationResponseHeader" => {
            let strip = match spec
                .arg("stripVersionMode", 0)
                .map(|m| m.trim().to_ascii_uppercase())
                .as_deref()
            {
                None | Some("AS_IN_REQUEST") => StripVersion::AsInRequest,
                Some("NEVER_STRIP") => StripVersion::Never,
                Some("ALWAYS_STRIP") => StripVersion::Always,
                Some(other) => {
                    return Err(err(
                        spec,
                        format!(
                            "stripVersionMode `{other}`: use NEVER_STRIP, AS_IN_REQUEST or ALWAYS_STRIP"
                        ),
                    ));
                }
            };
            let header = match spec.arg("locationHeaderName", 1).map(str::trim) {
                None | Some("") => http::header::LOCATION,
                Some(h) => {
                    HeaderName::from_bytes(h.as_bytes()).map_err(|e| err(spec, e.to_string()))?
                }
            };
            let host = match spec.arg("hostValue", 2).map(str::trim) {
                None | Some("") => None,
                Some(h) => Some(HeaderValue::from_str(h).map_err(|e| err(spec, e.to_string()))?),
            };
            let protocols = spec
                .arg("protocolsRegex", 3)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .unwrap_or("https?|ftps?");
            let protocols = Regex::new(&format!("^(?:{protocols})$"))
                .map_err(|e| err(spec, format!("protocolsRegex: {e}")))?;
            F(Filter::RewriteLocation(Box::new(LocationRewrite {
                strip,
                header,
                host,
                protocols,
            })))
        }
        "RewriteResponseHeader" => F(Filter::RewriteResponseHeader {
            name: header_name(spec, 0)?,
            regex: Regex::new(need(spec, "regexp", 1)?).map_err(|e| err(spec, e.to_string()))?,
            replacement: spec.arg("replacement", 2).unwrap_or("").replace("$\\", "$"),
        }),
        "SetPath" => F(Filter::SetPath(need(spec, "template", 0)?.to_owned())),
        "AddRequestHeader" => header_pair(spec).map(|(n, v)| F(Filter::AddRequestHeader(n, v)))?,
        "SetRequestHeader" => header_pair(spec).map(|(n, v)| F(Filter::SetRequestHeader(n, v)))?,
        "RemoveRequestHeader" => F(Filter::RemoveRequestHeader(header_name(spec, 0)?)),
        "AddResponseHeader" => {
            header_pair(spec).map(|(n, v)| F(Filter::AddResponseHeader(n, v)))?
        }
        "SetResponseHeader" => {
            header_pair(spec).map(|(n, v)| F(Filter::SetResponseHeader(n, v)))?
        }
        "RemoveResponseHeader" => F(Filter::RemoveResponseHeader(header_name(spec, 0)?)),
        "SetStatus" => F(Filter::SetStatus(status(spec, need(spec, "status", 0)?)?)),
        "RedirectTo" => {
            let s = status(spec, need(spec, "status", 0)?)?;
            if !s.is_redirection() {
                return Err(err(spec, format!("{s} is not a 3xx status")));
            }
            let url = HeaderValue::from_str(need(spec, "url", 1)?)
                .map_err(|e| err(spec, e.to_string()))?;
            let include = match spec.arg("includeRequestParams", 2).map(str::trim) {
                None | Some("" | "false") => false,
                Some("true") => true,
                Some(v) => {
                    return Err(err(
                        spec,
                        format!("`includeRequestParams` must be true or false, not `{v}`"),
                    ));
                }
            };
            F(Filter::RedirectTo(s, url, include))
        }
        "RequestSize" => F(Filter::RequestSize(size(
            spec,
            spec.arg("maxSize", 0).unwrap_or("5000000"),
        )?)),
        "SecureHeaders" => F(Filter::SecureHeaders),
        "CircuitBreaker" => {
            let fallback_status = spec
                .arg("fallbackStatus", 2)
                .map(|s| status(spec, s))
                .transpose()?;
            let status_codes = spec
                .list("statusCodes")
                .into_iter()
                .filter(|s| !s.starts_with("forward:") && !s.contains("://"))
                .map(|s| status(spec, s))
                .collect::<Result<Vec<_>, _>>();
            let fallback_uri = spec.arg("fallbackUri", 1).map(str::to_owned);
            if let Some(u) = &fallback_uri
                && !u.starts_with("forward:/")
                && !u.starts_with("http://")
                && !u.starts_with("https://")
            {
                return Err(err(
                    spec,
                    format!("fallbackUri `{u}` must be `forward:/path`, `http://…` or `https://…`"),
                ));
            }
            O(RouteOption::CircuitBreaker(CircuitBreakerSpec {
                name: spec.arg("name", 0).map(str::to_owned),
                fallback_uri,
                fallback_status,
                fallback_body: spec.arg("fallbackBody", 3).map(str::to_owned),
                // In shortcut form the list holds name and URI too; only named statusCodes are meaningful.
                status_codes: if spec
                    .args
                    .iter()
                    .any(|(k, _)| k.to_ascii_lowercase().starts_with("statuscodes"))
                {
                    status_codes?
                } else {
                    Vec::new()
                },
            }))
        }
        "RequestRateLimiter" => {
            // `key-resolver` is SCG's own spelling (where it names a bean in SpEL).
            let resolver = spec
                .arg("keyResolver", 3)
                .or(spec.arg("key-resolver", 99))
                .unwrap_or("ip")
                .trim();
            if resolver.starts_with("#{") {
                return Err(err(
                    spec,
                    format!(
                        "keyResolver `{resolver}`: SpEL bean references cannot run here; use ip, header:NAME, apikey or jwt"
                    ),
                ));
            }
            let key = match resolver {
                "ip" | "" => KeyResolver::ClientIp,
                "apikey" | "api-key" => KeyResolver::ApiKey,
                "jwt" | "jwt-sub" | "principal" => KeyResolver::JwtSubject,
                other => match other.strip_prefix("header:") {
                    Some(h) => KeyResolver::Header(
                        HeaderName::from_bytes(h.trim().as_bytes())
                            .map_err(|e| err(spec, e.to_string()))?,
                    ),
                    None => {
                        return Err(err(
                            spec,
                            format!("keyResolver `{other}`: use ip, header:NAME, apikey or jwt"),
                        ));
                    }
                },
            };
            let rate = spec
                .arg("redis-rate-limiter.replenishRate", 99)
                .or(spec.arg("replenishRate", 0));
            let burst = spec
                .arg("redis-rate-limiter.burstCapacity", 99)
                .or(spec.arg("burstCapacity", 1));
            let tokens = spec
                .arg("redis-rate-limiter.requestedTokens", 99)
                .or(spec.arg("requestedTokens", 2));
            let parse = |v: Option<&str>, name: &str, default: u32| -> Result<u32, FilterError> {
                v.map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| err(spec, format!("`{name}` must be a number, not `{v}`")))
                })
                .unwrap_or(Ok(default))
            };
            let replenish_rate = parse(rate, "replenishRate", 0)?;
            if replenish_rate == 0 {
                return Err(err(spec, "`replenishRate` must be at least 1"));
            }
            let burst_capacity = parse(burst, "burstCapacity", replenish_rate)?;
            let requested_tokens = parse(tokens, "requestedTokens", 1)?.max(1);
            let deny_empty_key = spec
                .arg("denyEmptyKey", 99)
                .or(spec.arg("deny-empty-key", 99))
                .is_none_or(|v| v != "false");
            let backend = match spec.arg("backend", 4).map(str::trim) {
                None | Some("" | "local") => LimiterBackend::Local,
                Some("redis") => LimiterBackend::Redis,
                Some(other) => {
                    return Err(err(spec, format!("backend `{other}`: use local or redis")));
                }
            };
            let fail_open = match spec.arg("failMode", 5).map(str::trim) {
                None | Some("") => None,
                Some("open") => Some(true),
                Some("closed") => Some(false),
                Some(other) => {
                    return Err(err(spec, format!("failMode `{other}`: use open or closed")));
                }
            };
            if fail_open.is_some() && backend == LimiterBackend::Local {
                return Err(err(
                    spec,
                    "`failMode` applies to `backend: redis` only (the local limiter cannot fail)",
                ));
            }
            O(RouteOption::RateLimiter(RateLimitSpec {
                replenish_rate,
                burst_capacity,
                requested_tokens,
                key,
                deny_empty_key,
                backend,
                fail_open,
            }))
        }
        "PreserveHostHeader" => O(RouteOption::Host(UpstreamHost::Client)),
        "SetRequestHostHeader" => O(RouteOption::Host(UpstreamHost::Fixed(
            HeaderValue::from_str(need(spec, "host", 0)?).map_err(|e| err(spec, e.to_string()))?,
        ))),
        "MapRequestHeader" => {
            let name = |arg: &str, pos: usize| {
                HeaderName::from_bytes(need(spec, arg, pos)?.as_bytes())
                    .map_err(|e| err(spec, e.to_string()))
            };
            F(Filter::MapRequestHeader(
                name("fromHeader", 0)?,
                name("toHeader", 1)?,
            ))
        }
        "AddRequestParameter" => F(Filter::AddRequestParameter(
            query_text(spec, need(spec, "name", 0)?, true)?,
            query_text(spec, need(spec, "value", 1)?, false)?,
        )),
        "RemoveRequestParameter" => F(Filter::RemoveRequestParameter(query_text(
            spec,
            need(spec, "name", 0)?,
            true,
        )?)),
        "DedupeResponseHeader" => {
            let names = need(spec, "name", 0)?
                .split_whitespace()
                .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|e| err(spec, e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            if names.is_empty() {
                return Err(err(spec, "argument `name` lists no header"));
            }
            let strategy = match spec.arg("strategy", 1).map(str::trim) {
                None | Some("" | "RETAIN_FIRST") => Dedupe::First,
                Some("RETAIN_LAST") => Dedupe::Last,
                Some("RETAIN_UNIQUE") => Dedupe::Unique,
                Some(other) => {
                    return Err(err(
                        spec,
                        format!("strategy `{other}` is RETAIN_FIRST, RETAIN_LAST or RETAIN_UNIQUE"),
                    ));
                }
            };
            F(Filter::DedupeResponseHeader(names, strategy))
        }
        "Retry" => O(RouteOption::Retry(RetryPolicy::compile(spec)?)),
        other => {
            return Err(err(
                spec,
                format!(
                    "unknown filter `{other}` (known: StripPrefix, PrefixPath, RewritePath, SetPath, \
                 Add/Set/RemoveRequestHeader, MapRequestHeader, Add/RemoveRequestParameter, \
                 Add/Set/RemoveResponseHeader, RewriteResponseHeader, RewriteLocationResponseHeader, DedupeResponseHeader, SetStatus, RedirectTo, RequestSize, \
                 SecureHeaders, PreserveHostHeader, SetRequestHostHeader, CircuitBreaker, RequestRateLimiter, Retry, JwtAuth, ApiKeyAuth, \
                 BasicAuth)"
                ),
            ));
        }
    })
}

/// Applies a path filter; returns the prefix stripped (for `X-Forwarded-Prefix`), if any.
pub fn rewrite_path(
    filter: &Filter,
    path: &mut String,
    captures: &Captures,
    stripped: &mut String,
) {
    match filter {
        Filter::StripPrefix(n) => {
            let mut cut = 0;
            let bytes = path.as_bytes();
            let mut seen = 0;
            for (i, b) in bytes.iter().enumerate().skip(1) {
                if *b == b'/' {
                    seen += 1;
                    if seen == *n {
                        cut = i;
                        break;
                    }
                }
            }
            if seen < *n {
                cut = path.len();
            }
            stripped.push_str(&path[..cut]);
            path.replace_range(..cut, "");
            if path.is_empty() {
                path.push('/');
            }
        }
        Filter::PrefixPath(p) => path.insert_str(0, p),
        Filter::RewritePath { regex, replacement } => {
            if let std::borrow::Cow::Owned(s) = regex.replace(path, replacement.as_str()) {
                *path = if s.starts_with('/') {
                    s
                } else {
                    format!("/{s}")
                };
            }
        }
        Filter::SetPath(template) => {
            let mut out = String::with_capacity(template.len());
            let mut rest = template.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let Some(close) = rest[open..].find('}') else {
                    break;
                };
                let name = &rest[open + 1..open + close];
                if let Some((_, v)) = captures.iter().find(|(k, _)| k == name) {
                    out.push_str(v.trim_start_matches('/'));
                }
                rest = &rest[open + close + 1..];
            }
            out.push_str(rest);
            *path = out;
        }
        _ => {}
    }
}

/// Spring Cloud Gateway's `SecureHeaders` defaults.
pub const SECURE_HEADERS: &[(&str, &str)] = &[
    ("x-xss-protection", "1 ; mode=block"),
    ("strict-transport-security", "max-age=631138519"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'self' https:; font-src 'self' https: data:; img-src 'self' https: data:; object-src 'none'; script-src https:; style-src 'self' https: 'unsafe-inline'",
    ),
    ("x-download-options", "noopen"),
    ("x-permitted-cross-domain-policies", "none"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: &Filter, p: &str, caps: &Captures) -> (String, String) {
        let mut path = p.to_owned();
        let mut stripped = String::new();
        rewrite_path(f, &mut path, caps, &mut stripped);
        (path, stripped)
    }

    fn named(name: &str, args: &[(&str, &str)]) -> Spec {
        Spec {
            name: name.into(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn an_argument_the_filter_does_not_read_is_refused_with_the_ones_it_does() {
        let e = compile(&named(
            "AddRequestHeader",
            &[("name", "X-A"), ("value", "1"), ("vaule", "2")],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown argument `vaule`"), "{e}");
        assert!(e.contains("name") && e.contains("value"), "{e}");
        // SCG's SpEL key resolver would silently become a per-IP limit.
        let e = compile(&named(
            "RequestRateLimiter",
            &[
                ("replenishRate", "5"),
                ("key-resolver", "#{@userKeyResolver}"),
            ],
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("SpEL") && e.contains("header:NAME"), "{e}");
        // Shortcut arguments beyond those the filter reads.
        let e = compile(&Spec::shortcut("StripPrefix=1, 2").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes 1 shortcut argument(s), not 2"), "{e}");
        // Indexed list keys count as their list; shortcut arguments are positional.
        compile(&named(
            "CircuitBreaker",
            &[
                ("name", "b"),
                ("statusCodes[0]", "500"),
                ("statusCodes[1]", "502"),
            ],
        ))
        .unwrap();
        compile(&Spec::shortcut("StripPrefix=2").unwrap()).unwrap();
    }

    #[test]
    fn location_rewrites_follow_spring_cloud_gateways_patterns() {
        let rw = |mode: &str| {
            let Ok(Compiled::Filter(Filter::RewriteLocation(rw))) = compile(
                &Spec::shortcut(&format!(
                    "RewriteLocationResponseHeader={mode}, Location, ,"
                ))
                .unwrap(),
            ) else {
                panic!("compiles")
            };
            rw
        };
        let loc = "https://backend.org:443/v1/some/object/id";
        let fix =
            |mode: &str, location: &str, path: &str| rw(mode).fix(location, "example.com", path);
        assert_eq!(
            fix("NEVER_STRIP", loc, "/some/object/id").as_deref(),
            Some("https://example.com/v1/some/object/id")
        );
        assert_eq!(
            fix("AS_IN_REQUEST", loc, "/some/object/id").as_deref(),
            Some("https://example.com/some/object/id")
        );
        assert_eq!(
            fix("AS_IN_REQUEST", loc, "/v1/some/object/id").as_deref(),
            Some("https://example.com/v1/some/object/id")
        );
        assert_eq!(
            fix("ALWAYS_STRIP", loc, "/v1/some/object/id").as_deref(),
            Some("https://example.com/some/object/id")
        );
        // A version that is the whole rest of the path stays; so does a location without a path.
        assert_eq!(
            fix("ALWAYS_STRIP", "http://b:1/v2", "/").as_deref(),
            Some("http://example.com/v2")
        );
        assert_eq!(fix("ALWAYS_STRIP", "http://b:1", "/"), None);
        assert_eq!(fix("ALWAYS_STRIP", "http://b:/x", "/"), None);
        assert_eq!(fix("NEVER_STRIP", "/relative/path", "/"), None);
        assert_eq!(
            fix("NEVER_STRIP", "ftps://files.internal/a", "/").as_deref(),
            Some("ftps://example.com/a")
        );
        assert!(
            compile(&Spec::shortcut("RewriteLocationResponseHeader=SOMETIMES").unwrap())
                .unwrap_err()
                .to_string()
                .contains("stripVersionMode")
        );
    }

    #[test]
    fn path_filters() {
        let none = Captures::new();
        assert_eq!(
            run(&Filter::StripPrefix(1), "/users/1", &none),
            ("/1".into(), "/users".into())
        );
        assert_eq!(
            run(&Filter::StripPrefix(2), "/a/b/c", &none),
            ("/c".into(), "/a/b".into())
        );
        assert_eq!(
            run(&Filter::StripPrefix(1), "/users", &none),
            ("/".into(), "/users".into())
        );
        assert_eq!(run(&Filter::StripPrefix(3), "/a/b", &none).0, "/");
        assert_eq!(
            run(&Filter::PrefixPath("/api".into()), "/x", &none).0,
            "/api/x"
        );
        let spec = Spec::shortcut("RewritePath=/red/?(?<segment>.*), /$\\{segment}").unwrap();
        let Compiled::Filter(f) = compile(&spec).unwrap() else {
            panic!()
        };
        assert_eq!(run(&f, "/red/blue", &none).0, "/blue");
        let caps = vec![("segment".to_owned(), "x".to_owned())];
        assert_eq!(
            run(&Filter::SetPath("/v2/{segment}".into()), "/a/x", &caps).0,
            "/v2/x"
        );
    }

    #[test]
    fn query_parameters_are_added_and_removed_pair_by_pair() {
        assert_eq!(edit_query(None, "lang", Some("en")), "lang=en");
        assert_eq!(edit_query(Some("a=1"), "lang", Some("en")), "a=1&lang=en");
        assert_eq!(
            edit_query(Some("debug=1&a=1&debug&debugger=2"), "debug", None),
            "a=1&debugger=2"
        );
        assert_eq!(edit_query(Some("debug=1"), "debug", None), "");
    }

    #[test]
    fn dedupe_strategies_keep_first_last_or_unique_values() {
        let name = HeaderName::from_static("x-dup");
        let headers = || {
            let mut h = http::HeaderMap::new();
            for v in ["a", "b", "a", "c"] {
                h.append(&name, HeaderValue::from_static(v));
            }
            h
        };
        for (strategy, want) in [
            (Dedupe::First, vec!["a"]),
            (Dedupe::Last, vec!["c"]),
            (Dedupe::Unique, vec!["a", "b", "c"]),
        ] {
            let mut h = headers();
            strategy.apply(&mut h, &name);
            let got: Vec<_> = h
                .get_all(&name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(got, want, "{strategy:?}");
        }
    }

    #[test]
    fn text_that_cannot_go_into_a_query_or_an_unknown_strategy_is_refused() {
        for bad in [
            "AddRequestParameter=lang, e n",
            "AddRequestParameter=a&b, 1",
            "RemoveRequestParameter=x=y",
            "DedupeResponseHeader=X-Dup, RETAIN_SOME",
            "SetRequestHostHeader",
        ] {
            let spec = Spec::shortcut(bad).unwrap();
            assert!(compile(&spec).is_err(), "{bad} compiled");
        }
        let spec = Spec::shortcut("AddRequestParameter=q, a%20b=c").unwrap();
        assert!(compile(&spec).is_ok());
    }

    #[test]
    fn rewrite_response_header_uses_named_groups_and_leaves_other_headers() {
        let spec = Spec::shortcut(
            "RewriteResponseHeader=Location, ://(?<h>[a-z]+):8443/, ://$\\{h}.example.com/",
        )
        .unwrap();
        let Ok(Compiled::Filter(Filter::RewriteResponseHeader {
            name,
            regex,
            replacement,
        })) = compile(&spec)
        else {
            panic!("not compiled");
        };
        let mut h = http::HeaderMap::new();
        h.insert(
            "location",
            HeaderValue::from_static("https://internal:8443/a"),
        );
        h.insert(
            "x-other",
            HeaderValue::from_static("https://internal:8443/a"),
        );
        rewrite_header(&mut h, &name, &regex, &replacement);
        assert_eq!(h["location"], "https://internal.example.com/a");
        assert_eq!(h["x-other"], "https://internal:8443/a");
    }
}
