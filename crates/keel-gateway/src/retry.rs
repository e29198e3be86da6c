//! When a route retries: Spring Cloud Gateway's `Retry` filter, inside Keel's own retry rules.
//!
//! The filter takes SCG's arguments and defaults (`retries` 3, `series` SERVER_ERROR, `methods` GET,
//! `exceptions` IOException and TimeoutException, optional `backoff`, `jitter` and `timeout`), so a
//! route file written for SCG retries the same requests. Keel's rules still bound every retry: it goes
//! to another instance, needs a replayable body, is paid from the service's retry budget, and replays
//! a request that reached a backend only when its method is idempotent. A request that provably never
//! reached one (connection refused) is retried whatever the method and the exceptions listed.
//! Without the filter a route retries [`GatewayConfig::retries`](crate::GatewayConfig) times, on
//! 502, 503 and 504, on failed exchanges, for idempotent methods, without backoff.

use std::time::Duration;

use http::{Method, StatusCode};

use crate::definition::Spec;
use crate::filter::{FilterError, err, number, status};

/// How a route retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Further attempts at most, each on another instance.
    pub retries: u32,
    /// Statuses retried: bit `s - 100` for status `s`.
    statuses: [u64; 8],
    /// Methods replayed after reaching a backend (if idempotent too); `None`: every idempotent one.
    methods: Option<Vec<Method>>,
    /// Retry an exchange that failed after the request was sent (SCG's `IOException`).
    on_error: bool,
    /// Retry an attempt that timed out (SCG's `TimeoutException`).
    on_timeout: bool,
    backoff: Option<Backoff>,
    /// No retry starts once this long has passed since the first attempt, its backoff included.
    timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Backoff {
    first: Duration,
    max: Option<Duration>,
    factor: u32,
    /// SCG's `jitter.randomFactor`: each pause is drawn from `d ± d × jitter`.
    jitter: f64,
}

/// What an attempt ended with, as far as retrying is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Ended {
    /// The backend answered this status.
    Status(StatusCode),
    /// The request was sent and the exchange then failed.
    Error,
    TimedOut,
}

const ARGS: [&str; 11] = [
    "retries",
    "statuses",
    "methods",
    "series",
    "exceptions",
    "backoff.firstBackoff",
    "backoff.maxBackoff",
    "backoff.factor",
    "backoff.basedOnPreviousValue",
    "jitter.randomFactor",
    "timeout",
];

impl RetryPolicy {
    /// A route without a `Retry` filter: `retries` further instances on 502, 503 and 504 and on
    /// failed exchanges, for every idempotent method.
    pub fn implicit(retries: u32) -> Self {
        let mut p = RetryPolicy {
            on_error: true,
            ..Self::none(retries)
        };
        for s in 502..=504 {
            p.add_status(s);
        }
        p
    }

    /// `retries` further attempts on nothing yet: the base the two constructors fill in.
    fn none(retries: u32) -> Self {
        RetryPolicy {
            retries,
            statuses: [0; 8],
            methods: None,
            on_error: false,
            on_timeout: false,
            backoff: None,
            timeout: None,
        }
    }

    fn add_status(&mut self, s: u16) {
        let i = usize::from(s - 100);
        self.statuses[i / 64] |= 1 << (i % 64);
    }

    /// Compiles SCG's `Retry` filter: named arguments, or the shortcut
    /// `Retry=retries,statuses,methods,firstBackoff,maxBackoff,factor,basedOnPreviousValue,randomFactor,timeout`.
    pub fn compile(spec: &Spec) -> Result<Self, FilterError> {
        for (k, _) in &spec.args {
            let known = k.starts_with("_genkey_")
                || ARGS.iter().any(|a| {
                    k.eq_ignore_ascii_case(a)
                        || k.get(..a.len()).is_some_and(|p| p.eq_ignore_ascii_case(a))
                            && k[a.len()..].starts_with('[')
                });
            if !known {
                return Err(err(
                    spec,
                    format!("unknown argument `{k}` (known: {})", ARGS.join(", ")),
                ));
            }
        }
        if spec
            .args
            .iter()
            .filter(|(k, _)| k.starts_with("_genkey_"))
            .count()
            > ARGS.len() - 2
        {
            return Err(err(spec, "too many shortcut arguments"));
        }
        let retries: u32 = number(spec, "retries", 0, Some(3))?;
        if retries == 0 {
            return Err(err(spec, "`retries` must be greater than 0"));
        }
        let mut p = Self::none(retries);
        for raw in list(spec, "statuses", Some(1)).unwrap_or_default() {
            let s = status(spec, raw)?.as_u16();
            if s >= 600 {
                return Err(err(
                    spec,
                    format!("status {s} is not one a backend answers"),
                ));
            }
            p.add_status(s);
        }
        // As in SCG, `series` keeps its default (5xx) when only `statuses` is given.
        for raw in list(spec, "series", None).unwrap_or(vec!["SERVER_ERROR"]) {
            let first = match raw.to_ascii_uppercase().as_str() {
                "INFORMATIONAL" | "1" => 100,
                "SUCCESSFUL" | "2" => 200,
                "REDIRECTION" | "3" => 300,
                "CLIENT_ERROR" | "4" => 400,
                "SERVER_ERROR" | "5" => 500,
                _ => {
                    return Err(err(
                        spec,
                        format!(
                            "`{raw}` is not a series (INFORMATIONAL, SUCCESSFUL, REDIRECTION, CLIENT_ERROR, SERVER_ERROR)"
                        ),
                    ));
                }
            };
            for s in first..first + 100 {
                p.add_status(s);
            }
        }
        let methods = list(spec, "methods", Some(2)).unwrap_or(vec!["GET"]);
        if methods.is_empty() {
            return Err(err(spec, "`methods` may not be empty"));
        }
        p.methods = Some(
            methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| err(spec, format!("`{m}` is not an HTTP method")))
                })
                .collect::<Result<_, _>>()?,
        );
        let exceptions = list(spec, "exceptions", None).unwrap_or(vec![
            "java.io.IOException",
            "java.util.concurrent.TimeoutException",
        ]);
        for e in exceptions {
            let simple = e.rsplit(['.', '$']).next().unwrap_or(e);
            match simple {
                "Exception" | "Throwable" => (p.on_error, p.on_timeout) = (true, true),
                s if s.ends_with("TimeoutException") => p.on_timeout = true,
                "IOException"
                | "ConnectException"
                | "SocketException"
                | "EOFException"
                | "ClosedChannelException"
                | "PrematureCloseException"
                | "SSLException"
                | "UnknownHostException"
                | "NoRouteToHostException" => p.on_error = true,
                _ => {
                    return Err(err(
                        spec,
                        format!(
                            "exception `{e}` is not one Keel raises (it maps IOException and its network \
                             subclasses to failed exchanges, and *TimeoutException to timeouts)"
                        ),
                    ));
                }
            }
        }
        // An empty shortcut field (`Retry=3,500,GET,,,,,,1s`) is one left out.
        let arg =
            |name: &str, pos: usize| spec.arg(name, pos).map(str::trim).filter(|v| !v.is_empty());
        let first = arg("backoff.firstBackoff", 3);
        let max = arg("backoff.maxBackoff", 4);
        let factor = arg("backoff.factor", 5);
        let based = arg("backoff.basedOnPreviousValue", 6);
        let jitter = arg("jitter.randomFactor", 7);
        if first.is_some() || max.is_some() || factor.is_some() || based.is_some() {
            let first = first.map_or(Ok(Duration::from_millis(5)), |v| duration(spec, v))?;
            let max = max.map(|v| duration(spec, v)).transpose()?;
            let factor: u32 = match factor {
                None => 2,
                Some(f) => f.parse().map_err(|_| {
                    err(
                        spec,
                        format!("`backoff.factor` must be a number, not `{f}`"),
                    )
                })?,
            };
            if factor == 0 {
                return Err(err(spec, "`backoff.factor` must be at least 1"));
            }
            if max.is_some_and(|m| m < first) {
                return Err(err(
                    spec,
                    "`backoff.maxBackoff` is below `backoff.firstBackoff`",
                ));
            }
            // Accepted for SCG's sake: without jitter both of its formulas give the same pauses.
            if let Some(b) = based
                && !b.eq_ignore_ascii_case("true")
                && !b.eq_ignore_ascii_case("false")
            {
                return Err(err(
                    spec,
                    format!("`backoff.basedOnPreviousValue` must be true or false, not `{b}`"),
                ));
            }
            p.backoff = Some(Backoff {
                first,
                max,
                factor,
                jitter: 0.0,
            });
        }
        if let Some(j) = jitter {
            let f: f64 = j
                .parse()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
                .ok_or_else(|| {
                    err(
                        spec,
                        format!("`jitter.randomFactor` must be between 0 and 1, not `{j}`"),
                    )
                })?;
            match &mut p.backoff {
                Some(b) => b.jitter = f,
                None => return Err(err(spec, "`jitter` needs a `backoff`")),
            }
        }
        p.timeout = arg("timeout", 8).map(|v| duration(spec, v)).transpose()?;
        Ok(p)
    }

    /// Whether an attempt that ended so may be retried, for a request with `method` (`idempotent`
    /// as Keel classifies it); the retry count, the body and the budget are the caller's to check.
    pub fn retries_after(&self, ended: Ended, method: &Method, idempotent: bool) -> bool {
        let matches = match ended {
            Ended::Status(s) => {
                let i = usize::from(s.as_u16().saturating_sub(100));
                i < 500 && self.statuses[i / 64] & (1 << (i % 64)) != 0
            }
            Ended::Error => self.on_error,
            Ended::TimedOut => self.on_timeout,
        };
        matches && idempotent && self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// The pause before retry `n` (1-based): `firstBackoff × factor^(n-1)`, at most `maxBackoff`,
    /// with jitter; zero without a backoff.
    pub fn delay(&self, n: u32) -> Duration {
        let Some(b) = self.backoff else {
            return Duration::ZERO;
        };
        // A day bounds any pause (and keeps the jitter's arithmetic finite).
        let max = b
            .max
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(86_400));
        let d = b
            .first
            .saturating_mul(b.factor.saturating_pow(n.saturating_sub(1)))
            .min(max);
        if b.jitter > 0.0 {
            d.mul_f64((1.0 + b.jitter * (2.0 * fastrand::f64() - 1.0)).max(0.0))
                .min(max)
        } else {
            d
        }
    }

    /// Whether a retry pausing `delay` may start `elapsed` after the first attempt.
    pub fn in_time(&self, elapsed: Duration, delay: Duration) -> bool {
        self.timeout
            .is_none_or(|t| elapsed.saturating_add(delay) < t)
    }
}

/// A list argument: `name` (comma-separated), `name[i]`, or the shortcut value at `pos`; `None`
/// when absent (an empty value is an empty list).
fn list<'s>(spec: &'s Spec, name: &str, pos: Option<usize>) -> Option<Vec<&'s str>> {
    spec.note(name);
    let mut found = false;
    let mut out = Vec::new();
    for (k, v) in &spec.args {
        let named = k.eq_ignore_ascii_case(name)
            || k.get(..name.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(name))
                && k[name.len()..].starts_with('[');
        if named {
            found = true;
            out.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
    }
    if !found {
        let v = pos
            .and_then(|p| spec.arg(name, p))
            .filter(|v| !v.trim().is_empty())?;
        out.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
    }
    Some(out)
}

/// A Spring duration: `10ms`, `5s`, `1m`, `2h`, `1d`, ISO-8601 `PT0.5S`, or bare milliseconds.
fn duration(spec: &Spec, raw: &str) -> Result<Duration, FilterError> {
    let bad = || {
        err(
            spec,
            format!("`{raw}` is not a duration (such as 10ms, 5s or PT0.5S)"),
        )
    };
    let t = raw.trim();
    if let Some(iso) = t.strip_prefix("PT").or_else(|| t.strip_prefix("pt")) {
        let mut total = Duration::ZERO;
        let mut rest = iso;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let n: f64 = rest[..end].parse().map_err(|_| bad())?;
            let unit = match rest.as_bytes()[end].to_ascii_uppercase() {
                b'H' => 3600.0,
                b'M' => 60.0,
                b'S' => 1.0,
                _ => return Err(bad()),
            };
            total = total
                .checked_add(Duration::try_from_secs_f64(n * unit).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            rest = &rest[end + 1..];
        }
        return Ok(total);
    }
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..end].parse().map_err(|_| bad())?;
    let secs = |per: u64| n.checked_mul(per).map(Duration::from_secs).ok_or_else(bad);
    Ok(match t[end..].trim() {
        "" | "ms" => Duration::from_millis(n),
        "ns" => Duration::from_nanos(n),
        "us" => Duration::from_micros(n),
        "s" => Duration::from_secs(n),
        "m" => secs(60)?,
        "h" => secs(3600)?,
        "d" => secs(86400)?,
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(args: &[(&str, &str)]) -> Spec {
        Spec {
            name: "Retry".into(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn compile(spec: Spec) -> Result<RetryPolicy, String> {
        RetryPolicy::compile(&spec).map_err(|e| e.to_string())
    }

    const GET: Method = Method::GET;

    fn status(s: u16) -> Ended {
        Ended::Status(StatusCode::from_u16(s).unwrap())
    }

    #[test]
    fn a_bare_retry_filter_has_spring_cloud_gateways_defaults() {
        let p = compile(Spec::shortcut("Retry").unwrap()).unwrap();
        assert_eq!(p.retries, 3);
        for s in [500, 501, 502, 503, 599] {
            assert!(p.retries_after(status(s), &GET, true), "{s}");
        }
        assert!(!p.retries_after(status(404), &GET, true));
        assert!(p.retries_after(Ended::Error, &GET, true));
        assert!(p.retries_after(Ended::TimedOut, &GET, true));
        // GET only by default, and never a non-idempotent request that reached a backend.
        assert!(!p.retries_after(status(502), &Method::PUT, true));
        assert!(!p.retries_after(status(502), &GET, false));
        assert_eq!(p.delay(1), Duration::ZERO);
    }

    #[test]
    fn the_implicit_policy_retries_gateway_like_statuses_and_errors_for_idempotent_methods() {
        let p = RetryPolicy::implicit(1);
        for (s, retried) in [
            (500, false),
            (502, true),
            (503, true),
            (504, true),
            (404, false),
        ] {
            assert_eq!(p.retries_after(status(s), &GET, true), retried, "{s}");
        }
        assert!(p.retries_after(Ended::Error, &Method::DELETE, true));
        assert!(!p.retries_after(Ended::TimedOut, &GET, true));
        assert!(!p.retries_after(Ended::Error, &Method::POST, false));
    }

    #[test]
    fn the_shortcut_form_reads_springs_field_order() {
        let p = compile(Spec::shortcut("Retry=2,NOT_FOUND,GET,10ms,50ms,3,false,0,PT1S").unwrap())
            .unwrap();
        assert_eq!(p.retries, 2);
        assert!(p.retries_after(status(404), &GET, true));
        assert!(
            p.retries_after(status(500), &GET, true),
            "series keeps its 5xx default"
        );
        assert_eq!(p.delay(1), Duration::from_millis(10));
        assert_eq!(p.delay(2), Duration::from_millis(30));
        assert_eq!(
            p.delay(3),
            Duration::from_millis(50),
            "capped by maxBackoff"
        );
        assert!(p.in_time(Duration::from_millis(900), Duration::from_millis(50)));
        assert!(!p.in_time(Duration::from_millis(960), Duration::from_millis(50)));
    }

    #[test]
    fn named_lists_series_methods_and_exceptions() {
        let p = compile(named(&[
            ("retries", "1"),
            ("statuses[0]", "418"),
            ("series", ""),
            ("methods", "GET,PUT"),
            ("exceptions[0]", "java.util.concurrent.TimeoutException"),
            ("backoff.firstBackoff", "100ms"),
            ("jitter.randomFactor", "0.5"),
        ]))
        .unwrap();
        assert!(p.retries_after(status(418), &Method::PUT, true));
        assert!(!p.retries_after(status(503), &GET, true), "series emptied");
        assert!(!p.retries_after(status(418), &Method::DELETE, true));
        assert!(p.retries_after(Ended::TimedOut, &GET, true));
        assert!(!p.retries_after(Ended::Error, &GET, true));
        for n in 1..=3 {
            let d = p.delay(n);
            let base = 100 * 2u64.pow(n - 1);
            assert!(
                d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base * 3 / 2),
                "retry {n}: {d:?}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        for (args, says) in [
            (vec![("retries", "0")], "greater than 0"),
            (vec![("retries", "x")], "must be a number"),
            (vec![("statuses", "TEAPOT")], "not an HTTP status"),
            (vec![("series", "SERVER_ERRORS")], "not a series"),
            (vec![("methods", "GE T")], "not an HTTP method"),
            (vec![("exceptions", "com.acme.Oops")], "not one Keel raises"),
            (vec![("backoff.firstBackoff", "soon")], "not a duration"),
            (vec![("backoff.factor", "0")], "at least 1"),
            (vec![("jitter.randomFactor", "0.5")], "needs a `backoff`"),
            (
                vec![("backoff.firstBackoff", "1s"), ("jitter.randomFactor", "2")],
                "between 0 and 1",
            ),
            (vec![("timeout", "-1s")], "not a duration"),
            (vec![("retry", "3")], "unknown argument `retry`"),
            (vec![("statuses", "999")], "not one a backend answers"),
            (
                vec![
                    ("backoff.firstBackoff", "1s"),
                    ("backoff.maxBackoff", "10ms"),
                ],
                "below",
            ),
            (
                vec![("timeout", "PT10000000000000000000S10000000000000000000S")],
                "not a duration",
            ),
            (vec![("timeout", "99999999999999999d")], "not a duration"),
        ] {
            let e = compile(named(&args)).unwrap_err();
            assert!(e.contains(says), "{args:?}: {e}");
        }
        assert!(
            compile(Spec::shortcut("Retry=1,500,GET,1ms,1ms,2,true,0,1s,extra").unwrap())
                .unwrap_err()
                .contains("too many")
        );
    }

    #[test]
    fn empty_shortcut_fields_are_left_out_and_huge_pauses_stay_finite() {
        let p = compile(Spec::shortcut("Retry=3,,,,,,,,1s").unwrap()).unwrap();
        assert!(p.retries_after(status(503), &GET, true));
        assert_eq!(p.delay(1), Duration::ZERO);
        assert!(!p.in_time(Duration::from_secs(1), Duration::ZERO));
        let huge = compile(named(&[
            ("backoff.firstBackoff", "100000d"),
            ("jitter.randomFactor", "1"),
            ("timeout", "1s"),
        ]))
        .unwrap();
        assert!(huge.delay(40) <= Duration::from_secs(86_400));
        assert!(!huge.in_time(Duration::MAX, huge.delay(40)));
    }

    #[test]
    fn spring_durations() {
        let spec = named(&[]);
        for (raw, d) in [
            ("250", Duration::from_millis(250)),
            ("10ms", Duration::from_millis(10)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("PT0.5S", Duration::from_millis(500)),
            ("PT1M30S", Duration::from_secs(90)),
        ] {
            assert_eq!(duration(&spec, raw).unwrap(), d, "{raw}");
        }
        assert!(duration(&spec, "PT5X").is_err());
    }
}
