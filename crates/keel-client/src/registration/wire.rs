//! Eureka's register, heartbeat and cancel calls, each tried on every registry node in turn.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};

use keel_eureka::{AppName, Format, InstanceId, InstanceStatus, encode_instance};

use super::RegistrationConfig;
use crate::registry_url::RegistryUrl;

/// A call failed on every node, or a node refused it outright.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{op}: every registry node failed: {}", .errors.join("; "))]
    AllNodesFailed {
        op: &'static str,
        errors: Vec<String>,
    },
    #[error("{op} refused by {url}: HTTP {status}: {body}")]
    Refused {
        op: &'static str,
        url: String,
        status: u16,
        body: String,
    },
}

pub(super) enum Heartbeat {
    Renewed,
    NotFound,
}

/// What one node said, once the transport worked.
enum Answer {
    /// 2xx (or an accepted non-2xx for this call).
    Done(u16),
    /// A 4xx the node means: do not try another node.
    Refused(u16, String),
}

pub(super) struct Wire {
    config: RegistrationConfig,
    http: reqwest::Client,
    /// `lastDirtyTimestamp`: changes only when what we register changes, so heartbeats match.
    dirty_ms: AtomicI64,
}

impl Wire {
    pub fn new(config: RegistrationConfig, http: reqwest::Client) -> Self {
        let now = now_ms(&config);
        Self {
            config,
            http,
            dirty_ms: AtomicI64::new(now),
        }
    }

    pub fn app(&self) -> &AppName {
        &self.config.instance.app
    }

    pub fn id(&self) -> &InstanceId {
        &self.config.instance.instance_id
    }

    /// `POST apps/{APP}`; returns the node that took it.
    pub async fn register(&self, status: InstanceStatus) -> Result<String, RegistrationError> {
        let dirty = if status == InstanceStatus::Up {
            self.dirty_ms.load(Ordering::Relaxed)
        } else {
            // A change of what we register: newer than anything the node holds.
            let now = now_ms(&self.config).max(self.dirty_ms.load(Ordering::Relaxed) + 1);
            self.dirty_ms.store(now, Ordering::Relaxed);
            now
        };
        let info = self.config.instance.to_info(status, dirty);
        let mut body = Vec::new();
        encode_instance(Format::Json, &info, &mut body);
        let body = bytes::Bytes::from(body);
        let app = self.app().as_str().to_owned();
        self.on_each_node("register", |url| {
            let request = self
                .http
                .post(url.eureka_segments(&["apps", &app]))
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(body.clone());
            async move { answer(request, &[]).await }
        })
        .await
        .map(|(node, _)| node)
    }

    /// `PUT apps/{APP}/{ID}?status=UP&lastDirtyTimestamp=…`, as the Java client sends it.
    pub async fn heartbeat(&self) -> Result<(Heartbeat, String), RegistrationError> {
        let dirty = self.dirty_ms.load(Ordering::Relaxed).to_string();
        let (node, status) = self
            .on_each_node("heartbeat", |url| {
                let mut target =
                    url.eureka_segments(&["apps", self.app().as_str(), self.id().as_str()]);
                target
                    .query_pairs_mut()
                    .append_pair("status", "UP")
                    .append_pair("lastDirtyTimestamp", &dirty);
                let request = self
                    .http
                    .put(target)
                    .header(http::header::ACCEPT, "application/json");
                async move { answer(request, &[404]).await }
            })
            .await?;
        let beat = if status == 404 {
            Heartbeat::NotFound
        } else {
            Heartbeat::Renewed
        };
        Ok((beat, node))
    }

    /// `DELETE apps/{APP}/{ID}`; a 404 means it is already gone, which is the goal.
    pub async fn cancel(&self) -> Result<String, RegistrationError> {
        self.on_each_node("cancel", |url| {
            let request = self.http.delete(url.eureka_segments(&[
                "apps",
                self.app().as_str(),
                self.id().as_str(),
            ]));
            async move { answer(request, &[404]).await }
        })
        .await
        .map(|(node, _)| node)
    }

    /// Tries `call` on each node, starting with the one in use, until one answers. A transport
    /// error, a 5xx or no answer within the attempt limit moves on; the node that answers
    /// becomes the one in use, so later calls start there instead of on the dead node.
    async fn on_each_node<F, Fut>(
        &self,
        op: &'static str,
        call: F,
    ) -> Result<(String, u16), RegistrationError>
    where
        F: Fn(&RegistryUrl) -> Fut,
        Fut: Future<Output = Result<Answer, String>>,
    {
        let registries = &self.config.registries;
        let limit = self.config.attempt_timeout();
        let mut errors = Vec::new();
        for (index, url) in registries.rotation() {
            match tokio::time::timeout(limit, call(url)).await {
                Ok(Ok(Answer::Done(status))) => {
                    registries.settle(index);
                    return Ok((url.to_string(), status));
                }
                Ok(Ok(Answer::Refused(status, body))) => {
                    return Err(RegistrationError::Refused {
                        op,
                        url: url.to_string(),
                        status,
                        body,
                    });
                }
                Ok(Err(e)) => errors.push(format!("{url}: {e}")),
                Err(_) => errors.push(format!("{url}: no answer within {limit:?}")),
            }
            registries.failed(index);
        }
        Err(RegistrationError::AllNodesFailed { op, errors })
    }
}

async fn answer(request: reqwest::RequestBuilder, accepted: &[u16]) -> Result<Answer, String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    if response.status().is_success() || accepted.contains(&status) {
        return Ok(Answer::Done(status));
    }
    if response.status().is_server_error() {
        return Err(format!("HTTP {status}"));
    }
    let body = response.text().await.unwrap_or_default();
    Ok(Answer::Refused(status, body))
}

fn now_ms(config: &RegistrationConfig) -> i64 {
    i64::try_from(config.clock.now_millis()).unwrap_or(i64::MAX)
}
