//! Eureka's client refresh, for nodes without a watch stream: `GET /apps/delta`, apply it,
//! compare `apps__hashcode`, and `GET /apps` when the delta fails or the hashes disagree.

use keel_eureka::{Applications, Format, decode_applications};

use super::DiscoveryError;
use super::updater::Updater;
use crate::RegistryUrl;

impl Updater {
    /// One refresh round against `url`.
    pub(super) async fn poll_once(&mut self, url: &RegistryUrl) -> Result<(), DiscoveryError> {
        if self.copy.is_empty() {
            return self.full_fetch(url).await;
        }
        let delta = match self.fetch(url, "apps/delta").await {
            Ok(delta) => delta,
            // Eureka answers 403 with deltas disabled; its client then fetches everything.
            Err(DiscoveryError::Status { .. }) => return self.full_fetch(url).await,
            Err(e) => return Err(e),
        };
        self.copy.apply_delta(&delta);
        let ours = self.copy.hashcode();
        if ours != delta.apps_hashcode {
            tracing::info!(ours = %ours, theirs = %delta.apps_hashcode, "reconcile hashcodes differ; fetching the full registry");
            return self.full_fetch(url).await;
        }
        self.publish();
        Ok(())
    }

    async fn full_fetch(&mut self, url: &RegistryUrl) -> Result<(), DiscoveryError> {
        let full = self.fetch(url, "apps/").await?;
        self.install_full(&full);
        Ok(())
    }

    async fn fetch(&self, url: &RegistryUrl, path: &str) -> Result<Applications, DiscoveryError> {
        let target = url.eureka(path);
        let name = target.to_string();
        let response = self
            .http
            .get(target)
            .header(http::header::ACCEPT, "application/json")
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|source| DiscoveryError::Http {
                url: name.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(DiscoveryError::Status { url: name, status });
        }
        let body = response
            .bytes()
            .await
            .map_err(|source| DiscoveryError::Http {
                url: name.clone(),
                source,
            })?;
        decode_applications(Format::Json, &body)
            .map_err(|source| DiscoveryError::Decode { url: name, source })
    }
}
