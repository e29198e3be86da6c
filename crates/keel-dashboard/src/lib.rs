//! The dashboard: one live page for the whole platform, served on the registry's port.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Json};
use axum::routing::get;
use keel_server::HealthSource;

/// A component the dashboard watches, reached in-process or over HTTP.
#[derive(Clone)]
pub struct Watched {
    pub name: String,
    pub health: Arc<dyn HealthSource>,
}

/// The dashboard's state: the components it aggregates.
#[derive(Clone, Default)]
pub struct Dashboard {
    components: Arc<Vec<Watched>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field(
                "components",
                &self.components.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dashboard {
    pub fn new(components: Vec<Watched>) -> Self {
        Self {
            components: Arc::new(components),
        }
    }
}

/// `GET /` (the page) and `GET /keel/v1/dashboard/health` (its feed).
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/keel/v1/dashboard/health", get(health))
        .with_state(dashboard)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// Every watched component's health; an unreachable one is reported DOWN with the reason.
async fn health(State(dashboard): State<Dashboard>) -> Json<serde_json::Value> {
    let mut out = serde_json::Map::new();
    for watched in dashboard.components.iter() {
        let value = match watched.health.health().await {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(e) => serde_json::json!({"status": "DOWN", "error": e.to_string()}),
        };
        out.insert(watched.name.clone(), value);
    }
    Json(serde_json::Value::Object(out))
}
