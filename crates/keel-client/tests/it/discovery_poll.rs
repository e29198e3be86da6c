//! RegistryDiscovery against a server without `/keel/v1/watch` (a stand-in for a Java Eureka
//! server, which is not our component): delta polling, hashcode reconciliation, full fetches,
//! and a restarted (empty) registry that must not wipe the cache.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use keel_client::discovery::{DiscoveryConfig, Feed};
use keel_client::{Discovery, RegistryDiscovery};
use keel_eureka::{
    ActionType, Application, Applications, Format, InstanceId, InstanceInfo, encode_applications,
};
use tokio_util::sync::CancellationToken;

use crate::support::{app, eventually, urls};

#[derive(Default)]
struct Eureka {
    full: Mutex<Vec<InstanceInfo>>,
    delta: Mutex<Vec<InstanceInfo>>,
    full_fetches: AtomicU64,
    delta_fetches: AtomicU64,
}

fn document(instances: &[InstanceInfo], hashcode: String) -> axum::response::Response {
    let mut apps = Applications {
        versions_delta: 1,
        apps_hashcode: hashcode,
        applications: Vec::new(),
    };
    for i in instances {
        match apps.applications.iter_mut().find(|a| a.name == i.app) {
            Some(a) => a.instances.push(i.clone()),
            None => apps.applications.push(Application {
                name: i.app.clone(),
                instances: vec![i.clone()],
            }),
        }
    }
    let mut body = Vec::new();
    encode_applications(Format::Json, &apps, &mut body);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn hash(list: &[InstanceInfo]) -> String {
    list.iter()
        .map(|i| i.status)
        .collect::<keel_eureka::StatusCounts>()
        .hashcode()
}

async fn full(State(s): State<Arc<Eureka>>) -> impl IntoResponse {
    s.full_fetches.fetch_add(1, Ordering::SeqCst);
    let full = s.full.lock().unwrap().clone();
    document(&full, hash(&full))
}

async fn delta(State(s): State<Arc<Eureka>>) -> impl IntoResponse {
    s.delta_fetches.fetch_add(1, Ordering::SeqCst);
    let full = s.full.lock().unwrap().clone();
    let delta = s.delta.lock().unwrap().clone();
    // As Eureka does: the delta carries the hash of the *full* registry.
    document(&delta, hash(&full))
}

async fn serve(state: Arc<Eureka>) -> (SocketAddr, CancellationToken) {
    let router = axum::Router::new()
        .route("/eureka/apps/", get(full))
        .route("/eureka/apps/delta", get(delta))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        // Graceful, so idle keep-alive connections close too: the node is really gone.
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await
            .unwrap();
    });
    (addr, stop)
}

fn info(id: &str, action: Option<ActionType>) -> InstanceInfo {
    let mut i = InstanceInfo::new(
        app("stock"),
        InstanceId::parse(id).unwrap(),
        "127.0.0.1",
        "127.0.0.1",
    );
    i.action_type = action;
    i
}

#[tokio::test]
async fn without_a_watch_stream_it_polls_deltas_and_reconciles() {
    let state = Arc::new(Eureka::default());
    state
        .full
        .lock()
        .unwrap()
        .push(info("s1", Some(ActionType::Added)));
    let (addr, server) = serve(state.clone()).await;
    let mut config = DiscoveryConfig::new(urls(&[&format!("http://{addr}/eureka/")]));
    config.poll_interval = Duration::from_millis(50);
    let discovery = RegistryDiscovery::start(config).unwrap();
    let stock = app("stock");
    let ids = |d: &RegistryDiscovery| -> Vec<String> {
        d.instances(&stock)
            .iter()
            .map(|i| i.id.to_string())
            .collect()
    };

    discovery.ready().await;
    assert_eq!(discovery.status().feed, Feed::Poll);
    assert_eq!(ids(&discovery), ["s1"]);
    assert_eq!(state.full_fetches.load(Ordering::SeqCst), 1);

    // A registration arrives through the delta; the hashes agree, so no full fetch.
    let s2 = info("s2", Some(ActionType::Added));
    state.full.lock().unwrap().push(s2.clone());
    *state.delta.lock().unwrap() = vec![s2];
    eventually("s2 through the delta", || ids(&discovery) == ["s1", "s2"]).await;
    let deltas = state.delta_fetches.load(Ordering::SeqCst);
    eventually("more delta polls", || {
        state.delta_fetches.load(Ordering::SeqCst) > deltas + 2
    })
    .await;
    assert_eq!(state.full_fetches.load(Ordering::SeqCst), 1);

    // s1 leaves, but its DELETED entry is missing from the delta: the hashes disagree
    // (UP_1_ on the server, UP_2_ here) and a full fetch repairs the copy.
    state
        .full
        .lock()
        .unwrap()
        .retain(|i| i.instance_id.as_str() != "s1");
    eventually("s1 gone after reconciliation", || ids(&discovery) == ["s2"]).await;
    assert!(state.full_fetches.load(Ordering::SeqCst) >= 2);

    // A registry that comes back empty (restarted) does not wipe the cache within the grace.
    state.full.lock().unwrap().clear();
    state.delta.lock().unwrap().clear();
    let fulls = state.full_fetches.load(Ordering::SeqCst);
    eventually("full fetches of the empty registry", || {
        state.full_fetches.load(Ordering::SeqCst) > fulls + 2
    })
    .await;
    assert_eq!(ids(&discovery), ["s2"]);

    // And an unreachable one leaves it too.
    server.cancel();
    eventually("discovery to give the node up", || {
        discovery.status().feed == Feed::Disconnected
    })
    .await;
    assert_eq!(ids(&discovery), ["s2"]);
}
