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

    /// One component's handles, resolved once so requests never take the families' locks.
    pub(crate) fn recorder(&self, component: &'static str) -> Recorder {
        let class = |status| {
            let labels = HttpLabels { component, status };
            (
                self.requests.get_or_create_owned(&labels),
                self.duration.get_or_create_owned(&labels),
            )
        };
        Recorder {
            in_flight: self
                .in_flight
                .get_or_create_owned(&ComponentLabel { component }),
            by_class: Arc::new([
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ]),
        }
    }
}

/// Middleware state: one component's metric handles.
#[derive(Clone, Debug)]
pub(crate) struct Recorder {
    in_flight: Gauge,
    /// Request counter and duration histogram per status class, 1xx to 5xx.
    by_class: Arc<[(Counter, Histogram); 5]>,
}

pub(crate) async fn record(State(rec): State<Recorder>, request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    rec.in_flight.inc();
    let response = next.run(request).await;
    rec.in_flight.dec();
    let class = usize::from((response.status().as_u16() / 100).clamp(1, 5) - 1);
    let (requests, duration) = &rec.by_class[class];
    requests.inc();
    duration.observe(started.elapsed().as_secs_f64());
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
