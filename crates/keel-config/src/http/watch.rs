//! `GET /keel/v1/watch?application=&profile=&label=`: an SSE stream that opens with a
//! `snapshot` event and sends a `change` event (id = commit) whenever the merged configuration
//! of that application changes. `Last-Event-ID` resumes without a repeated snapshot.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};

use crate::error::ServeError;
use crate::server::ConfigServer;
use crate::watch::{Published, WatchKey, WatcherGuard};

use super::Access;

pub(crate) async fn watch(
    State(server): State<ConfigServer>,
    uri: Uri,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let path = uri.path();
    if let Err(r) = super::auth::check(&server, Access::Read, &headers, path) {
        return r;
    }
    let query = uri.query().unwrap_or("");
    let Some(application) = super::query_param(query, "application").filter(|a| !a.is_empty())
    else {
        return super::serve_error(
            &server,
            &ServeError::BadRequest("the application parameter is required".into()),
            path,
        );
    };
    let key = WatchKey {
        application,
        profile: super::query_param(query, "profile")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".into()),
        label: super::query_param(query, "label").filter(|l| !l.is_empty()),
    };
    let mut rx = match server.inner.hub.subscribe(&server, &key).await {
        Ok(rx) => rx,
        Err(e) => return super::serve_error(&server, &e, path),
    };
    let current = rx.borrow_and_update().clone();
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let first = match last_id.as_deref() {
        None => Some(event("snapshot", &current)),
        Some(id) if id == current.id => None,
        Some(_) => Some(event("change", &current)),
    };
    let guard = server.inner.hub.register(
        std::sync::Arc::clone(&server.inner),
        key,
        peer,
        current.id.clone(),
        server.now(),
    );
    let token = server.inner.shutdown.streams_token();
    let stream = changes(rx, guard, token, first);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event(kind: &str, p: &Published) -> Event {
    Event::default().event(kind).id(p.id.clone()).data(&*p.body)
}

struct Watching {
    rx: tokio::sync::watch::Receiver<Published>,
    guard: WatcherGuard,
    token: tokio_util::sync::CancellationToken,
    first: Option<Event>,
}

fn changes(
    rx: tokio::sync::watch::Receiver<Published>,
    guard: WatcherGuard,
    token: tokio_util::sync::CancellationToken,
    first: Option<Event>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = Watching {
        rx,
        guard,
        token,
        first,
    };
    stream::unfold(state, |mut w| async move {
        if let Some(e) = w.first.take() {
            return Some((Ok(e), w));
        }
        tokio::select! {
            changed = w.rx.changed() => {
                changed.ok()?;
                let p = w.rx.borrow_and_update().clone();
                w.guard.hub.hub.set_version(w.guard.id, &p.id);
                Some((Ok(event("change", &p)), w))
            }
            // Shutdown ends every stream at once (step 3 of the sequence).
            () = w.token.cancelled() => None,
        }
    })
}
