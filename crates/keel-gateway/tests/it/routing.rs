//! Discovery routes, declared routes with each predicate and filter, and the proxy headers.

use keel_gateway::GatewayConfig;

use crate::support::{Backend, TestGateway, access_log_until, client, json};

#[tokio::test]
async fn discovery_routes_strip_the_service_id_case_insensitively() {
    let b = Backend::start("users").await;
    let routes = "spring.cloud.gateway.discovery.locator:\n  ignore: secret*\n";
    let g = TestGateway::start(GatewayConfig::default(), routes).await;
    g.backends("USERS", &[&b]);
    g.backends("secret-svc", &[&b]);
    g.gw.services().get_or_create("empty");
    let c = client();
    for path in ["/users/hello?x=1", "/USERS/hello?x=1", "/Users/hello?x=1"] {
        let r = c.get(g.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v = json(r).await;
        assert_eq!(v["path"], "/hello?x=1");
        assert_eq!(
            v["headers"]["x-forwarded-prefix"],
            path.split('/').nth(1).map(|s| format!("/{s}")).unwrap()
        );
    }
    let r = c.get(g.url("/secret-svc/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = c.get(g.url("/nobody/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["reason"], "no_route");
    let r = c.get(g.url("/empty/x")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let v = json(r).await;
    assert_eq!(v["reason"], "no_instance");
    // The request's own path, as Spring Cloud Gateway's error attributes give it, not the
    // forwarded one (`/x` after StripPrefix).
    assert_eq!(v["path"], "/empty/x");
    assert!(!b.saw("/x"));
}

#[tokio::test]
async fn each_predicate_selects_its_route() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let routes = format!(
        r#"
spring:
  cloud:
    gateway:
      routes:
        - id: path-vars
          uri: http://{a}
          predicates: ["Path=/p/{{seg}}/**"]
          filters: ["SetPath=/set/{{seg}}"]
        - id: host
          uri: http://{a}
          predicates: ["Host=**.example.org", "Path=/host/**"]
        - id: method
          uri: http://{a}
          predicates: ["Method=POST", "Path=/m/**"]
        - id: header
          uri: http://{a}
          predicates: ["Header=X-Canary, yes|true", "Path=/h/**"]
        - id: query
          uri: http://{a}
          predicates:
            - name: Query
              args: {{param: debug}}
            - Path=/q/**
        - id: remote
          uri: http://{a}
          predicates: ["RemoteAddr=10.0.0.0/8", "Path=/r/**"]
        - id: cookie
          uri: http://{a}
          predicates: ["Cookie=flavour, choc.*", "Path=/c/**"]
        - id: launched
          uri: http://{a}
          predicates: ["After=2017-01-20T17:42:47.789-07:00[America/Denver]", "Path=/t/after/**"]
        - id: expired
          uri: http://{a}
          predicates: ["Before=2017-01-20T17:42-07:00[America/Denver]", "Path=/t/before/**"]
        - id: window
          uri: http://{a}
          predicates: ["Between=1484959367789, 9999-12-31T23:59:59Z", "Path=/t/between/**"]
        - id: heavy
          uri: http://{a}
          predicates: ["Weight=canary, 7", "Path=/w/**"]
        - id: light
          uri: http://{b}
          predicates: ["Weight=canary, 3", "Path=/w/**"]
"#,
        a = a.addr,
        b = b.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let c = client();
    let v = json(c.get(g.url("/p/42/rest")).send().await.unwrap()).await;
    assert_eq!(v["path"], "/set/42");
    let st = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        st(c.get(g.url("/host/x"))
            .header("host", "API.example.org")
            .send()
            .await
            .unwrap()),
        200
    );
    assert_eq!(
        st(c.get(g.url("/host/x"))
            .header("host", "example.com")
            .send()
            .await
            .unwrap()),
        404
    );
    assert_eq!(st(c.post(g.url("/m/x")).send().await.unwrap()), 200);
    assert_eq!(st(c.get(g.url("/m/x")).send().await.unwrap()), 404);
    assert_eq!(
        st(c.get(g.url("/h/x"))
            .header("x-canary", "true")
            .send()
            .await
            .unwrap()),
        200
    );
    assert_eq!(
        st(c.get(g.url("/h/x"))
            .header("x-canary", "no")
            .send()
            .await
            .unwrap()),
        404
    );
    assert_eq!(
        st(c.get(g.url("/q/x?a=1&debug=1")).send().await.unwrap()),
        200
    );
    assert_eq!(st(c.get(g.url("/q/x?a=1")).send().await.unwrap()), 404);
    assert_eq!(
        st(c.get(g.url("/r/x")).send().await.unwrap()),
        404,
        "127.0.0.1 is not in 10/8"
    );
    assert_eq!(
        st(c.get(g.url("/c/x"))
            .header("cookie", "a=1; flavour=chocolate")
            .send()
            .await
            .unwrap()),
        200
    );
    assert_eq!(
        st(c.get(g.url("/c/x"))
            .header("cookie", "flavour=vanilla")
            .send()
            .await
            .unwrap()),
        404
    );
    // Spring's instant forms (zone name, no seconds, epoch milliseconds), against the real clock.
    assert_eq!(st(c.get(g.url("/t/after/x")).send().await.unwrap()), 200);
    assert_eq!(st(c.get(g.url("/t/before/x")).send().await.unwrap()), 404);
    assert_eq!(st(c.get(g.url("/t/between/x")).send().await.unwrap()), 200);
    let mut heavy = 0;
    for _ in 0..200 {
        let v = json(c.get(g.url("/w/x")).send().await.unwrap()).await;
        if v["backend"] == "a" {
            heavy += 1;
        }
    }
    assert!(
        (80..200).contains(&heavy),
        "7:3 split gave {heavy}/200 to the heavy route"
    );
}

#[tokio::test]
async fn each_filter_edits_the_exchange() {
    let a = Backend::start("a").await;
    let routes = format!(
        r#"
spring.cloud.gateway:
  default-filters: ["AddResponseHeader=X-Default, yes"]
  routes:
    - id: strip
      uri: http://{a}
      predicates: [Path=/s/**]
      filters: [StripPrefix=2, PrefixPath=/api]
    - id: rewrite
      uri: http://{a}/base
      predicates: [Path=/red/**]
      filters: ["RewritePath=/red/?(?<segment>.*), /blue/$\\{{segment}}"]
    - id: headers
      uri: http://{a}
      predicates: [Path=/hd/**]
      filters:
        - AddRequestHeader=X-Added, one
        - SetRequestHeader=X-Set, two
        - RemoveRequestHeader=X-Drop
        - AddResponseHeader=X-Resp, three
        - SetResponseHeader=Content-Type, text/plain
        - RemoveResponseHeader=X-Backend-Header
        - SecureHeaders
    - id: more
      uri: http://{a}
      predicates: [Path=/more/**]
      filters:
        - MapRequestHeader=X-Tenant, X-Org
        - AddRequestParameter=lang, en
        - RemoveRequestParameter=debug
        - SetRequestHostHeader=api.internal
        - AddResponseHeader=X-Dup, a
        - AddResponseHeader=X-Dup, a
        - AddResponseHeader=X-Dup, b
        - DedupeResponseHeader=X-Dup, RETAIN_UNIQUE
        - AddResponseHeader=X-Redirected, https://internal:8443/a?password=s3cret&x=1
        - RewriteResponseHeader=X-Redirected, password=[^&]+, password=***
    - id: status
      uri: http://{a}
      predicates: [Path=/teapot/**]
      filters: [SetStatus=418]
    - id: redirect
      uri: http://{a}
      predicates: [Path=/old/**]
      filters: ["RedirectTo=302, https://example.org/new"]
    - id: redirect-with-query
      uri: http://{a}
      predicates: [Path=/kept/**]
      filters: ["RedirectTo=301, https://example.org/new?from=gw, true"]
    - id: size
      uri: http://{a}
      predicates: [Path=/upload/**]
      filters:
        - name: RequestSize
          args: {{maxSize: 10}}
"#,
        a = a.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let c = client();
    let r = c.get(g.url("/s/x/y/z")).send().await.unwrap();
    assert_eq!(r.headers()["x-default"], "yes");
    assert_eq!(json(r).await["path"], "/api/y/z");
    assert_eq!(
        json(c.get(g.url("/red/sky?q=1")).send().await.unwrap()).await["path"],
        "/base/blue/sky?q=1"
    );
    let r = c
        .get(g.url("/hd/x"))
        .header("x-drop", "1")
        .header("x-set", "zero")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-resp"], "three");
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(r.headers().get("x-backend-header").is_none());
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["headers"]["x-added"], "one");
    assert_eq!(v["headers"]["x-set"], "two");
    assert!(v["headers"].get("x-drop").is_none());
    let r = c
        .get(g.url("/more/x?debug=1&q=2&debug"))
        .header("x-tenant", "t1")
        .send()
        .await
        .unwrap();
    let dup: Vec<_> = r.headers().get_all("x-dup").iter().collect();
    assert_eq!(dup, ["a", "b"]);
    assert_eq!(
        r.headers()["x-redirected"],
        "https://internal:8443/a?password=***&x=1"
    );
    let v = json(r).await;
    assert_eq!(v["path"], "/more/x?q=2&lang=en");
    assert_eq!(v["headers"]["x-org"], "t1");
    assert_eq!(v["headers"]["x-tenant"], "t1");
    assert_eq!(v["headers"]["host"], "api.internal");
    assert_eq!(c.get(g.url("/teapot")).send().await.unwrap().status(), 418);
    let r = c.get(g.url("/old/x?a=1")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.org/new");
    // `includeRequestParams`: the request's query goes along.
    let r = c.get(g.url("/kept/x?a=1&b=2")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        "https://example.org/new?from=gw&a=1&b=2"
    );
    assert_eq!(
        c.post(g.url("/upload"))
            .body("0123456789")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(g.url("/upload"))
        .body("0123456789ab")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers().contains_key("errormessage"));
    assert!(!a.saw("/old"));
}

#[tokio::test]
async fn proxy_headers_sensitive_headers_and_request_ids() {
    let a = Backend::start("a").await;
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: ext\n    uri: http://{a}\n    predicates: [Path=/ext/**]\n  \
         - id: keep\n    uri: http://{a}\n    predicates: [Path=/keep/**]\n    filters: [PreserveHostHeader]\n",
        a = a.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    g.backends("svc", &[&a]);
    let c = client();
    // http:// routes: Cookie and Authorization stay at the gateway, Set-Cookie does not come back.
    let r = c
        .get(g.url("/ext/x"))
        .header("cookie", "a=1")
        .header("authorization", "Bearer t")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    assert!(r.headers().get("set-cookie").is_none());
    let v = json(r).await;
    let h = &v["headers"];
    assert!(h.get("cookie").is_none() && h.get("authorization").is_none());
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "a forged X-Forwarded-For from an untrusted peer is replaced"
    );
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], g.addr.to_string());
    assert_eq!(h["x-forwarded-port"], g.addr.port().to_string());
    assert_eq!(h["x-request-id"], "abc-123");
    assert!(
        h["forwarded"]
            .as_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http")
    );
    assert_eq!(h["host"], a.addr.to_string());
    // PreserveHostHeader: the client's Host reaches the backend (and X-Forwarded-Host still says it).
    let r = c
        .get(g.url("/keep/x"))
        .header("host", "shop.example.com")
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!(v["headers"]["host"], "shop.example.com");
    assert_eq!(v["headers"]["x-forwarded-host"], "shop.example.com");
    // lb:// routes pass them, and a request id is created when none came.
    let r = c
        .get(g.url("/svc/x"))
        .header("cookie", "a=1")
        .header("authorization", "Bearer t")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_some());
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    let v = json(r).await;
    assert_eq!(v["headers"]["cookie"], "a=1");
    assert_eq!(v["headers"]["x-request-id"], id.as_str());
}

#[tokio::test]
async fn trusted_proxies_may_name_the_client() {
    let a = Backend::start("a").await;
    let config = GatewayConfig {
        trusted_proxies: keel_gateway::TrustedProxies(vec!["127.0.0.0/8".parse().unwrap()]),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, "").await;
    g.backends("svc", &[&a]);
    let v = json(
        client()
            .get(g.url("/svc/x"))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
}

#[tokio::test]
async fn properties_route_files_load() {
    let a = Backend::start("a").await;
    let props = format!(
        "spring.cloud.gateway.routes[0].id=p\nspring.cloud.gateway.routes[0].uri=http://{}\n\
         spring.cloud.gateway.routes[0].predicates[0]=Path=/props/**\n\
         spring.cloud.gateway.routes[0].filters[0]=StripPrefix=1\n",
        a.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.properties");
    std::fs::write(&file, props).unwrap();
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    let doc =
        keel_gateway::RouteDocument::parse(&std::fs::read_to_string(&file).unwrap(), true).unwrap();
    g.gw.set_config_routes(doc).unwrap();
    let v = json(client().get(g.url("/props/q")).send().await.unwrap()).await;
    assert_eq!(v["path"], "/q");
}

#[tokio::test]
async fn access_log_lines_name_the_route_and_the_instance_that_served() {
    let fixed = Backend::start("fixed").await;
    let users = Backend::start("users").await;
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: fixed\n    uri: http://{}\n    predicates: [Path=/fixed/**]\n",
        fixed.addr
    );
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("access.log");
    let config = GatewayConfig {
        access_log: keel_gateway::AccessLogTarget::File(log.clone()),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, &routes).await;
    g.backends("USERS", &[&users]);
    let c = client();
    for path in ["/fixed/a", "/users/b"] {
        let r = c.get(g.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let lines = access_log_until(&log, "both requests in the access log", |lines| {
        lines.len() >= 2
    })
    .await;
    let line = |route: &str| {
        lines
            .iter()
            .find(|l| l["route"] == route)
            .unwrap_or_else(|| panic!("no line for route {route}: {lines:?}"))
    };
    // A declared route's own URI: the instance is its address.
    let f = line("fixed");
    assert_eq!(f["instance"], fixed.addr.to_string(), "{f}");
    assert_eq!(f["service"], serde_json::Value::Null, "{f}");
    assert_eq!(
        (f["status"].as_u64(), f["path"].as_str()),
        (Some(200), Some("/fixed/a"))
    );
    // A discovery route: the registry instance that served it.
    let u = lines
        .iter()
        .find(|l| l["path"] == "/users/b")
        .unwrap_or_else(|| panic!("no line for /users/b: {lines:?}"));
    assert_eq!(u["instance"], "USERS-0", "{u}");
    assert_eq!(u["service"], "users", "{u}");
}

#[tokio::test]
async fn rewrite_location_response_header_points_redirects_back_at_the_gateway() {
    let a = Backend::start("a").await;
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: as-in-request
    uri: http://{a}
    predicates: [Path=/loc/**]
    filters:
      - SetResponseHeader=Location, http://backend.internal:9000/v1/next?x=1
      - RewriteLocationResponseHeader
  - id: fixed
    uri: http://{a}
    predicates: [Path=/v2/**]
    filters:
      - SetResponseHeader=Location, https://backend.internal/v1/next
      - RewriteLocationResponseHeader=NEVER_STRIP, Location, api.example.com,
  - id: other-scheme
    uri: http://{a}
    predicates: [Path=/gopher/**]
    filters:
      - SetResponseHeader=Location, gopher://backend.internal:70/menu
      - RewriteLocationResponseHeader
"#,
        a = a.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let c = client();
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
    // An unversioned request path: the backend's host, port and version give way to the client's Host.
    let r = c.get(g.url("/loc/x")).send().await.unwrap();
    assert_eq!(location(&r), format!("http://{}/next?x=1", g.addr));
    // NEVER_STRIP with a fixed host keeps the version.
    let r = c.get(g.url("/v2/x")).send().await.unwrap();
    assert_eq!(location(&r), "https://api.example.com/v1/next");
    // Schemes outside protocolsRegex are left alone.
    let r = c.get(g.url("/gopher/x")).send().await.unwrap();
    assert_eq!(location(&r), "gopher://backend.internal:70/menu");
}
