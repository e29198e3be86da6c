//! Upstream HTTP client: one pooled hyper client per worker thread, so keep-alive pools take no shared lock.

use std::cell::RefCell;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type Upstream = Client<HttpConnector, Body>;

thread_local! {
    static CLIENT: RefCell<Option<(Duration, Upstream)>> = const { RefCell::new(None) };
    static H2C: RefCell<Option<(Duration, Upstream)>> = const { RefCell::new(None) };
}

fn build(connect_timeout: Duration, h2c: bool) -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
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
pub fn upstream(connect_timeout: Duration, h2c: bool) -> Upstream {
    let cell = if h2c { &H2C } else { &CLIENT };
    cell.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((t, client)) if *t == connect_timeout => client.clone(),
            _ => {
                let client = build(connect_timeout, h2c);
                *c = Some((connect_timeout, client.clone()));
                client
            }
        }
    })
}
