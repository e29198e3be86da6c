//! The gateway component: Zuul's role. Issue 6 fills in routing, protection and observability.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use keel_server::{Health, HealthRegistry};

/// Settings for one gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayConfig {}

/// The gateway's state, shared by its request path.
#[derive(Clone, Debug)]
pub struct Gateway {
    _config: GatewayConfig,
}

impl Gateway {
    pub fn new(config: GatewayConfig, health: &HealthRegistry) -> Self {
        health.register("gateway", Health::up, false);
        Self { _config: config }
    }
}

/// The gateway's HTTP routes: for now every path is unrouted.
pub fn router(_gateway: Gateway) -> Router {
    Router::new().fallback(no_route)
}

async fn no_route(uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "status": 404,
            "error": "Not Found",
            "message": format!("no route matches {}", uri.path()),
        })),
    )
}
