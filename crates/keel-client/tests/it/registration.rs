//! The registration agent's rhythm under a paused clock, against a stand-in Eureka server that
//! records every call: register, a heartbeat per interval, re-register on 404, failover past a
//! dead node, and DOWN-then-cancel on deregistration; a node that stops answering mid-lease is
//! left within an interval and the next one kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use keel_client::{RegistrationAgent, RegistrationConfig};
use keel_eureka::{Format, decode_instance};
use tokio::time::Instant;

use crate::support::{dead_url, instance, urls};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    forget: AtomicBool,
    /// Takes calls and never answers, as a killed node's black-holed address does.
    hang: AtomicBool,
    /// When (paused clock) it answered a register or heartbeat.
    answered: Mutex<Vec<Instant>>,
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn answered(&self) -> Vec<Instant> {
        self.answered.lock().unwrap().clone()
    }

    async fn hang_if_told(&self) {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.answered.lock().unwrap().push(Instant::now());
    }
}

/// A stand-in node on 127.0.0.1:0 and its URL.
async fn serve_recorder() -> (Arc<Recorder>, String) {
    let recorder = Arc::new(Recorder::default());
    let router = axum::Router::new()
        .route("/eureka/apps/{app}", post(register))
        .route("/eureka/apps/{app}/{id}", put(heartbeat).delete(cancel))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (recorder, format!("http://{addr}/eureka/"))
}

async fn register(
    State(r): State<Arc<Recorder>>,
    Path(app): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let info = decode_instance(Format::Json, &body).unwrap();
    assert_eq!(info.app.as_str(), app);
    r.calls
        .lock()
        .unwrap()
        .push(format!("register {} {}", info.instance_id, info.status));
    r.hang_if_told().await;
    StatusCode::NO_CONTENT
}

async fn heartbeat(
    State(r): State<Arc<Recorder>>,
    Path((_, id)): Path<(String, String)>,
) -> StatusCode {
    r.calls.lock().unwrap().push(format!("heartbeat {id}"));
    r.hang_if_told().await;
    if r.forget.swap(false, Ordering::SeqCst) {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    }
}

async fn cancel(
    State(r): State<Arc<Recorder>>,
    Path((_, id)): Path<(String, String)>,
) -> StatusCode {
    r.calls.lock().unwrap().push(format!("cancel {id}"));
    StatusCode::OK
}

#[tokio::test(start_paused = true)]
async fn heartbeats_every_interval_reregisters_on_404_and_deregisters_down_then_cancel() {
    let recorder = Arc::new(Recorder::default());
    let router = axum::Router::new()
        .route("/eureka/apps/{app}", post(register))
        .route("/eureka/apps/{app}/{id}", put(heartbeat).delete(cancel))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let dead = dead_url().await;
    let mut instance = instance("pay", 7000);
    instance.renewal_interval = Duration::from_secs(30);
    let agent = RegistrationAgent::start(RegistrationConfig::new(
        urls(&[&dead, &format!("http://{addr}/eureka")]),
        instance,
    ))
    .unwrap();
    agent.registered().await;
    let id = "127.0.0.1:pay:7000";
    assert_eq!(recorder.calls(), [format!("register {id} UP")]);

    // One heartbeat per renewal interval, on the node that answered.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        recorder.calls(),
        [
            format!("register {id} UP"),
            format!("heartbeat {id}"),
            format!("heartbeat {id}")
        ]
    );
    assert_eq!(agent.status().heartbeats, 2);

    // The node forgot us: the next heartbeat's 404 triggers a registration at once.
    recorder.forget.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let calls = recorder.calls();
    assert_eq!(
        &calls[3..],
        [format!("heartbeat {id}"), format!("register {id} UP")]
    );
    assert_eq!(agent.status().registrations, 2);

    agent.deregister().await.unwrap();
    let calls = recorder.calls();
    assert_eq!(
        &calls[calls.len() - 2..],
        [format!("register {id} DOWN"), format!("cancel {id}")]
    );
    // No heartbeat after deregistration.
    let count = calls.len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(recorder.calls().len(), count);
}

#[tokio::test(start_paused = true)]
async fn registration_retries_with_backoff_until_a_node_answers() {
    let dead = dead_url().await;
    // Both nodes dead at first; the second comes up later on a known port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let later = listener.local_addr().unwrap();
    drop(listener);
    let agent = RegistrationAgent::start(RegistrationConfig::new(
        urls(&[&dead, &format!("http://{later}/eureka/")]),
        instance("pay", 7001),
    ))
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let failures = agent.status().failures;
    assert!(failures >= 1, "{:?}", agent.status());
    assert!(!agent.status().registered);

    let recorder = Arc::new(Recorder::default());
    let router = axum::Router::new()
        .route("/eureka/apps/{app}", post(register))
        .route("/eureka/apps/{app}/{id}", put(heartbeat).delete(cancel))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind(later).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    tokio::time::timeout(Duration::from_secs(60), agent.registered())
        .await
        .expect("registered once a node came up");
    assert_eq!(recorder.calls(), ["register 127.0.0.1:pay:7001 UP"]);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_stops_answering_is_left_within_an_interval_and_the_next_one_kept() {
    let (first, first_url) = serve_recorder().await;
    let (second, second_url) = serve_recorder().await;
    let mut instance = instance("pay", 7002);
    // The chaos deployment's rhythm: 1 s renewals, 3 s leases.
    instance.renewal_interval = Duration::from_secs(1);
    instance.lease_duration = Duration::from_secs(3);
    let lease = instance.lease_duration;
    let agent = RegistrationAgent::start(RegistrationConfig::new(
        urls(&[&first_url, &second_url]),
        instance,
    ))
    .unwrap();
    agent.registered().await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(first.calls().len() >= 3, "{:?}", first.calls());
    assert!(second.calls().is_empty(), "{:?}", second.calls());

    // The first node dies without a word: its address takes the call and never answers.
    first.hang.store(true, Ordering::SeqCst);
    let calls_before = first.calls().len();
    tokio::time::sleep(Duration::from_secs(20)).await;

    // One call was lost to the dead node; every later one stayed on the node that answered.
    assert_eq!(first.calls().len(), calls_before + 1, "{:?}", first.calls());
    let on_second = second.calls();
    assert!(on_second.len() >= 10, "{on_second:?}");
    let id = "127.0.0.1:pay:7002";
    assert!(
        on_second.iter().all(|c| *c == format!("heartbeat {id}")),
        "{on_second:?}"
    );
    assert_eq!(agent.status().registry, second_url);

    // The lease never lapsed: no gap between answered renewals (on either node) reached it.
    let mut answered = first.answered();
    answered.extend(second.answered());
    answered.sort();
    for pair in answered.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap < lease,
            "renewals {gap:?} apart; the lease is {lease:?}"
        );
    }
}
