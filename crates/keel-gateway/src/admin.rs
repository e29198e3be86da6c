//! The admin API under `/keel/v1/gateway/`: routes (list, get, create, delete, validate), services, breakers.
//!
//! Access: with `admin_token` set, every call needs `Authorization: Bearer <token>`; without one the
//! API answers loopback clients only. Calls made in-process (no socket peer, as the dashboard of
//! `keel standalone` makes them) are trusted.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::definition::{RouteDefinition, RouteDocument};
use crate::{Gateway, GatewayError};

pub fn router(gw: Gateway) -> Router<Gateway> {
    const ROUTES: &str =
        "GET lists the routes; a route is created with POST or PUT /keel/v1/gateway/routes/{id}";
    const ROUTE: &str = "GET, POST, PUT or DELETE /keel/v1/gateway/routes/{id}";
    Router::new()
        .route(
            "/keel/v1/gateway/routes",
            get(list).fallback(wrong_method("GET, HEAD", ROUTES)),
        )
        .route(
            "/keel/v1/gateway/routes/{id}",
            get(one)
                .post(create)
                .put(create)
                .delete(delete)
                .fallback(wrong_method("GET, HEAD, POST, PUT, DELETE", ROUTE)),
        )
        .route(
            "/keel/v1/gateway/validate",
            post(validate).fallback(wrong_method("POST", "POST a route table to dry-run it")),
        )
        .route(
            "/keel/v1/gateway/refresh",
            post(refresh).fallback(wrong_method("POST", "POST to reload the route file")),
        )
        .route(
            "/keel/v1/gateway/services",
            get(services).fallback(wrong_method("GET, HEAD", "GET lists the services")),
        )
        .route_layer(axum::middleware::from_fn_with_state(gw, guard))
}

/// A method the path does not take: 405 with `Allow`, and a JSON message saying what it does take.
fn wrong_method(
    allow: &'static str,
    hint: &'static str,
) -> impl Fn(Method) -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move |method: Method| {
        let mut resp = problem(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here: {hint}"),
        );
        resp.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(resp)
    }
}

async fn guard(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let Some(peer) = peer else {
        return next.run(req).await;
    };
    match &gw.config.admin_token {
        Some(token) => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            if presented
                .is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), token.as_bytes()))
            {
                return next.run(req).await;
            }
            let mut resp = problem(
                StatusCode::UNAUTHORIZED,
                "the gateway admin API needs `Authorization: Bearer <gateway.admin-token>`",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"keel-gateway-admin\""),
            );
            resp
        }
        None if peer.ip().is_loopback() => next.run(req).await,
        None => problem(
            StatusCode::FORBIDDEN,
            "the gateway admin API answers loopback clients only; set gateway.admin-token to open it",
        ),
    }
}

fn problem(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "error": message.to_string()})),
    )
        .into_response()
}

async fn list(State(gw): State<Gateway>) -> Json<Value> {
    let routes: Vec<Value> = gw
        .route_definitions()
        .into_iter()
        .map(|(d, source)| {
            let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
            v["source"] = json!(source);
            v
        })
        .collect();
    let table = gw.table.load();
    let discovered: Vec<Value> = gw
        .services
        .all()
        .iter()
        .filter(|s| table.discovers(&s.id))
        .map(|s| json!({"id": format!("discovery_{}", s.id), "uri": format!("lb://{}", s.id),
            "predicates": [format!("Path=/{}/**", s.id)], "filters": ["StripPrefix=1"], "source": "discovery"}))
        .collect();
    Json(
        json!({"routes": routes, "discovery": {"settings": table.discovery, "routes": discovered}}),
    )
}

async fn one(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match gw.route_definitions().into_iter().find(|(d, _)| d.id == id) {
        Some((d, source)) => {
            let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
            v["source"] = json!(source);
            Json(v).into_response()
        }
        None => problem(StatusCode::NOT_FOUND, format!("no route `{id}`")),
    }
}

async fn create(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let def = match parsed
        .map_err(|e| e.to_string())
        .and_then(|v| RouteDefinition::from_json(&id, &v).map_err(|e| e.to_string()))
    {
        Ok(d) => d,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e),
    };
    match gw.upsert_route(def) {
        Ok(()) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, e),
    }
}

async fn delete(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match gw.delete_route(&id) {
        Ok(()) => Json(json!({"deleted": id})).into_response(),
        Err(e @ GatewayError::NotApiRoute(_)) => problem(StatusCode::NOT_FOUND, e),
        Err(e) => problem(StatusCode::BAD_REQUEST, e),
    }
}

/// Dry run: a JSON route (`{"id": …, "uri": …}`), or a route document as YAML/JSON, or `.properties`
/// text (`Content-Type: text/x-java-properties`).
async fn validate(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = String::from_utf8_lossy(&body);
    let doc = if ctype.contains("json")
        && let Ok(v) = serde_json::from_str::<Value>(&text)
        && v.get("uri").is_some()
    {
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("validate")
            .to_owned();
        RouteDefinition::from_json(&id, &v).map(|d| RouteDocument {
            routes: vec![d],
            ..RouteDocument::default()
        })
    } else {
        RouteDocument::parse(&text, ctype.contains("properties"))
    };
    let result = doc
        .map_err(|e| e.to_string())
        .and_then(|d| gw.validate(&d).map_err(|e| e.to_string()));
    match result {
        Ok(n) => Json(json!({"valid": true, "routes": n})).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"valid": false, "error": e})),
        )
            .into_response(),
    }
}

async fn refresh(State(gw): State<Gateway>) -> Response {
    match gw.reload_file() {
        Ok(()) => {
            Json(json!({"reloaded": true, "routes": gw.table.load().routes.len()})).into_response()
        }
        Err(e) => problem(StatusCode::BAD_REQUEST, e),
    }
}

async fn services(State(gw): State<Gateway>) -> Json<Value> {
    let list: Vec<Value> = gw
        .services
        .all()
        .iter()
        .map(|s| {
            let h = s.breaker.health();
            let instances: Vec<Value> = s
                .balancer
                .instances()
                .iter()
                .map(|i| json!({
                    "id": i.id().as_str(),
                    "address": i.endpoint().authority.as_str(),
                    "pending": i.pending(),
                    "rttMs": i.rtt_estimate().as_secs_f64() * 1000.0,
                    "ejections": i.ejections(),
                }))
                .collect();
            json!({
                "service": s.id.as_ref(),
                "instances": instances,
                "breaker": {"state": format!("{:?}", s.breaker.state()), "total": h.total, "errors": h.errors,
                    "errorPercentage": h.error_percentage()},
                "concurrency": s.limit.as_ref().map(|l| json!({"limit": l.limit(), "inFlight": l.in_flight()})),
                "retryBudget": {"calls": s.budget.usage().0, "retries": s.budget.usage().1},
            })
        })
        .collect();
    Json(json!({"services": list}))
}
