//! Wrapping a component's router with the shared endpoints, and serving it until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tower::ServiceExt;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::h1;
use crate::metrics::{Recorder, prometheus, record};
use crate::spread::{Live, Seat, Spread};
use crate::{
    BoundListener, HealthRegistry, HealthReport, HttpLimits, HttpMetrics, MetricsRegistry, Shutdown,
};

/// What answers each request of a connection: the request and the peer it came from, to a response.
///
/// A [`Router`] is one (it sees the peer as axum's `ConnectInfo<SocketAddr>`). A component with a hot
/// path of its own — the gateway's proxy — implements it to reach that path without going through
/// axum's routing and middleware, and hands everything else to its router.
pub trait Handler: Clone + Send + Sync + 'static {
    fn handle(
        &self,
        peer: SocketAddr,
        request: hyper::Request<Body>,
    ) -> impl Future<Output = Response> + Send + use<Self>;

    /// [`Handler::handle`] for a caller that polls the future where it stands instead of moving it
    /// around (Keel's own HTTP/1.1 connection code). A handler whose `handle` boxes a large
    /// future (to spare hyper's dispatcher the moves) can skip the allocation here. Its caller
    /// writes [`RawHeaders`](crate::RawHeaders) found in the response's extensions; nothing
    /// else does.
    fn handle_in_place(
        &self,
        peer: SocketAddr,
        request: hyper::Request<Body>,
    ) -> impl Future<Output = Response> + Send + use<Self> {
        self.handle(peer, request)
    }

    /// Whether plain-TCP HTTP/1.1 connections are served by Keel's own connection code
    /// (`h1.rs`), which hands anything unusual to hyper. False: hyper serves every connection.
    fn own_http1(&self) -> bool {
        false
    }
}

impl Handler for Router {
    fn handle(
        &self,
        peer: SocketAddr,
        mut request: hyper::Request<Body>,
    ) -> impl Future<Output = Response> + Send + use<> {
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let router = self.clone();
        async move {
            match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// What every component of one process shares: the shutdown sequence, health, metrics and limits.
#[derive(Clone, Debug)]
pub struct Common {
    pub shutdown: Shutdown,
    pub health: HealthRegistry,
    pub metrics: MetricsRegistry,
    pub http_metrics: HttpMetrics,
    pub limits: HttpLimits,
}

#[derive(Clone)]
struct ActuatorState {
    health: HealthRegistry,
    shutdown: Shutdown,
}

/// Adds the actuator endpoints (`/actuator/health[/liveness|/readiness]`, `/actuator/prometheus`,
/// `/metrics`), body limits, request tracing and HTTP metrics around a component's router.
pub fn app(component: &'static str, router: Router, common: &Common) -> Router {
    let actuator = Router::new()
        .route("/actuator/health", get(health))
        .route("/actuator/health/liveness", get(liveness))
        .route("/actuator/health/readiness", get(readiness))
        .with_state(ActuatorState {
            health: common.health.clone(),
            shutdown: common.shutdown.clone(),
        })
        .merge(
            Router::new()
                .route("/metrics", get(prometheus))
                .route("/actuator/prometheus", get(prometheus))
                .with_state(common.metrics.clone()),
        );
    let recorder: Recorder = common.http_metrics.recorder(component);
    let mut router = router.merge(actuator);
    // `usize::MAX`: the component enforces its own body limits (the gateway's are per route).
    if common.limits.max_body_bytes != usize::MAX {
        router = router
            // Rejects a declared Content-Length over the limit before any byte is read…
            .layer(RequestBodyLimitLayer::new(common.limits.max_body_bytes))
            // …and makes axum's body extractors stop at the same limit for chunked bodies.
            .layer(DefaultBodyLimit::max(common.limits.max_body_bytes));
    }
    router
        .layer(axum::middleware::from_fn_with_state(recorder, record))
        .layer(TraceLayer::new_for_http())
}

fn report_response(report: HealthReport) -> Response {
    let code = if report.status.is_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(report)).into_response()
}

async fn health(State(s): State<ActuatorState>) -> Response {
    report_response(s.health.report(s.shutdown.is_ready()))
}

async fn liveness(State(s): State<ActuatorState>) -> Response {
    report_response(s.health.liveness())
}

async fn readiness(State(s): State<ActuatorState>) -> Response {
    report_response(s.health.readiness(s.shutdown.is_ready()))
}

/// Serves `router` on `listener` until the shutdown sequence stops listeners, then lets in-flight
/// requests finish until the drain deadline. HTTP/1.1 and HTTP/2 (prior knowledge) are both served.
pub async fn serve(listener: BoundListener, router: Router, common: &Common) {
    serve_with(listener, router, common, None, None).await;
}

/// [`serve`] for any [`Handler`], on the calling runtime, with TLS when `tls` is given: what each
/// of [`serve_workers`]' threads runs.
pub async fn serve_handler<H: Handler>(
    listener: BoundListener,
    handler: H,
    common: &Common,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    serve_with(listener, handler, common, tls, None).await;
}

/// [`serve`] over TLS: each connection is handshaken with `tls` first (in its own task, within the
/// header read timeout), and HTTP/2 is chosen by ALPN when the acceptor's config offers it.
/// Certificates may change underneath through the config's certificate resolver.
pub async fn serve_tls(
    listener: BoundListener,
    router: Router,
    common: &Common,
    tls: tokio_rustls::TlsAcceptor,
) {
    serve_with(listener, router, common, Some(tls), None).await;
}

/// [`serve`] (or [`serve_tls`]) on `workers` threads, each running its own single-threaded runtime
/// that accepts from the same socket. A connection, its requests and whatever they start (the
/// gateway's upstream connections, kept in per-thread pools) stay on one thread, as in nginx's
/// workers, so no request pays for waking another thread. A worker that accepts a connection while
/// it serves a few more than the least busy one hands it over (`spread.rs`), so a burst
/// of connections does not all land on whichever worker woke first. Returns when every worker has drained.
pub async fn serve_workers<H: Handler>(
    listener: BoundListener,
    handler: H,
    common: &Common,
    tls: Option<tokio_rustls::TlsAcceptor>,
    workers: usize,
) {
    let BoundListener {
        component,
        listener,
        local_addr,
    } = listener;
    let std_listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(component, error = %e, "cannot hand the listener to workers");
            return;
        }
    };
    let workers = workers.max(1);
    let mut seats = Spread::seats(workers).into_iter();
    let mut done = Vec::new();
    for n in 0..workers {
        let seat = seats.next();
        let socket = match std_listener.try_clone() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(component, error = %e, "cannot share the listener with a worker");
                break;
            }
        };
        let (handler, common, tls) = (handler.clone(), common.clone(), tls.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name(format!("{component}-worker-{n}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(component, error = %e, "worker runtime failed to start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => {
                            let bound = BoundListener {
                                component,
                                listener,
                                local_addr,
                            };
                            serve_with(bound, handler, &common, tls, seat).await;
                        }
                        Err(e) => tracing::error!(component, error = %e, "worker cannot listen"),
                    }
                });
                let _ = tx.send(());
            });
        match spawned {
            Ok(_) => done.push(rx),
            Err(e) => tracing::error!(component, error = %e, "cannot start a worker thread"),
        }
    }
    for rx in done {
        let _ = rx.await;
    }
}

/// `handler` as the hyper service of one connection from `peer`.
fn hyper_service<H: Handler>(
    handler: H,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let response = handler.handle(peer, request.map(Body::new));
        async move { Ok::<_, Infallible>(response.await) }
    })
}

async fn serve_with<H: Handler>(
    listener: BoundListener,
    handler: H,
    common: &Common,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut seat: Option<Seat>,
) {
    let BoundListener {
        component,
        listener,
        local_addr,
    } = listener;
    let shutdown = common.shutdown.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 when the request head outgrows this buffer; it refuses values under 8 KiB.
    builder
        .http1()
        .max_buf_size(common.limits.max_header_bytes.max(8192))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(common.limits.header_read_timeout);
    builder
        .http2()
        .max_header_list_size(common.limits.max_header_bytes.max(8192) as u32);
    let handshake_timeout = common.limits.header_read_timeout;
    let graceful = GracefulShutdown::new();
    let own_http1 = tls.is_none() && handler.own_http1();
    let builder = std::sync::Arc::new(builder);
    // Connections served by h1.rs (and hyper after a hand-off), awaited when draining.
    let tracker = tokio_util::task::TaskTracker::new();
    // This worker's own child of the shutdown token: idle connections wait on it without sharing a
    // lock with other workers.
    let stop = shutdown.stop_accepting_token();
    let h1_settings = h1::Settings {
        max_head: common.limits.max_header_bytes.max(8192),
        header_read_timeout: common.limits.header_read_timeout,
    };
    loop {
        // `live` keeps the connection in this worker's count (see `spread`) until its task ends.
        let (stream, peer, live): (_, _, Option<Live>) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match &seat {
                    Some(seat) => match seat.place(stream, peer) {
                        Some((stream, peer, live)) => (stream, peer, Some(live)),
                        None => continue,
                    },
                    None => (stream, peer, None),
                },
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spinning.
                    tracing::warn!(component, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some((stream, peer, live)) = async {
                match &mut seat {
                    Some(seat) => seat.handed().await,
                    None => std::future::pending().await,
                }
            } => (stream, peer, Some(live)),
            () = shutdown.stopped_accepting() => break,
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        if own_http1 {
            let (builder, watcher, stop, shutdown) = (
                builder.clone(),
                graceful.watcher(),
                stop.clone(),
                shutdown.clone(),
            );
            tracker.spawn(async move {
                let _live = live;
                let ready = || shutdown.is_ready();
                let end = h1::serve(stream, peer, &handler, h1_settings, &stop, ready).await;
                let h1::End::HandOff(stream, read) = end else {
                    return;
                };
                let service = hyper_service(handler, peer);
                let io = TokioIo::new(h1::Prefixed::new(read, stream));
                let conn = builder.serve_connection_with_upgrades(io, service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        }
        let service = hyper_service(handler, peer);
        let Some(tls) = &tls else {
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _live = live;
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        };
        let (tls, builder, watcher) = (tls.clone(), builder.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _live = live;
            let stream = match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracker.close();
    let deadline = shutdown.config().drain_timeout;
    let drained = async {
        graceful.shutdown().await;
        tracker.wait().await;
    };
    if tokio::time::timeout(deadline, drained).await.is_err() {
        tracing::warn!(component, addr = %local_addr, ?deadline, "drain deadline passed; closing remaining connections");
    }
}
