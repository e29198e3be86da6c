//! One peer's HTTP/1.1 client: a single kept-alive connection over a [`PeerConnector`],
//! re-opened after any failure. Replication sends one batch at a time per peer, so one
//! connection is all it needs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::connector::PeerConnector;
use super::peer_url::PeerUrl;

/// Marks a replicated call (Eureka's header), so the receiver does not re-replicate it.
pub const REPLICATION_HEADER: &str = "x-netflix-discovery-replication";
/// Carries the sender's node id, so a node listed among its own peers detects itself.
pub const NODE_HEADER: &str = "x-keel-node";

/// The largest peer answer read (a full registry of about a million instances).
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("connect to {peer}: {source}")]
    Connect {
        peer: PeerUrl,
        source: std::io::Error,
    },
    #[error("{peer}: no answer within {timeout:?}")]
    Timeout { peer: PeerUrl, timeout: Duration },
    #[error("{peer}: {source}")]
    Http { peer: PeerUrl, source: hyper::Error },
    #[error("{peer}: reading the answer: {reason}")]
    Body { peer: PeerUrl, reason: String },
}

impl PeerError {
    /// Everything here is transient: the peer may be restarting or the network cut.
    pub fn is_retryable(&self) -> bool {
        true
    }
}

/// A peer's answer.
#[derive(Debug)]
pub struct PeerResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

pub(crate) struct PeerClient {
    peer: PeerUrl,
    connector: Arc<dyn PeerConnector>,
    node_id: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl PeerClient {
    pub fn new(
        peer: PeerUrl,
        connector: Arc<dyn PeerConnector>,
        node_id: String,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        Self {
            peer,
            connector,
            node_id,
            connect_timeout,
            request_timeout,
            conn: None,
        }
    }

    /// `POST {peer}peerreplication/batch/` with a `replicationList` body.
    pub async fn post_batch(&mut self, body: Bytes) -> Result<PeerResponse, PeerError> {
        self.request(Method::POST, "peerreplication/batch/", body)
            .await
    }

    /// `GET {peer}apps` as JSON: the peer's full registry.
    pub async fn get_apps(&mut self) -> Result<PeerResponse, PeerError> {
        self.request(Method::GET, "apps", Bytes::new()).await
    }

    async fn request(
        &mut self,
        method: Method,
        route: &str,
        body: Bytes,
    ) -> Result<PeerResponse, PeerError> {
        let timeout = self.request_timeout;
        let result = tokio::time::timeout(timeout, self.request_inner(method, route, body)).await;
        let result = result.unwrap_or_else(|_| {
            Err(PeerError::Timeout {
                peer: self.peer.clone(),
                timeout,
            })
        });
        // A timed-out exchange dropped its connection with the future (it may still carry
        // a late answer, so it must not be reused).
        result
    }

    async fn request_inner(
        &mut self,
        method: Method,
        route: &str,
        body: Bytes,
    ) -> Result<PeerResponse, PeerError> {
        let http_err = |peer: &PeerUrl| {
            let peer = peer.clone();
            move |source| PeerError::Http { peer, source }
        };
        // Taken out and put back only after a complete exchange, so a failure drops it.
        let mut conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        conn.ready().await.map_err(http_err(&self.peer))?;
        let mut req = Request::builder()
            .method(method)
            .uri(self.peer.path(route))
            .header(header::HOST, self.peer.authority())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .header(REPLICATION_HEADER, "true")
            .header(NODE_HEADER, &self.node_id);
        if let Some(auth) = self.peer.basic_auth() {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let req = req.body(Full::new(body)).map_err(|e| PeerError::Body {
            peer: self.peer.clone(),
            reason: e.to_string(),
        })?;
        let resp = conn.send_request(req).await.map_err(http_err(&self.peer))?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| PeerError::Body {
                peer: self.peer.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        self.conn = Some(conn);
        Ok(PeerResponse { status, body })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PeerError> {
        let connect_err = |source| PeerError::Connect {
            peer: self.peer.clone(),
            source,
        };
        let io = tokio::time::timeout(
            self.connect_timeout,
            self.connector.connect(self.peer.host(), self.peer.port()),
        )
        .await
        .map_err(|_| connect_err(std::io::ErrorKind::TimedOut.into()))?
        .map_err(connect_err)?;
        let (send, conn) =
            http1::handshake(TokioIo::new(io))
                .await
                .map_err(|source| PeerError::Http {
                    peer: self.peer.clone(),
                    source,
                })?;
        let peer = self.peer.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "peer connection closed");
            }
        });
        Ok(send)
    }
}
