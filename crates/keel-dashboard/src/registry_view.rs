//! The dashboard's view of the registry: applications, instances with their leases,
//! self-preservation and peers; and the one write it makes, the status override.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Method;
use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus};
use serde::{Deserialize, Serialize};

use crate::transport::{SourceError, Transport};

/// One instance as people read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub app: String,
    pub id: String,
    pub host: String,
    pub ip: String,
    pub port: u16,
    pub status: String,
    /// `UNKNOWN` when no override is set.
    pub overridden_status: String,
    pub zone: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub home_page_url: Option<String>,
    pub lease: LeaseView,
}

/// Lease timing in epoch milliseconds. `last_renewal`/`expires_at` are known only in-process
/// (Eureka's wire format does not carry them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    pub duration_secs: u32,
    pub renewal_interval_secs: u32,
    pub registered_at: i64,
    pub last_renewal: Option<i64>,
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppView {
    pub name: String,
    pub instances: Vec<InstanceView>,
}

/// A peer registry node and how replication to it goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub url: String,
    /// `ok`, `failing` or `self`.
    pub state: String,
    pub queued: u64,
    pub sent: u64,
    pub failed_batches: u64,
    pub dropped: u64,
    pub last_error: Option<String>,
}

/// Everything the registry view shows, at `now` (epoch ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryState {
    pub now: i64,
    pub apps: Vec<AppView>,
    /// The registry's `selfPreservation` health details (`enabled`, `engaged`, rates…).
    pub self_preservation: serde_json::Value,
    pub peers: Vec<PeerView>,
}

/// Where the dashboard and `keel ctl` read the registry.
pub trait RegistryView: Send + Sync {
    fn state(&self) -> BoxFuture<'_, Result<RegistryState, SourceError>>;
    /// Overrides an instance's status (`OUT_OF_SERVICE`); `UP` removes the override.
    fn set_status<'a>(
        &'a self,
        app: &'a AppName,
        id: &'a InstanceId,
        status: InstanceStatus,
    ) -> BoxFuture<'a, Result<(), SourceError>>;
}

fn instance_view(info: &InstanceInfo) -> InstanceView {
    InstanceView {
        app: info.app.to_string(),
        id: info.instance_id.to_string(),
        host: info.host_name.clone(),
        ip: info.ip_addr.clone(),
        port: info.port.port,
        status: info.status.to_string(),
        overridden_status: info.overridden_status.to_string(),
        zone: info.metadata.get("zone").cloned(),
        metadata: info.metadata.clone().into(),
        home_page_url: info.home_page_url.clone(),
        lease: LeaseView {
            duration_secs: info.lease_info.duration_in_secs,
            renewal_interval_secs: info.lease_info.renewal_interval_in_secs,
            registered_at: info.lease_info.registration_timestamp,
            last_renewal: None,
            expires_at: None,
        },
    }
}

/// The registry of this process.
#[derive(Clone, Debug)]
pub struct LocalRegistry {
    registry: keel_registry::Registry,
    cluster: Option<keel_registry::Cluster>,
}

impl LocalRegistry {
    pub fn new(registry: keel_registry::Registry, cluster: Option<keel_registry::Cluster>) -> Self {
        Self { registry, cluster }
    }
}

impl RegistryView for LocalRegistry {
    fn state(&self) -> BoxFuture<'_, Result<RegistryState, SourceError>> {
        let snapshot = self.registry.snapshot();
        let apps = snapshot
            .apps
            .iter()
            .map(|app| AppView {
                name: app.name.to_string(),
                instances: app
                    .instances
                    .iter()
                    .map(|record| {
                        let info = record.info();
                        let mut view = instance_view(info);
                        if let Some(t) = self.registry.lease_times(&info.app, &info.instance_id) {
                            view.lease.last_renewal = Some(t.last_renewal_millis);
                            view.lease.expires_at = Some(t.expires_at_millis);
                        }
                        view
                    })
                    .collect(),
            })
            .collect();
        let peers = self
            .cluster
            .as_ref()
            .map(|c| {
                c.peers()
                    .into_iter()
                    .map(|p| PeerView {
                        url: p.url,
                        state: p.state.to_owned(),
                        queued: p.queued as u64,
                        sent: p.sent,
                        failed_batches: p.failed_batches,
                        dropped: p.dropped,
                        last_error: p.last_error,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let state = RegistryState {
            now: self.registry.now_millis(),
            apps,
            self_preservation: self.registry.self_preservation().to_json(),
            peers,
        };
        Box::pin(async move { Ok(state) })
    }

    fn set_status<'a>(
        &'a self,
        app: &'a AppName,
        id: &'a InstanceId,
        status: InstanceStatus,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        let origin = keel_registry::Origin::Client;
        let found = if status == InstanceStatus::Up {
            self.registry
                .delete_status_override(app, id, Some(InstanceStatus::Up), None, origin)
        } else {
            self.registry
                .set_status_override(app, id, status, None, origin)
        };
        let result = if found {
            Ok(())
        } else {
            Err(SourceError::NotFound {
                url: format!("in-process registry /apps/{app}/{id}"),
                message: format!("no instance {id} in {app}"),
            })
        };
        Box::pin(async move { result })
    }
}

/// A registry over Eureka's REST API (`/eureka/apps`, the status override) and its health
/// details (self-preservation, peers).
#[derive(Clone, Debug)]
pub struct HttpRegistry {
    transport: Transport,
}

impl HttpRegistry {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }
}

impl RegistryView for HttpRegistry {
    fn state(&self) -> BoxFuture<'_, Result<RegistryState, SourceError>> {
        Box::pin(async move {
            let answer = self.transport.get("/eureka/apps").await?.success()?;
            let url = answer.url.clone();
            let apps = keel_eureka::decode_applications(keel_eureka::Format::Json, &answer.body)
                .map_err(|e| SourceError::BadBody {
                    url,
                    reason: e.to_string(),
                })?;
            let mut apps: Vec<AppView> = apps
                .applications
                .iter()
                .map(|a| {
                    let mut instances: Vec<InstanceView> =
                        a.instances.iter().map(instance_view).collect();
                    instances.sort_by(|x, y| x.id.cmp(&y.id));
                    AppView {
                        name: a.name.to_string(),
                        instances,
                    }
                })
                .collect();
            apps.sort_by(|x, y| x.name.cmp(&y.name));
            // Health may be DOWN (503) while still carrying details, so its status is not checked.
            let health: serde_json::Value = self
                .transport
                .get("/actuator/health")
                .await
                .ok()
                .and_then(|a| serde_json::from_slice(&a.body).ok())
                .unwrap_or_default();
            let components = &health["components"];
            let peers = components["cluster"]["details"]["peers"]
                .as_array()
                .map(|peers| {
                    peers
                        .iter()
                        .map(|p| PeerView {
                            url: p["url"].as_str().unwrap_or_default().to_owned(),
                            state: p["state"].as_str().unwrap_or("unknown").to_owned(),
                            queued: p["queued"].as_u64().unwrap_or(0),
                            sent: p["sent"].as_u64().unwrap_or(0),
                            failed_batches: p["failedBatches"].as_u64().unwrap_or(0),
                            dropped: p["dropped"].as_u64().unwrap_or(0),
                            last_error: p["lastError"].as_str().map(str::to_owned),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(RegistryState {
                now: now_millis(),
                apps,
                self_preservation: components["registry"]["details"]["selfPreservation"].clone(),
                peers,
            })
        })
    }

    fn set_status<'a>(
        &'a self,
        app: &'a AppName,
        id: &'a InstanceId,
        status: InstanceStatus,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let path = format!("/eureka/apps/{app}/{id}/status?value={status}");
            // Back in service removes the override, as Eureka's own tooling does.
            let method = if status == InstanceStatus::Up {
                Method::DELETE
            } else {
                Method::PUT
            };
            self.transport
                .send(method, &path, None, Bytes::new())
                .await?
                .success()
                .map_err(|e| match e {
                    SourceError::NotFound { url, .. } => SourceError::NotFound {
                        url,
                        message: format!("no instance {id} in {app}"),
                    },
                    e => e,
                })?;
            Ok(())
        })
    }
}

/// Wall-clock now for remote views (the registry's own clock is not on the wire).
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
