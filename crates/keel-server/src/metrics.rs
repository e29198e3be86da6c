//! The process's one Prometheus registry and the per-request HTTP metrics every component records.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The frozen, shareable registry. Components register their metrics into the mutable
/// [`Registry`] while the process is wired up; afterwards it is only read, so scrapes take no lock.
#[derive(Clone, Debug)]
pub struct MetricsRegistry {
    registry: Arc<Registry>,
}

impl MetricsRegistry {
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
        }
    }

    /// Prometheus text exposition format (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    component: &'static str,
    /// `2xx`, `4xx`, …
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: &'static str,
}

/// `http_requests_total` and `http_request_duration_seconds`, labelled by component and status
/// class, and `http_requests_in_flight` by component.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: Family<HttpLabels, Histogram>,
    in_flight: Family<ComponentLabel, Gauge>,
}

impl HttpMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        let duration = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests served, by component and status class",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce response headers, by component and status class",
            duration.clone(),
        );
        let in_flight = Family::<ComponentLabel, Gauge>::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now, by component",
            in_flight.clone(),
        );
        Self {
            requests,
            duration,
            in_flight,
        }
    }

    fn record(&self, component: &'static str, status: http::StatusCode, seconds: f64) {
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        let labels = HttpLabels { component, status };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(seconds);
    }
}

/// Middleware state: which component this router belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    pub(crate) component: &'static str,
    pub(crate) metrics: HttpMetrics,
}

pub(crate) async fn record(State(rec): State<Recorder>, request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let gauge = rec.metrics.in_flight.get_or_create_owned(&ComponentLabel {
        component: rec.component,
    });
    gauge.inc();
    let response = next.run(request).await;
    gauge.dec();
    rec.metrics.record(
        rec.component,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

pub(crate) async fn prometheus(State(metrics): State<MetricsRegistry>) -> impl IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
