//! CORS as Spring Cloud Gateway configures it: global by path pattern, and per route in metadata.

use keel_gateway::GatewayConfig;

use crate::support::{Backend, TestGateway, client, json, validate};

const APP: &str = "https://app.example.com";

fn routes(a: &Backend) -> String {
    format!(
        r#"
spring.cloud.gateway:
  globalcors:
    add-to-simple-url-handler-mapping: true
    cors-configurations:
      '[/**]':
        allowedOrigins: "{APP}"
        allowedMethods: [GET, POST]
        allowedHeaders: "*"
        exposedHeaders: X-Backend-Header
        maxAge: 600
  routes:
    - id: api
      uri: http://{a}
      predicates: [Path=/api/**, "Method=GET,POST"]
    - id: open
      uri: http://{a}
      predicates: [Path=/open/**]
      metadata:
        cors:
          allowedOrigins: "*"
"#,
        a = a.addr
    )
}

#[tokio::test]
async fn preflights_are_answered_and_allowed_origins_get_the_headers() {
    let a = Backend::start("a").await;
    let g = TestGateway::start(GatewayConfig::default(), &routes(&a)).await;
    let c = client();
    // A preflight no route admits (the route takes GET and POST only) is answered by the gateway.
    let r = c
        .request(reqwest::Method::OPTIONS, g.url("/api/orders"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    assert_eq!(h["access-control-allow-headers"], "content-type, x-token");
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.contains_key("x-request-id"), "{h:?}");
    assert_eq!(a.count(), 0, "a preflight never reaches the backend");

    // The actual request goes through and its answer names the origin.
    let r = c
        .post(g.url("/api/orders"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-expose-headers"], "X-Backend-Header");
    assert!(
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("Origin")),
        "{h:?}"
    );
    assert_eq!(a.count(), 1);

    // Without Origin, or from the gateway's own origin, it is not a CORS request.
    for origin in [None, Some(format!("http://{}", g.addr))] {
        let mut req = c.get(g.url("/api/orders"));
        if let Some(o) = &origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{origin:?}");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin:?}"
        );
        assert!(
            r.headers()["vary"].to_str().unwrap().contains("Origin"),
            "a cache must not hand this answer to another origin"
        );
    }
    assert_eq!(a.count(), 3);
}

#[tokio::test]
async fn other_origins_are_refused_unless_the_route_allows_them() {
    let a = Backend::start("a").await;
    let g = TestGateway::start(GatewayConfig::default(), &routes(&a)).await;
    let c = client();
    let evil = "https://evil.example";
    let r = c
        .get(g.url("/api/orders"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["reason"], "cors_rejected");
    let r = c
        .request(reqwest::Method::OPTIONS, g.url("/api/orders"))
        .header("origin", APP)
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "DELETE is not an allowed method");
    assert_eq!(a.count(), 0, "nothing refused reached the backend");
    // The route's own configuration replaces the global one.
    let r = c
        .get(g.url("/open/x"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(a.count(), 1);
    // A route whose CORS would hand credentials to any origin is refused.
    let (status, body) = validate(
        &g,
        r#"{"id":"r","uri":"http://127.0.0.1:1","predicates":["Path=/r/**"],
            "metadata":{"cors":{"allowedOrigins":"*","allowCredentials":"true"}}}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("allowCredentials"), "{body}");
}
