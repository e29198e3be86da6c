//! Applying a peer's replicated operation (one `replicationList` item) to this node.

use keel_eureka::{ReplicationAction, ReplicationItem, ReplicationItemResponse};

use super::{Origin, Registry, RenewOutcome};

impl Registry {
    /// Applies one replicated item exactly as the direct call with
    /// `x-netflix-discovery-replication: true` would, and answers as Eureka's batch endpoint
    /// does per item: 200, 404, or 409 with our copy. Replicated writes are not reported to
    /// the write observer, so they are never re-replicated.
    pub fn apply_replicated(&self, item: ReplicationItem) -> ReplicationItemResponse {
        let ok = |found: bool| ReplicationItemResponse {
            status_code: if found { 200 } else { 404 },
            response_entity: None,
        };
        let origin = Origin::Replicated;
        match item.action {
            ReplicationAction::Register => match item.instance_info {
                Some(info) => {
                    self.register(info, origin);
                    ok(true)
                }
                None => ReplicationItemResponse {
                    status_code: 400,
                    response_entity: None,
                },
            },
            ReplicationAction::Heartbeat => match self.renew(
                &item.app_name,
                &item.id,
                item.last_dirty_timestamp,
                item.overridden_status,
                origin,
            ) {
                RenewOutcome::Renewed => ok(true),
                RenewOutcome::NotFound => ok(false),
                RenewOutcome::Conflict(record) => ReplicationItemResponse {
                    status_code: 409,
                    response_entity: Some(record.info().clone()),
                },
            },
            ReplicationAction::Cancel => ok(self.cancel(&item.app_name, &item.id, origin)),
            ReplicationAction::StatusUpdate => match item.status {
                Some(status) => ok(self.set_status_override(
                    &item.app_name,
                    &item.id,
                    status,
                    item.last_dirty_timestamp,
                    origin,
                )),
                None => ReplicationItemResponse {
                    status_code: 400,
                    response_entity: None,
                },
            },
            ReplicationAction::DeleteStatusOverride => ok(self.delete_status_override(
                &item.app_name,
                &item.id,
                item.status,
                item.last_dirty_timestamp,
                origin,
            )),
        }
    }
}
