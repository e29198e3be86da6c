//! The dashboard's view of the gateway: routes, per-service breakers and limits, the metrics
//! that traffic sparklines are computed from, and route changes (`keel ctl routes apply`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use keel_server::MetricsRegistry;
use serde_json::Value;

use crate::config_view::encode;
use crate::transport::{SourceError, Transport};

/// Where the dashboard and `keel ctl` read and change the gateway. Routes and services keep the
/// gateway admin API's JSON shapes (`/keel/v1/gateway/{routes,services}`).
pub trait GatewayView: Send + Sync {
    fn routes(&self) -> BoxFuture<'_, Result<Value, SourceError>>;
    fn services(&self) -> BoxFuture<'_, Result<Value, SourceError>>;
    /// The Prometheus text exposition holding `keel_gateway_*`.
    fn metrics(&self) -> BoxFuture<'_, Result<String, SourceError>>;
    /// Compiles a route document (YAML, JSON or `.properties`) against the live table; `Ok`
    /// carries the number of routes it would serve.
    fn validate<'a>(
        &'a self,
        document: &'a str,
        properties: bool,
    ) -> BoxFuture<'a, Result<u64, SourceError>>;
    /// Adds or replaces one route (a JSON route definition).
    fn put_route<'a>(
        &'a self,
        id: &'a str,
        route: &'a Value,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
}

/// The gateway admin API over HTTP or into the router of the gateway in this process; in-process
/// the metrics come from the process's registry once [`GatewayClient::set_metrics`] is called.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    transport: Transport,
    metrics: Arc<OnceLock<MetricsRegistry>>,
}

impl GatewayClient {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            metrics: Arc::default(),
        }
    }

    /// In-process: read metrics from this registry rather than `GET /metrics` (the bare
    /// component router has no actuator routes; they are added when it is served).
    pub fn set_metrics(&self, metrics: MetricsRegistry) {
        let _ = self.metrics.set(metrics);
    }

    pub fn base(&self) -> &str {
        self.transport.base()
    }
}

impl GatewayView for GatewayClient {
    fn routes(&self) -> BoxFuture<'_, Result<Value, SourceError>> {
        Box::pin(async move { self.transport.get("/keel/v1/gateway/routes").await?.json() })
    }

    fn services(&self) -> BoxFuture<'_, Result<Value, SourceError>> {
        Box::pin(async move {
            self.transport
                .get("/keel/v1/gateway/services")
                .await?
                .json()
        })
    }

    fn metrics(&self) -> BoxFuture<'_, Result<String, SourceError>> {
        Box::pin(async move {
            if let Some(m) = self.metrics.get() {
                return Ok(m.encode());
            }
            let answer = self.transport.get("/metrics").await?.success()?;
            Ok(String::from_utf8_lossy(&answer.body).into_owned())
        })
    }

    fn validate<'a>(
        &'a self,
        document: &'a str,
        properties: bool,
    ) -> BoxFuture<'a, Result<u64, SourceError>> {
        Box::pin(async move {
            let ct = if properties {
                "text/x-java-properties"
            } else {
                "application/yaml"
            };
            let answer = self
                .transport
                .send(
                    Method::POST,
                    "/keel/v1/gateway/validate",
                    Some(ct),
                    Bytes::from(document.to_owned()),
                )
                .await?;
            let v: Value = answer.json()?;
            Ok(v["routes"].as_u64().unwrap_or(0))
        })
    }

    fn put_route<'a>(
        &'a self,
        id: &'a str,
        route: &'a Value,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            self.transport
                .send(
                    Method::PUT,
                    &format!("/keel/v1/gateway/routes/{}", encode(id)),
                    Some("application/json"),
                    Bytes::from(route.to_string()),
                )
                .await?
                .success()?;
            Ok(())
        })
    }
}
