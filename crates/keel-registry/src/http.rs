//! The registry's HTTP surface: Eureka's routes under `/eureka/` and `/eureka/v2/` (with or
//! without a trailing slash) and the `/keel/v1/watch` SSE stream.

mod auth;
mod eureka;
mod peer;
mod respond;
mod watch;

use axum::Router;
use axum::routing::{MethodRouter, get, post, put};
use tower_http::compression::CompressionLayer;

use crate::engine::Registry;

/// The registry's routes, ready to be wrapped by `keel_server::app`.
pub fn router(registry: Registry) -> Router {
    let mut router = Router::new();
    for prefix in ["/eureka", "/eureka/v2"] {
        for (path, method_router) in eureka_routes() {
            let full = format!("{prefix}{path}");
            // Clients disagree about trailing slashes (Spring and py-eureka-client send
            // `/apps/`), so both spellings are served.
            router = router
                .route(&full, method_router.clone())
                .route(&format!("{full}/"), method_router);
        }
    }
    router
        .route("/keel/v1/watch", get(watch::watch))
        // Before routing-level concerns: credentials are checked for every registry route.
        .layer(axum::middleware::from_fn_with_state(
            registry.clone(),
            auth::check,
        ))
        // Eureka gzips when asked; SSE is excluded by tower-http's default predicate.
        .layer(CompressionLayer::new())
        .with_state(registry)
}

fn eureka_routes() -> Vec<(&'static str, MethodRouter<Registry>)> {
    use eureka::*;
    vec![
        ("/apps", get(get_apps)),
        ("/apps/delta", get(get_delta)),
        ("/apps/{app}", get(get_app).post(register)),
        (
            "/apps/{app}/{id}",
            get(get_instance).put(renew).delete(cancel),
        ),
        (
            "/apps/{app}/{id}/status",
            put(set_status).delete(delete_status),
        ),
        ("/apps/{app}/{id}/metadata", put(update_metadata)),
        ("/instances/{id}", get(find_instance)),
        ("/vips/{vip}", get(get_vip)),
        ("/svips/{svip}", get(get_svip)),
        ("/peerreplication/batch", post(peer::batch)),
    ]
}
