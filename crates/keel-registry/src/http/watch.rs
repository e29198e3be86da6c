//! `GET /keel/v1/watch`: the registry as a Server-Sent Events stream.
//!
//! The protocol (pinned by snapshot tests; the SDK, gateway and dashboard all read it):
//! - `event: snapshot`, `id: <version>`, `data:` an Eureka `{"applications":{…}}` JSON
//!   document of the matching instances, with `versions__delta` = the version;
//! - `event: upsert`, `id: <version>`, `data:` an Eureka `{"instance":{…}}` document
//!   (`actionType` ADDED or MODIFIED);
//! - `event: delete`, `id: <version>`, `data:` the instance's last `{"instance":{…}}`
//!   document with `actionType` DELETED;
//! - a `:heartbeat` comment every 15 s.
//!
//! `?app=NAME` or `?vip=ADDR` filters. `Last-Event-ID` resumes after that version with the
//! missed events; if it is too old (or with `?vip=`) a fresh snapshot comes instead. If a
//! watcher falls behind the broadcast buffer it also gets a fresh snapshot.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use keel_eureka::{AppName, Format, InstanceId, write_instance_document};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::respond::{app_name, bad_request};
use crate::engine::{Change, ChangeEvent, Record, Registry, Snapshot, WatchStart};

#[derive(Debug, Deserialize)]
pub(crate) struct WatchQuery {
    app: Option<String>,
    vip: Option<String>,
}

#[derive(Clone, Debug)]
enum Filter {
    All,
    App(AppName),
    Vip(String),
}

impl Filter {
    fn matches(&self, record: &Record) -> bool {
        match self {
            Filter::All => true,
            Filter::App(app) => &record.info().app == app,
            Filter::Vip(vip) => record.info().has_vip(vip),
        }
    }

    /// Whether an instance can move in or out of the filter without being deleted; those
    /// filters need the stream to remember which instances it has sent.
    fn tracks_membership(&self) -> bool {
        matches!(self, Filter::Vip(_))
    }
}

pub(crate) async fn watch(
    State(registry): State<Registry>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
) -> Response {
    let filter = match (query.app, query.vip) {
        (Some(_), Some(_)) => {
            return bad_request("use either ?app= or ?vip=, not both").into_response();
        }
        (Some(app), None) => match app_name(&app) {
            Ok(app) => Filter::App(app),
            Err(rejection) => return rejection.into_response(),
        },
        (None, Some(vip)) => Filter::Vip(vip),
        (None, None) => Filter::All,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|_| !filter.tracks_membership());
    let heartbeat = registry.config().watch_heartbeat;
    let stream = stream(registry, filter, resume);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response()
}

struct WatchState {
    registry: Registry,
    filter: Filter,
    known: HashSet<(AppName, InstanceId)>,
    pending: VecDeque<Event>,
    events: tokio::sync::broadcast::Receiver<ChangeEvent>,
    end: CancellationToken,
    _gauge: GaugeGuard,
}

/// Counts the stream in `keel_registry_watchers` while it lives.
struct GaugeGuard(Registry);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.watchers_gauge().dec();
    }
}

fn stream(
    registry: Registry,
    filter: Filter,
    resume: Option<u64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let watch = registry.watch(resume);
    registry.watchers_gauge().inc();
    let mut state = WatchState {
        end: registry.streams_end(),
        _gauge: GaugeGuard(registry.clone()),
        registry,
        filter,
        known: HashSet::new(),
        pending: VecDeque::new(),
        events: watch.events,
    };
    match watch.start {
        WatchStart::Snapshot(snapshot) => state.push_snapshot(&snapshot),
        WatchStart::Replay(events) => {
            for event in events {
                state.push_change(&event);
            }
        }
    }
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            let received = tokio::select! {
                () = state.end.cancelled() => return None,
                received = state.events.recv() => received,
            };
            match received {
                Ok(event) => state.push_change(&event),
                Err(RecvError::Lagged(_)) => {
                    let snapshot = state.registry.snapshot();
                    state.push_snapshot(&snapshot);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

impl WatchState {
    fn push_snapshot(&mut self, snapshot: &Snapshot) {
        let filter = self.filter.clone();
        if filter.tracks_membership() {
            self.known = snapshot
                .instances()
                .filter(|r| filter.matches(r))
                .map(key)
                .collect();
        }
        let version = i64::try_from(snapshot.version).unwrap_or(i64::MAX);
        let body = snapshot.encode_filtered(Format::Json, version, |r| filter.matches(r));
        self.pending
            .push_back(event("snapshot", snapshot.version, &body));
    }

    fn push_change(&mut self, event: &ChangeEvent) {
        let record = event.change.record();
        let matches = self.filter.matches(record);
        let kind = match (&event.change, matches) {
            (Change::Upsert(_), true) => {
                if self.filter.tracks_membership() {
                    self.known.insert(key(record));
                }
                "upsert"
            }
            // An instance that left a VIP is gone for this watcher.
            (Change::Upsert(_), false) if self.known.remove(&key(record)) => "delete",
            (Change::Delete(_), _) if self.filter.tracks_membership() => {
                if !self.known.remove(&key(record)) {
                    return;
                }
                "delete"
            }
            (Change::Delete(_), true) => "delete",
            _ => return,
        };
        let mut body = Vec::new();
        write_instance_document(Format::Json, record.fragment(Format::Json), &mut body);
        self.pending
            .push_back(sse_event(kind, event.version, &body));
    }
}

fn key(record: &Arc<Record>) -> (AppName, InstanceId) {
    (record.info().app.clone(), record.info().instance_id.clone())
}

fn event(kind: &str, version: u64, body: &[u8]) -> Event {
    sse_event(kind, version, body)
}

fn sse_event(kind: &str, version: u64, body: &[u8]) -> Event {
    // Our JSON encoder escapes control characters, so the data is one line.
    Event::default()
        .event(kind)
        .id(version.to_string())
        .data(String::from_utf8_lossy(body))
}
