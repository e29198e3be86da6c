//! Following `GET /keel/v1/watch`: `snapshot` replaces the copy, `upsert`/`delete` patch it.

use futures_util::StreamExt;
use keel_eureka::{Format, decode_applications, decode_instance};

use super::DiscoveryError;
use super::Feed;
use super::sse::{SseEvent, SseParser};
use super::updater::{Updater, WatchEnd};
use crate::RegistryUrl;

impl Updater {
    pub(super) async fn follow_watch(
        &mut self,
        node: usize,
        url: &RegistryUrl,
    ) -> Result<WatchEnd, DiscoveryError> {
        let target = url.watch().to_string();
        let http_err = |source| DiscoveryError::Http {
            url: target.clone(),
            source,
        };
        let mut request = self
            .http
            .get(url.watch().clone())
            .header(http::header::ACCEPT, "text/event-stream");
        if let Some((n, version)) = self.resume
            && n == node
        {
            request = request.header("last-event-id", version.to_string());
        }
        let response = tokio::time::timeout(self.config.request_timeout, request.send())
            .await
            .map_err(|_| DiscoveryError::Idle {
                url: target.clone(),
                idle: self.config.request_timeout,
            })?
            .map_err(http_err)?;
        match response.status().as_u16() {
            200 => {}
            404 => return Ok(WatchEnd::Unsupported),
            status => {
                return Err(DiscoveryError::Status {
                    url: target,
                    status,
                });
            }
        }
        self.config.registries.settle(node);
        self.set_status(|s| s.feed = Feed::Watch);
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        let mut events = 0;
        loop {
            let chunk = match tokio::time::timeout(self.config.idle_timeout, body.next()).await {
                Err(_) => {
                    return Err(DiscoveryError::Idle {
                        url: target,
                        idle: self.config.idle_timeout,
                    });
                }
                Ok(None) => return Ok(WatchEnd::Closed { events }),
                Ok(Some(chunk)) => chunk.map_err(http_err)?,
            };
            parser.push(&chunk);
            while let Some(event) = parser.next_event() {
                self.apply_event(node, &target, &event)?;
                events += 1;
            }
        }
    }

    fn apply_event(
        &mut self,
        node: usize,
        target: &str,
        event: &SseEvent,
    ) -> Result<(), DiscoveryError> {
        let decode_err = |source| DiscoveryError::Decode {
            url: target.to_owned(),
            source,
        };
        let data = event.data.as_bytes();
        match event.event.as_str() {
            "snapshot" => {
                let full = decode_applications(Format::Json, data).map_err(decode_err)?;
                self.install_full(&full);
            }
            "upsert" => {
                let info = decode_instance(Format::Json, data).map_err(decode_err)?;
                self.copy.upsert(&info);
                self.publish();
            }
            "delete" => {
                let info = decode_instance(Format::Json, data).map_err(decode_err)?;
                self.copy.remove(&info.app, &info.instance_id);
                self.publish();
            }
            // Unknown kinds are for newer clients.
            _ => {}
        }
        if let Some(version) = event.id.as_deref().and_then(|id| id.parse().ok()) {
            self.resume = Some((node, version));
            self.set_status(|s| s.version = Some(version));
        }
        Ok(())
    }
}
