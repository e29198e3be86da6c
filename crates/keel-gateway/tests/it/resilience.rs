//! Retries and ejection around a killed backend, breakers with fallbacks, and rate limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_gateway::GatewayConfig;
use keel_resilience::BreakerConfig;
use keel_test_support::eventually;

use crate::support::{Backend, TestGateway, client, json, load_loop, text, validate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_load_fails_no_idempotent_request() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let c = Backend::start("c").await;
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    g.backends("svc", &[&a, &b, &c]);
    let stop = Arc::new(AtomicBool::new(false));
    let load = load_loop(g.url("/svc/x"), 6, stop.clone());
    eventually(Duration::from_secs(10), "load on every backend", || async {
        (a.count() > 20 && b.count() > 20 && c.count() > 20).then_some(())
    })
    .await;
    a.kill();
    let (b0, c0) = (b.count(), c.count());
    eventually(
        Duration::from_secs(10),
        "load continues on b and c",
        || async { (b.count() > b0 + 200 && c.count() > c0 + 200).then_some(()) },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(ok > 400);
    assert!(
        failed.is_empty(),
        "{} failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let services = json(
        client()
            .get(g.url("/keel/v1/gateway/services"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let dead = services["services"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "svc-0")
        .cloned()
        .unwrap();
    // Its failures either ejected it or priced it out of P2C (failure penalty 1 s).
    assert!(
        dead["ejections"].as_u64().unwrap() >= 1 || dead["rttMs"].as_f64().unwrap() >= 500.0,
        "the dead instance is avoided: {dead}"
    );
}

#[tokio::test]
async fn an_open_breaker_serves_the_fallback() {
    let broken = Backend::start("broken").await;
    let spare = Backend::start("spare").await;
    let config = GatewayConfig {
        breaker: BreakerConfig {
            request_volume_threshold: 5,
            sleep_window: Duration::from_secs(60),
            ..BreakerConfig::default()
        },
        ..GatewayConfig::default()
    };
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: flaky
    uri: lb://flaky
    predicates: [Path=/flaky/**]
    filters:
      - StripPrefix=1
      - name: CircuitBreaker
        args: {{name: flaky, fallbackUri: "forward:/fallback/flaky"}}
  - id: fallback
    uri: http://{spare}
    predicates: [Path=/fallback/**]
  - id: static
    uri: lb://flaky
    predicates: [Path=/static/**]
    filters:
      - StripPrefix=1
      - name: CircuitBreaker
        args: {{fallbackStatus: "200", fallbackBody: "cached answer"}}
"#,
        spare = spare.addr
    );
    let g = TestGateway::start(config, &routes).await;
    g.backends("flaky", &[&broken]);
    let c = client();
    // A 500 is the service's own answer (no `statusCodes` given), but it counts against the breaker.
    for _ in 0..5 {
        let r = c.get(g.url("/flaky/status/500")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        assert!(r.headers().get("x-keel-fallback").is_none());
    }
    let seen = broken.count();
    let r = c.get(g.url("/flaky/status/500")).send().await.unwrap();
    assert_eq!(r.headers()["x-keel-fallback"], "breaker_open");
    assert_eq!(json(r).await["path"], "/fallback/flaky");
    let r = c.get(g.url("/static/anything")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "cached answer");
    assert_eq!(
        broken.count(),
        seen,
        "an open breaker sends nothing to the service"
    );
    let services = json(
        c.get(g.url("/keel/v1/gateway/services"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(services["services"][0]["breaker"]["state"], "Open");
    let metrics = text(&c, g.url("/actuator/prometheus")).await;
    assert!(
        metrics.contains("keel_gateway_breaker_state{service=\"flaky\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers() {
    let a = Backend::start("a").await;
    let routes = format!(
        r#"
spring.cloud.gateway.routes:
  - id: limited
    uri: http://{a}
    predicates: [Path=/limited/**]
    filters:
      - name: RequestRateLimiter
        args:
          redis-rate-limiter.replenishRate: 1
          redis-rate-limiter.burstCapacity: 3
          keyResolver: header:X-Client
"#,
        a = a.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let c = client();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = c
            .get(g.url("/limited/x"))
            .header("x-client", "alice")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["ratelimit-limit"], "3");
        assert_eq!(r.headers()["x-ratelimit-burst-capacity"], "3");
        assert_eq!(r.headers()["x-ratelimit-replenish-rate"], "1");
        remaining.push(
            r.headers()["x-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let r = c
        .get(g.url("/limited/x"))
        .header("x-client", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json(r).await["reason"], "rate_limited");
    // Another key has its own bucket; no key at all is refused (deny-empty-key).
    assert_eq!(
        c.get(g.url("/limited/x"))
            .header("x-client", "bob")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(g.url("/limited/x")).send().await.unwrap().status(),
        403
    );
    assert_eq!(a.count(), 4);
    let metrics = text(&c, g.url("/actuator/prometheus")).await;
    assert!(
        metrics.contains("keel_gateway_rate_limited_total{route=\"limited\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn timeouts_answer_504() {
    let a = Backend::start("a").await;
    let routes = format!(
        "spring.cloud.gateway.routes:\n  - id: slow\n    uri: http://{}\n    predicates: [Path=/slow]\n    metadata:\n      response-timeout: 200\n",
        a.addr
    );
    let g = TestGateway::start(GatewayConfig::default(), &routes).await;
    let r = client().get(g.url("/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(json(r).await["reason"], "timeout");
}

/// Three instances of `svc` (and, as `other`, of a second service), all answering whatever a test asks.
async fn three(g: &TestGateway) -> [Backend; 3] {
    let bs = [
        Backend::start("a").await,
        Backend::start("b").await,
        Backend::start("c").await,
    ];
    g.backends("svc", &[&bs[0], &bs[1], &bs[2]]);
    g.backends("other", &[&bs[0], &bs[1], &bs[2]]);
    bs
}

fn hits(bs: &[Backend; 3]) -> usize {
    bs.iter().map(Backend::count).sum()
}

#[tokio::test]
async fn the_retry_filter_retries_what_spring_cloud_gateway_would_within_keels_rules() {
    let routes = "
spring.cloud.gateway.routes:
  - id: retried
    uri: lb://svc
    predicates: [Path=/retry/**]
    filters:
      - StripPrefix=1
      - name: Retry
        args:
          retries: 2
          methods: GET,POST
  - id: plain
    uri: lb://other
    predicates: [Path=/plain/**]
    filters: [StripPrefix=1]
  - id: bare
    uri: lb://two
    predicates: [Path=/bare/**]
    filters: [StripPrefix=1, Retry]
";
    let g = TestGateway::start(GatewayConfig::default(), routes).await;
    let bs = three(&g).await;
    let c = client();
    // SCG's default series (5xx): a 500 is tried on every instance, then answered.
    let r = c.get(g.url("/retry/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(hits(&bs), 3, "one attempt per instance");
    assert!(bs.iter().all(|b| b.count() == 1));
    // Without the filter only 502–504 are retried: a 500 is the service's answer.
    let r = c.get(g.url("/plain/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(hits(&bs), 4);
    // POST is listed, but a POST that reached a backend is never replayed.
    let r = c.post(g.url("/retry/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(hits(&bs), 5);
    // A status outside the series is answered at once.
    let r = c.get(g.url("/retry/status/404")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(hits(&bs), 6);
    let metrics = text(&c, g.url("/actuator/prometheus")).await;
    assert!(
        metrics.contains("keel_gateway_retries_total{route=\"retried\"} 2"),
        "{metrics}"
    );
    // Three retries allowed, two instances: once both have answered, the last answer itself is
    // passed on (not a gateway-made error), and no retry is counted for an instance that is not there.
    g.backends("two", &[&bs[0], &bs[1]]);
    let r = c.get(g.url("/bare/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body == "a 500" || body == "b 500", "{body}");
    assert_eq!(hits(&bs), 8);
    let metrics = text(&c, g.url("/actuator/prometheus")).await;
    assert!(
        metrics.contains("keel_gateway_retries_total{route=\"bare\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn retry_backoff_pauses_between_attempts_and_the_retry_timeout_stops_them() {
    let routes = "
spring.cloud.gateway.routes:
  - id: backoff
    uri: lb://svc
    predicates: [Path=/backoff/**]
    filters: [StripPrefix=1, 'Retry=2,INTERNAL_SERVER_ERROR,GET,150ms,1s,2']
  - id: bounded
    uri: lb://other
    predicates: [Path=/bounded/**]
    filters:
      - StripPrefix=1
      - name: Retry
        args:
          retries: 2
          backoff:
            firstBackoff: 150ms
          timeout: 100ms
";
    let g = TestGateway::start(GatewayConfig::default(), routes).await;
    let bs = three(&g).await;
    let c = client();
    let started = std::time::Instant::now();
    let r = c.get(g.url("/backoff/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(hits(&bs), 3);
    // 150 ms before the first retry, 300 ms before the second: never sooner.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    // The first pause alone would overrun the retry timeout, so no retry starts.
    let r = c.get(g.url("/bounded/status/500")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(hits(&bs), 4);
}

#[tokio::test]
async fn timeouts_are_retried_when_the_retry_filter_lists_timeout_exceptions() {
    let routes = "
spring.cloud.gateway.routes:
  - id: defaults
    uri: lb://svc
    predicates: [Path=/defaults/**]
    filters: [StripPrefix=1, Retry=1]
    metadata: {response-timeout: 200}
  - id: io-only
    uri: lb://other
    predicates: [Path=/io-only/**]
    filters:
      - StripPrefix=1
      - name: Retry
        args:
          retries: 1
          exceptions: java.io.IOException
    metadata: {response-timeout: 200}
";
    let g = TestGateway::start(GatewayConfig::default(), routes).await;
    let bs = three(&g).await;
    let c = client();
    // SCG's default exceptions include TimeoutException: the slow call is tried on a second instance.
    let r = c.get(g.url("/defaults/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(json(r).await["reason"], "timeout");
    assert_eq!(hits(&bs), 2);
    let r = c.get(g.url("/io-only/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(hits(&bs), 3);
}

#[tokio::test]
async fn a_retry_filter_with_a_misspelt_argument_is_refused_naming_it() {
    let g = TestGateway::start(GatewayConfig::default(), "").await;
    let (status, body) = validate(
        &g,
        r#"{"id":"r","uri":"lb://svc","predicates":["Path=/r/**"],
            "filters":[{"name":"Retry","args":{"retries":"2","backof.firstBackoff":"10ms"}}]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("unknown argument `backof.firstBackoff`"),
        "{body}"
    );
    // A fixed URI has no other instance to retry on: refused rather than silently never retried.
    let (status, body) = validate(
        &g,
        r#"{"id":"r","uri":"http://127.0.0.1:1","predicates":["Path=/r/**"],"filters":["Retry=2"]}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("needs an `lb://` route"), "{body}");
}
