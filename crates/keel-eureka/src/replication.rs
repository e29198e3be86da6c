//! Peer replication batches: `POST /peerreplication/batch/` (`replicationList` / `responseList`, JSON only).

use serde::Deserialize;

use crate::error::DecodeError;
use crate::json::{encode as json, lenient};
use crate::model::InstanceInfo;
use crate::name::{AppName, InstanceId};
use crate::status::InstanceStatus;
use crate::wire::InstanceWire;

/// What a replicated item asks the peer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicationAction {
    Heartbeat,
    Register,
    Cancel,
    StatusUpdate,
    DeleteStatusOverride,
}

impl ReplicationAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Heartbeat => "Heartbeat",
            Self::Register => "Register",
            Self::Cancel => "Cancel",
            Self::StatusUpdate => "StatusUpdate",
            Self::DeleteStatusOverride => "DeleteStatusOverride",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Heartbeat,
            Self::Register,
            Self::Cancel,
            Self::StatusUpdate,
            Self::DeleteStatusOverride,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

/// One entry of `replicationList`. `status` and `last_dirty_timestamp` are the sender's
/// registry copy; `overridden_status` is sent only when an override exists;
/// `instance_info` only for `Register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationItem {
    pub app_name: AppName,
    pub id: InstanceId,
    pub last_dirty_timestamp: Option<i64>,
    pub overridden_status: Option<InstanceStatus>,
    pub status: Option<InstanceStatus>,
    pub instance_info: Option<InstanceInfo>,
    pub action: ReplicationAction,
}

/// One entry of `responseList`: the HTTP status the item would have got as a direct
/// call, plus the receiver's copy of the instance on a 409 conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationItemResponse {
    pub status_code: u16,
    pub response_entity: Option<InstanceInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListWire {
    #[serde(default, deserialize_with = "lenient::one_or_many")]
    replication_list: Vec<ItemWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemWire {
    #[serde(default, deserialize_with = "lenient::string")]
    app_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    last_dirty_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    overridden_status: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    status: Option<String>,
    #[serde(default)]
    instance_info: Option<InstanceWire>,
    #[serde(default, deserialize_with = "lenient::string")]
    action: Option<String>,
}

impl ItemWire {
    fn into_model(self, path: &str) -> Result<ReplicationItem, DecodeError> {
        let action_raw = self
            .action
            .ok_or_else(|| DecodeError::missing(path, "action"))?;
        let action = ReplicationAction::parse(&action_raw).ok_or_else(|| {
            DecodeError::invalid(path, "action", format!("unknown action {action_raw:?}"))
        })?;
        let instance_info = match self.instance_info {
            Some(w) => Some(
                w.unwrap_root()
                    .into_model(&crate::error::join(path, "instanceInfo"))?,
            ),
            None => None,
        };
        let app_name = match self.app_name.filter(|s| !s.is_empty()) {
            Some(a) => AppName::parse(&a).map_err(|e| DecodeError::name(path, "appName", e))?,
            None => match &instance_info {
                Some(i) => i.app.clone(),
                None => return Err(DecodeError::missing(path, "appName")),
            },
        };
        let id = match self.id.filter(|s| !s.is_empty()) {
            Some(i) => InstanceId::parse(&i).map_err(|e| DecodeError::name(path, "id", e))?,
            None => match &instance_info {
                Some(i) => i.instance_id.clone(),
                None => return Err(DecodeError::missing(path, "id")),
            },
        };
        Ok(ReplicationItem {
            app_name,
            id,
            last_dirty_timestamp: self.last_dirty_timestamp,
            overridden_status: self
                .overridden_status
                .map(|s| InstanceStatus::parse_lenient(&s)),
            status: self.status.map(|s| InstanceStatus::parse_lenient(&s)),
            instance_info,
            action,
        })
    }
}

/// Decodes a `{"replicationList":[...]}` batch. A malformed document is an error; each
/// well-formed item is converted on its own so one bad item (say, an id we refuse) can
/// be answered with its own status code without failing the batch.
pub fn decode_replication_list(
    body: &[u8],
) -> Result<Vec<Result<ReplicationItem, DecodeError>>, DecodeError> {
    let wire: ListWire = serde_json::from_slice(body)?;
    Ok(wire
        .replication_list
        .into_iter()
        .enumerate()
        .map(|(i, w)| w.into_model(&format!("replicationList[{i}]")))
        .collect())
}

/// Appends `{"replicationList":[...]}`.
pub fn encode_replication_list(items: &[ReplicationItem], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"replicationList\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"appName\":");
        json::string(out, item.app_name.as_str());
        out.extend_from_slice(b",\"id\":");
        json::string(out, item.id.as_str());
        if let Some(ts) = item.last_dirty_timestamp {
            out.extend_from_slice(b",\"lastDirtyTimestamp\":");
            json::int(out, ts);
        }
        if let Some(s) = item.overridden_status {
            out.extend_from_slice(b",\"overriddenStatus\":");
            json::string(out, s.as_str());
        }
        if let Some(s) = item.status {
            out.extend_from_slice(b",\"status\":");
            json::string(out, s.as_str());
        }
        if let Some(info) = &item.instance_info {
            out.extend_from_slice(b",\"instanceInfo\":");
            json::instance(out, info);
        }
        out.extend_from_slice(b",\"action\":");
        json::string(out, item.action.as_str());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseListWire {
    #[serde(default, deserialize_with = "lenient::one_or_many")]
    response_list: Vec<ResponseWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseWire {
    #[serde(default, deserialize_with = "lenient::int")]
    status_code: Option<i64>,
    #[serde(default)]
    response_entity: Option<InstanceWire>,
}

/// Decodes a `{"responseList":[...]}` answer to a batch, in item order.
pub fn decode_replication_response(
    body: &[u8],
) -> Result<Vec<ReplicationItemResponse>, DecodeError> {
    let wire: ResponseListWire = serde_json::from_slice(body)?;
    wire.response_list
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            let path = format!("responseList[{i}]");
            let code = w
                .status_code
                .ok_or_else(|| DecodeError::missing(&path, "statusCode"))?;
            let status_code = u16::try_from(code)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    DecodeError::invalid(
                        &path,
                        "statusCode",
                        format!("{code} is not an HTTP status"),
                    )
                })?;
            let response_entity = match w.response_entity {
                Some(e) => Some(
                    e.unwrap_root()
                        .into_model(&crate::error::join(&path, "responseEntity"))?,
                ),
                None => None,
            };
            Ok(ReplicationItemResponse {
                status_code,
                response_entity,
            })
        })
        .collect()
}

/// Appends `{"responseList":[...]}`.
pub fn encode_replication_response(items: &[ReplicationItemResponse], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"responseList\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"statusCode\":");
        json::int(out, i64::from(item.status_code));
        if let Some(info) = &item.response_entity {
            out.extend_from_slice(b",\"responseEntity\":");
            json::instance(out, info);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
}
