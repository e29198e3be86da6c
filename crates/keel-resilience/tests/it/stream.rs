//! `/hystrix.stream` over a real socket: parse the SSE events and check Hystrix's field set; pin the format.

use std::collections::BTreeSet;
use std::time::Duration;

use keel_resilience::hystrix::{command_json, hystrix_stream_router};
use keel_resilience::{CommandConfig, CommandRegistry, PoolConfig, WallClock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COMMAND_FIELDS: &[&str] = &[
    "type",
    "name",
    "group",
    "currentTime",
    "isCircuitBreakerOpen",
    "errorPercentage",
    "errorCount",
    "requestCount",
    "rollingCountBadRequests",
    "rollingCountCollapsedRequests",
    "rollingCountEmit",
    "rollingCountExceptionsThrown",
    "rollingCountFailure",
    "rollingCountFallbackEmit",
    "rollingCountFallbackFailure",
    "rollingCountFallbackMissing",
    "rollingCountFallbackRejection",
    "rollingCountFallbackSuccess",
    "rollingCountResponsesFromCache",
    "rollingCountSemaphoreRejected",
    "rollingCountShortCircuited",
    "rollingCountSuccess",
    "rollingCountThreadPoolRejected",
    "rollingCountTimeout",
    "currentConcurrentExecutionCount",
    "rollingMaxConcurrentExecutionCount",
    "latencyExecute_mean",
    "latencyExecute",
    "latencyTotal_mean",
    "latencyTotal",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_circuitBreakerForceOpen",
    "propertyValue_circuitBreakerForceClosed",
    "propertyValue_circuitBreakerEnabled",
    "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionTimeoutInMilliseconds",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_executionIsolationThreadPoolKeyOverride",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "propertyValue_requestCacheEnabled",
    "propertyValue_requestLogEnabled",
    "reportingHosts",
    "threadPool",
];

const POOL_FIELDS: &[&str] = &[
    "type",
    "name",
    "currentTime",
    "currentActiveCount",
    "currentCompletedTaskCount",
    "currentCorePoolSize",
    "currentLargestPoolSize",
    "currentMaximumPoolSize",
    "currentPoolSize",
    "currentQueueSize",
    "currentTaskCount",
    "rollingCountThreadsExecuted",
    "rollingMaxActiveThreads",
    "rollingCountCommandRejections",
    "propertyValue_queueSizeRejectionThreshold",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "reportingHosts",
];

const PERCENTILE_KEYS: &[&str] = &["0", "25", "50", "75", "90", "95", "99", "99.5", "100"];

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[derive(Debug)]
struct E;
impl std::fmt::Display for E {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("E")
    }
}

#[tokio::test]
async fn stream_over_a_socket_has_hystrix_fields() {
    let reg = CommandRegistry::with_wall_clock(WallClock::from_fn(|| 1_700_000_000_000));
    let cmd = reg.command(
        "GetUser",
        CommandConfig {
            group: Some("UserService".into()),
            pool: PoolConfig::default(),
            ..Default::default()
        },
    );
    cmd.call(async { Ok::<_, E>(1) }).queue().await.unwrap();
    cmd.call(async { Err::<u32, _>(E) })
        .fallback(|_| async { Ok(0) })
        .queue()
        .await
        .unwrap();
    cmd.call_blocking(|| Ok::<_, E>(2)).queue().await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        tokio::spawn(async move { axum::serve(listener, hystrix_stream_router(reg)).await });

    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /hystrix.stream?delay=100 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (mut command, mut pool) = (None, None);
    while command.is_none() || pool.is_none() {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("events before the deadline")
            .unwrap();
        assert!(n > 0, "stream closed early");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            match v["type"].as_str() {
                Some("HystrixCommand") => command = Some(v),
                Some("HystrixThreadPool") => pool = Some(v),
                other => panic!("unexpected event type {other:?}"),
            }
        }
    }
    let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/event-stream;charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache, no-store, max-age=0, must-revalidate"));

    let command = command.unwrap();
    assert_eq!(keys(&command), COMMAND_FIELDS.iter().copied().collect());
    for lat in ["latencyExecute", "latencyTotal"] {
        assert_eq!(
            keys(&command[lat]),
            PERCENTILE_KEYS.iter().copied().collect()
        );
    }
    assert_eq!(command["name"], "GetUser");
    assert_eq!(command["group"], "UserService");
    assert_eq!(command["threadPool"], "UserService");
    assert_eq!(command["currentTime"], 1_700_000_000_000u64);
    assert_eq!(command["rollingCountSuccess"], 2);
    assert_eq!(command["rollingCountFailure"], 1);
    assert_eq!(command["rollingCountFallbackSuccess"], 1);
    assert_eq!(command["requestCount"], 3);
    assert_eq!(command["errorPercentage"], 33);
    assert_eq!(
        command["propertyValue_executionIsolationStrategy"],
        "THREAD"
    );

    let pool = pool.unwrap();
    assert_eq!(keys(&pool), POOL_FIELDS.iter().copied().collect());
    assert_eq!(pool["name"], "UserService");
    assert_eq!(pool["currentCompletedTaskCount"], 1);
    assert_eq!(pool["currentCorePoolSize"], 10);
    server.abort();
}

#[tokio::test(start_paused = true)]
async fn command_event_wire_format() {
    let reg = CommandRegistry::new();
    let cmd = reg.command(
        "GetUser",
        CommandConfig {
            group: Some("UserService".into()),
            ..Default::default()
        },
    );
    for _ in 0..3 {
        cmd.call(async {
            tokio::time::sleep(Duration::from_millis(12)).await;
            Ok::<_, E>(1)
        })
        .queue()
        .await
        .unwrap();
    }
    cmd.call(async { Err::<u32, _>(E) })
        .queue()
        .await
        .unwrap_err();
    let json: serde_json::Value =
        serde_json::from_str(&command_json(&cmd, 1_700_000_000_000)).unwrap();
    insta::assert_json_snapshot!(json);
}
