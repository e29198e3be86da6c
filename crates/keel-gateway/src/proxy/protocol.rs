//! Hop-by-hop headers that must still cross the gateway — `Upgrade` (WebSocket, HTTP/1.1 only) and
//! `TE: trailers` (gRPC) — and splicing an upgraded client connection to the backend's.

use axum::body::Body;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// What the request asked for that the hop-by-hop strip would otherwise remove.
#[derive(Debug, Default)]
pub struct Carried {
    upgrade: Option<HeaderValue>,
    te_trailers: bool,
}

fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl Carried {
    /// Reads the request's headers before they are stripped.
    pub fn take(headers: &HeaderMap, version: Version) -> Carried {
        let upgrade =
            if version == Version::HTTP_11 && lists(headers, header::CONNECTION, "upgrade") {
                headers.get(header::UPGRADE).cloned()
            } else {
                None
            };
        Carried {
            upgrade,
            te_trailers: lists(headers, header::TE, "trailers"),
        }
    }

    pub fn is_upgrade(&self) -> bool {
        self.upgrade.is_some()
    }

    /// Puts back what the upstream request needs.
    pub fn restore(&self, headers: &mut HeaderMap) {
        if let Some(u) = &self.upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, u.clone());
        }
        if self.te_trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// Completes a backend's `101 Switching Protocols`: splices the client's upgraded connection to the
/// backend's in a task of its own, and returns the `Upgrade` value to answer with. `None` when either
/// side cannot be upgraded (the backend switched without being asked).
pub fn switch(resp: &mut Response<Body>, client: Option<OnUpgrade>) -> Option<HeaderValue> {
    let protocol = resp.headers().get(header::UPGRADE).cloned()?;
    let client = client?;
    let upstream = resp.extensions_mut().remove::<OnUpgrade>()?;
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (c, u) => {
                tracing::debug!(client = ?c.err(), upstream = ?u.err(), "upgrade failed");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
    Some(protocol)
}

/// Restores the response's upgrade headers after the hop-by-hop strip.
pub fn answer_switch(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}
