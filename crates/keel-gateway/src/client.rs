//! Upstream HTTP client: one pooled hyper client per worker thread, so keep-alive pools take no shared lock.

use std::cell::RefCell;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type Upstream = Client<HttpConnector, Body>;

thread_local! {
    static CLIENT: RefCell<Option<(Timeouts, Upstream)>> = const { RefCell::new(None) };
    static H2C: RefCell<Option<(Timeouts, Upstream)>> = const { RefCell::new(None) };
}

/// The connect timeout and how long an unused connection is kept (`gateway.upstream-idle-timeout`,
/// the same as for the worker's own HTTP/1.1 connections).
pub type Timeouts = (Duration, Duration);

fn build((connect_timeout, idle_timeout): Timeouts, h2c: bool) -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle_timeout)
        .pool_max_idle_per_host(256);
    if h2c {
        // Prior knowledge: plain TCP spoken as HTTP/2 from the first byte (gRPC backends expect this).
        builder
            .http2_only(true)
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30));
    }
    builder.build(connector)
}

/// This thread's client (pools are per thread; a clone shares the thread's pool); `h2c` picks the
/// HTTP/2-prior-knowledge client, whose pool multiplexes streams over one connection per backend.
pub fn upstream(timeouts: Timeouts, h2c: bool) -> Upstream {
    let cell = if h2c { &H2C } else { &CLIENT };
    cell.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((t, client)) if *t == timeouts => client.clone(),
            _ => {
                let client = build(timeouts, h2c);
                *c = Some((timeouts, client.clone()));
                client
            }
        }
    })
}
