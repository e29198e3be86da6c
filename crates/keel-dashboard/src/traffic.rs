//! Gateway traffic over time: parses the gateway's Prometheus counters and histograms and turns
//! successive scrapes into per-route rates, error rates and latency percentiles.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

/// How many points each route keeps (one per sampling tick).
pub const HISTORY: usize = 60;

/// One route's cumulative counters at one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteCounters {
    pub requests: f64,
    pub errors: f64,
    pub rate_limited: f64,
    /// `(le, cumulative count)`, ascending; `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
}

/// Reads `keel_gateway_requests_total`, `keel_gateway_latency_seconds_bucket` and
/// `keel_gateway_rate_limited_total` from a Prometheus text exposition.
pub fn parse(text: &str) -> BTreeMap<String, RouteCounters> {
    let mut out: BTreeMap<String, RouteCounters> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("keel_gateway_") else {
            continue;
        };
        let Some((name, rest)) = rest.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let labels = parse_labels(labels);
        let Some(route) = labels
            .iter()
            .find(|(k, _)| k == "route")
            .map(|(_, v)| v.clone())
        else {
            continue;
        };
        let label = |key: &str| {
            labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let entry = out.entry(route).or_default();
        match name {
            "requests_total" => {
                entry.requests += value;
                if label("class") == Some("5xx") {
                    entry.errors += value;
                }
            }
            "rate_limited_total" => entry.rate_limited += value,
            "latency_seconds_bucket" => {
                let le = match label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => le.parse().unwrap_or(f64::INFINITY),
                    None => continue,
                };
                entry.buckets.push((le, value));
            }
            _ => {}
        }
    }
    for c in out.values_mut() {
        c.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    out
}

/// One route at one tick.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub t: i64,
    pub rps: f64,
    /// 5xx answers / all answers in the interval, 0..1.
    pub error_rate: f64,
    /// Milliseconds; `None` when nothing was served in the interval.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub rejected_per_sec: f64,
}

/// The latency (ms) below which `q` of the interval's requests finished, interpolated inside
/// the bucket.
fn quantile(now: &[(f64, f64)], before: &[(f64, f64)], q: f64) -> Option<f64> {
    let deltas: Vec<(f64, f64)> = now
        .iter()
        .map(|(le, c)| {
            let prev = before
                .iter()
                .find(|(l, _)| l == le)
                .map_or(0.0, |(_, c)| *c);
            (*le, (c - prev).max(0.0))
        })
        .collect();
    let total = deltas.last().map(|(_, c)| *c)?;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut lower = (0.0, 0.0);
    for (le, cum) in deltas {
        if cum >= target {
            if le.is_infinite() {
                return Some(lower.0 * 1000.0);
            }
            let width = cum - lower.1;
            let frac = if width > 0.0 {
                (target - lower.1) / width
            } else {
                1.0
            };
            return Some((lower.0 + (le - lower.0) * frac) * 1000.0);
        }
        lower = (le, cum);
    }
    None
}

/// Successive scrapes folded into per-route series.
#[derive(Debug, Default)]
pub struct TrafficSeries {
    last: Option<(i64, BTreeMap<String, RouteCounters>)>,
    pub routes: BTreeMap<String, VecDeque<Point>>,
    pub totals: BTreeMap<String, RouteCounters>,
}

impl TrafficSeries {
    /// Adds the scrape taken at `t` (epoch ms).
    pub fn record(&mut self, t: i64, counters: BTreeMap<String, RouteCounters>) {
        if let Some((t0, before)) = &self.last {
            let secs = ((t - t0) as f64 / 1000.0).max(0.001);
            for (route, now) in &counters {
                let empty = RouteCounters::default();
                let prev = before.get(route).unwrap_or(&empty);
                let requests = (now.requests - prev.requests).max(0.0);
                let errors = (now.errors - prev.errors).max(0.0);
                let point = Point {
                    t,
                    rps: requests / secs,
                    error_rate: if requests > 0.0 {
                        errors / requests
                    } else {
                        0.0
                    },
                    p50: quantile(&now.buckets, &prev.buckets, 0.5),
                    p90: quantile(&now.buckets, &prev.buckets, 0.9),
                    p99: quantile(&now.buckets, &prev.buckets, 0.99),
                    rejected_per_sec: (now.rate_limited - prev.rate_limited).max(0.0) / secs,
                };
                let series = self.routes.entry(route.clone()).or_default();
                series.push_back(point);
                while series.len() > HISTORY {
                    series.pop_front();
                }
            }
        }
        self.totals = counters.clone();
        self.last = Some((t, counters));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# TYPE keel_gateway_requests counter
keel_gateway_requests_total{route="users",class="2xx"} 90
keel_gateway_requests_total{route="users",class="5xx"} 10
keel_gateway_rate_limited_total{route="users"} 3
keel_gateway_latency_seconds_bucket{le="0.001",route="users"} 50
keel_gateway_latency_seconds_bucket{le="0.002",route="users"} 100
keel_gateway_latency_seconds_bucket{le="+Inf",route="users"} 100
keel_http_requests_total{component="gateway",status="2xx"} 7
"#;

    #[test]
    fn reads_counters_per_route() {
        let parsed = parse(SCRAPE);
        let users = &parsed["users"];
        assert_eq!(users.requests, 100.0);
        assert_eq!(users.errors, 10.0);
        assert_eq!(users.rate_limited, 3.0);
        assert_eq!(users.buckets.len(), 3);
        assert_eq!(parsed.len(), 1);
    }

    #[test]
    fn successive_scrapes_give_rates_and_percentiles() {
        let mut series = TrafficSeries::default();
        series.record(0, BTreeMap::new());
        series.record(2000, parse(SCRAPE));
        let p = &series.routes["users"][0];
        assert_eq!(p.rps, 50.0);
        assert!((p.error_rate - 0.1).abs() < 1e-9);
        assert_eq!(p.p50, Some(1.0));
        assert!(p.p99.unwrap() > 1.9 && p.p99.unwrap() <= 2.0, "{p:?}");
        assert_eq!(p.rejected_per_sec, 1.5);
    }
}
