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
}

fn build(connect_timeout: Duration) -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(Duration::from_secs(60)));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// This thread's client (pools are per thread; a clone shares the thread's pool).
pub fn upstream(connect_timeout: Duration) -> Upstream {
    CLIENT.with(|c| {
        let mut c = c.borrow_mut();
        match &*c {
            Some((t, client)) if *t == connect_timeout => client.clone(),
            _ => {
                let client = build(connect_timeout);
                *c = Some((connect_timeout, client.clone()));
                client
            }
        }
    })
}
