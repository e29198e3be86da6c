//! Per-route auth over real sockets: JWT (HS256 secret, RS256 JWKS file, ES256 PEM file), API keys,
//! basic auth, claims forwarded as headers, the rate limiter keyed on the verified subject, and the
//! admin API's token and separate listener.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use keel_gateway::GatewayConfig;
use serde_json::{Value, json};

use crate::support::{Backend, TestGateway, client, json};

const ISS: &str = "https://issuer.test";

fn fixture(name: &str) -> String {
    format!("{}/tests/it/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn rs(claims: Value) -> String {
    let pem = std::fs::read(fixture("rsa-test-key.pem")).unwrap();
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    encode(&h, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

struct Setup {
    backend: Backend,
    g: TestGateway,
    ec: rcgen::KeyPair,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let backend = Backend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_pub = dir.path().join("ec.pub.pem");
    std::fs::write(&ec_pub, ec.public_key_pem()).unwrap();
    let digest = sha256_hex(b"pw2");
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: hs
    uri: http://{b}
    predicates: [Path=/hs/**]
    filters:
      - name: JwtAuth
        args:
          secret: "s3cret"
          issuer: "{ISS}"
          audience: "api"
          claims-to-headers: "sub:X-Auth-Subject, email:X-User-Email"
      - name: RequestRateLimiter
        args:
          replenishRate: "1"
          burstCapacity: "2"
          keyResolver: "principal"
  - id: rs
    uri: http://{b}
    predicates: [Path=/rs/**]
    filters:
      - name: JwtAuth
        args:
          jwks-file: "{jwks}"
          issuer: "{ISS}"
  - id: es
    uri: http://{b}
    predicates: [Path=/es/**]
    filters:
      - name: JwtAuth
        args:
          public-key-file: "{ec_pub}"
          required-claims: "scope=admin"
  - id: keys
    uri: http://{b}
    predicates: [Path=/keys/**]
    filters:
      - name: ApiKeyAuth
        args:
          keys: "alice:k-alice, bob:k-bob"
  - id: basic
    uri: http://{b}
    predicates: [Path=/basic/**]
    filters:
      - name: BasicAuth
        args:
          users: "carol:{{noop}}pw, dave:{{sha256}}{digest}"
"#,
        b = backend.addr,
        jwks = fixture("rsa-test-jwks.json"),
        ec_pub = ec_pub.display(),
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    Setup {
        backend,
        g,
        ec,
        _dir: dir,
    }
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

async fn get(
    g: &TestGateway,
    path: &str,
    auth: Option<String>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = client()
        .get(g.url(path))
        .header("x-auth-subject", "mallory");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, json(r).await, headers)
}

#[tokio::test]
async fn jwt_hs256_rs256_es256_accepted_and_rejected() {
    let s = setup().await;
    let g = &s.g;
    let good =
        json!({"sub": "alice", "email": "a@x.test", "iss": ISS, "aud": "api", "exp": now() + 300});

    let (status, body, _) = get(
        g,
        "/hs/me",
        Some(format!("Bearer {}", hs(good.clone(), "s3cret"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The verified subject replaces the forged one; other claims are forwarded as configured.
    assert_eq!(body["headers"]["x-auth-subject"], "alice");
    assert_eq!(body["headers"]["x-user-email"], "a@x.test");

    let before = s.backend.count();
    let (status, body, headers) = get(g, "/hs/me", None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["reason"], "missing_token");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let rejected = [
        (
            "expired",
            json!({"sub": "a", "iss": ISS, "aud": "api", "exp": now() - 120}),
            "s3cret",
        ),
        (
            "not yet valid",
            json!({"sub": "a", "iss": ISS, "aud": "api", "exp": now() + 300, "nbf": now() + 120}),
            "s3cret",
        ),
        (
            "wrong issuer",
            json!({"sub": "a", "iss": "https://evil.test", "aud": "api", "exp": now() + 300}),
            "s3cret",
        ),
        (
            "wrong audience",
            json!({"sub": "a", "iss": ISS, "aud": "other", "exp": now() + 300}),
            "s3cret",
        ),
        (
            "no exp",
            json!({"sub": "a", "iss": ISS, "aud": "api"}),
            "s3cret",
        ),
        ("wrong key", good.clone(), "guessed"),
    ];
    for (what, claims, secret) in rejected {
        let (status, body, _) =
            get(g, "/hs/me", Some(format!("Bearer {}", hs(claims, secret)))).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["reason"], "invalid_token", "{what}: {body}");
    }
    // alg=none, and an RS256 token offered to an HS256 route.
    let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.";
    assert_eq!(
        get(g, "/hs/me", Some(format!("Bearer {unsigned}"))).await.0,
        401
    );
    assert_eq!(
        get(g, "/hs/me", Some(format!("Bearer {}", rs(good.clone()))))
            .await
            .0,
        401
    );
    assert_eq!(
        s.backend.count(),
        before,
        "rejected requests reached the backend"
    );

    // RS256 with the key from a JWKS file (picked by kid).
    let rs_claims = json!({"sub": "rita", "iss": ISS, "exp": now() + 300});
    let (status, body, _) = get(g, "/rs/x", Some(format!("Bearer {}", rs(rs_claims)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"]["x-auth-subject"], "rita");
    let hs_on_rs = hs(
        json!({"sub": "rita", "iss": ISS, "exp": now() + 300}),
        "s3cret",
    );
    assert_eq!(
        get(g, "/rs/x", Some(format!("Bearer {hs_on_rs}"))).await.0,
        401
    );

    // ES256 with a PEM public key; a missing scope is 403, not 401.
    let ec = EncodingKey::from_ec_pem(s.ec.serialize_pem().as_bytes()).unwrap();
    let es = |scope: &str| {
        encode(
            &Header::new(Algorithm::ES256),
            &json!({"sub": "erin", "scope": scope, "exp": now() + 300}),
            &ec,
        )
        .unwrap()
    };
    assert_eq!(
        get(g, "/es/x", Some(format!("Bearer {}", es("read admin"))))
            .await
            .0,
        200
    );
    let (status, body, _) = get(g, "/es/x", Some(format!("Bearer {}", es("read")))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["reason"], "insufficient_claims");
}

#[tokio::test]
async fn the_rate_limiter_keys_on_the_verified_subject() {
    let s = setup().await;
    let token = |sub: &str| {
        format!(
            "Bearer {}",
            hs(
                json!({"sub": sub, "iss": ISS, "aud": "api", "exp": now() + 300}),
                "s3cret"
            )
        )
    };
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(get(&s.g, "/hs/x", Some(token("alice"))).await.0);
        }
        v
    };
    assert_eq!(statuses, vec![200, 200, 429]);
    // Another subject has its own bucket…
    assert_eq!(get(&s.g, "/hs/x", Some(token("bob"))).await.0, 200);
    // …and an unsigned token naming a fresh subject gets no bucket at all.
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjYXJsIn0.";
    assert_eq!(
        get(&s.g, "/hs/x", Some(format!("Bearer {forged}"))).await.0,
        401
    );
}

#[tokio::test]
async fn api_keys_and_basic_auth() {
    let s = setup().await;
    let c = client();
    let r = c.get(s.g.url("/keys/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["reason"], "missing_api_key");
    let r = c
        .get(s.g.url("/keys/x"))
        .header("x-api-key", "k-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(s.g.url("/keys/x"))
        .header("x-api-key", "k-bob")
        .header("x-consumer", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["headers"]["x-consumer"], "bob");
    assert!(
        body["headers"].get("x-api-key").is_none(),
        "the key was forwarded: {body}"
    );

    let r = c.get(s.g.url("/basic/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"keel\"");
    let r = c
        .get(s.g.url("/basic/x"))
        .basic_auth("carol", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for (user, pass) in [("carol", "pw"), ("dave", "pw2")] {
        let r = c
            .get(s.g.url("/basic/x"))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{user}");
        assert_eq!(json(r).await["headers"]["x-auth-user"], user);
    }
}

#[tokio::test]
async fn an_invalid_auth_filter_rejects_the_table() {
    let s = setup().await;
    let r = client()
        .post(s.g.url("/keel/v1/gateway/validate"))
        .header("content-type", "application/json")
        .body(
            json!({"id": "x", "uri": "http://127.0.0.1:1", "predicates": ["Path=/x/**"],
                "filters": [{"name": "JwtAuth", "args": {"algorithms": "RS256", "secret": "k"}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(json(r).await["error"].as_str().unwrap().contains("RS256"));
    // A principal-keyed limiter without an auth filter would trust unverified input.
    let r = client()
        .post(s.g.url("/keel/v1/gateway/validate"))
        .header("content-type", "application/json")
        .body(
            json!({"id": "y", "uri": "http://127.0.0.1:1", "predicates": ["Path=/y/**"],
                "filters": [{"name": "RequestRateLimiter", "args": {"replenishRate": "1", "keyResolver": "jwt"}}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_admin_api_wants_its_token() {
    let config = GatewayConfig {
        admin_token: Some("t0ken".into()),
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, "").await;
    let c = client();
    let r = c
        .get(g.url("/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = c
        .get(g.url("/keel/v1/gateway/routes"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(g.url("/keel/v1/gateway/routes/sneaky"))
        .body(r#"{"uri":"http://127.0.0.1:1","predicates":["Path=/s/**"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(g.gw.route_definitions().is_empty());
    let r = c
        .get(g.url("/keel/v1/gateway/routes"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_separate_admin_listener_takes_the_admin_api_off_the_proxy_port() {
    let config = GatewayConfig {
        admin_separate: true,
        ..GatewayConfig::default()
    };
    let g = TestGateway::start(config, "").await;
    let r = client()
        .get(g.url("/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await["reason"], "no_route");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = keel_gateway::admin_router(g.gw.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = client()
        .get(format!("http://{addr}/keel/v1/gateway/routes"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
