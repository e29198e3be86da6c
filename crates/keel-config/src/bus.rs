//! The config bus: config servers sharing a NATS subject tell each other to fetch, so a webhook
//! that reaches any one of them reaches the watchers of all of them.
//!
//! Each message is a small JSON note (`origin`, `uri`); receivers fetch from their own remote
//! and notify their own watchers by diffing, exactly as after a local webhook. A server ignores
//! its own notes, and bus-triggered refreshes are never re-announced, so notes cannot loop.

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::server::ConfigServer;

const SUBJECT: &str = "keel.config.refresh";

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    origin: String,
    uri: String,
}

/// A connection to the bus.
#[derive(Debug)]
pub struct Bus {
    client: async_nats::Client,
    origin: String,
    uri: String,
}

impl Bus {
    /// Connects (retrying in the background if NATS is not up yet) and starts listening; the
    /// listener stops when shutdown begins.
    pub async fn connect(url: &str, server: ConfigServer, uri: String) -> Result<Self, String> {
        let client = async_nats::ConnectOptions::new()
            .name("keel-config")
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let mut subscriber = client.subscribe(SUBJECT).await.map_err(|e| e.to_string())?;
        let origin = origin_id();
        let me = origin.clone();
        let shutdown = server.inner.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = subscriber.next() => m,
                    () = shutdown.begun() => break,
                };
                let Some(message) = message else { break };
                match serde_json::from_slice::<Note>(&message.payload) {
                    Ok(note) if note.origin == me => {}
                    Ok(note) => {
                        tracing::info!(from = %note.origin, uri = %note.uri, "bus: refresh requested");
                        server.trigger_refresh();
                    }
                    Err(e) => tracing::debug!(error = %e, "bus: ignoring a malformed note"),
                }
            }
        });
        tracing::info!(url, origin = %origin, "config bus connected");
        Ok(Self {
            client,
            origin,
            uri,
        })
    }

    /// Tells the other servers to fetch. Failures are logged: their timers catch up.
    pub async fn announce(&self) {
        let note = Note {
            origin: self.origin.clone(),
            uri: self.uri.clone(),
        };
        let payload = serde_json::to_vec(&note).unwrap_or_default();
        let sent = async {
            self.client.publish(SUBJECT, payload.into()).await?;
            self.client.flush().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        if let Err(e) = sent.await {
            tracing::warn!(error = %e, "bus: could not announce a refresh");
        }
    }
}

/// A per-process id, unique enough to recognise our own notes.
fn origin_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    format!("{}-{:016x}", std::process::id(), h.finish())
}
