//! The loosely typed shape both decoders produce, and its conversion into the model.
//!
//! JSON (via serde) and XML (via a small tree) both fill these structs; one conversion
//! then applies Eureka's defaults and checks names, so the two formats cannot drift.

use serde::Deserialize;

use crate::error::DecodeError;
use crate::json::lenient;
use crate::model::{Application, Applications, DataCenterInfo, InstanceInfo, LeaseInfo, Port};
use crate::name::{AppName, InstanceId};
use crate::status::{ActionType, InstanceStatus};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceWire {
    /// Set when a JSON body is wrapped as `{"instance":{...}}` (the normal case).
    #[serde(default)]
    pub instance: Option<Box<InstanceWire>>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub instance_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub host_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub app: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub app_group_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub ip_addr: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    /// XML and py-eureka-client spell it lower-case; Netflix/eureka#1051.
    #[serde(
        default,
        rename = "overriddenstatus",
        deserialize_with = "lenient::string"
    )]
    pub overriddenstatus: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub overridden_status: Option<String>,
    #[serde(default)]
    pub port: Option<PortWire>,
    #[serde(default)]
    pub secure_port: Option<PortWire>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub country_id: Option<i64>,
    #[serde(default)]
    pub data_center_info: Option<DataCenterWire>,
    #[serde(default)]
    pub lease_info: Option<LeaseWire>,
    #[serde(default)]
    pub metadata: Option<lenient::MetadataWire>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub home_page_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status_page_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub health_check_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub secure_health_check_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub vip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub secure_vip_address: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub is_coordinating_discovery_server: Option<bool>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub last_updated_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub last_dirty_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub action_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub asg_name: Option<String>,
}

/// `{"$":8080,"@enabled":"true"}`, or a bare number.
#[derive(Debug, Default)]
pub(crate) struct PortWire {
    pub port: Option<i64>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DataCenterWire {
    #[serde(default, rename = "@class", deserialize_with = "lenient::string")]
    pub class: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: Option<lenient::MetadataWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LeaseWire {
    #[serde(default, deserialize_with = "lenient::int")]
    pub renewal_interval_in_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub duration_in_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub registration_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub last_renewal_timestamp: Option<i64>,
    /// Legacy spelling of `lastRenewalTimestamp`.
    #[serde(default, deserialize_with = "lenient::int")]
    pub renewal_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub eviction_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub service_up_timestamp: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApplicationWire {
    #[serde(default)]
    pub application: Option<Box<ApplicationWire>>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::one_or_many")]
    pub instance: Vec<InstanceWire>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApplicationsWire {
    #[serde(default)]
    pub applications: Option<Box<ApplicationsWire>>,
    #[serde(default, rename = "versions__delta", deserialize_with = "lenient::int")]
    pub versions_delta: Option<i64>,
    #[serde(
        default,
        rename = "apps__hashcode",
        deserialize_with = "lenient::string"
    )]
    pub apps_hashcode: Option<String>,
    #[serde(default, deserialize_with = "lenient::one_or_many")]
    pub application: Vec<ApplicationWire>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl InstanceWire {
    /// Unwraps `{"instance":{...}}` if present, so bare and wrapped bodies both work.
    pub fn unwrap_root(self) -> Self {
        match self.instance {
            Some(inner) => *inner,
            None => self,
        }
    }

    pub fn into_model(self, path: &str) -> Result<InstanceInfo, DecodeError> {
        let app = match non_empty(self.app) {
            Some(a) => AppName::parse(&a).map_err(|e| DecodeError::name(path, "app", e))?,
            None => return Err(DecodeError::missing(path, "app")),
        };
        let data_center_info = match self.data_center_info {
            Some(dc) => dc.into_model(path)?,
            // The Java server needs dataCenterInfo; we default to MyOwn like Polaris.
            None => DataCenterInfo::my_own(),
        };
        let host_name = self.host_name.unwrap_or_default();
        // Eureka's InstanceInfo.getId(): instanceId, else AmazonInfo's instance-id, else hostName.
        let raw_id = non_empty(self.instance_id)
            .or_else(|| {
                non_empty(data_center_info.metadata.get("instance-id").cloned())
                    .filter(|_| data_center_info.name.eq_ignore_ascii_case("Amazon"))
            })
            .or_else(|| non_empty(Some(host_name.clone())));
        let instance_id = match raw_id {
            Some(id) => {
                InstanceId::parse(&id).map_err(|e| DecodeError::name(path, "instanceId", e))?
            }
            None => {
                return Err(DecodeError::invalid(
                    path,
                    "instanceId",
                    "missing (and no hostName to fall back to)",
                ));
            }
        };
        let overridden = self.overriddenstatus.or(self.overridden_status);
        Ok(InstanceInfo {
            instance_id,
            host_name,
            app,
            app_group_name: self.app_group_name,
            ip_addr: self.ip_addr.unwrap_or_default(),
            status: self
                .status
                .map_or(InstanceStatus::Up, |s| InstanceStatus::parse_lenient(&s)),
            overridden_status: overridden.map_or(InstanceStatus::Unknown, |s| {
                InstanceStatus::parse_lenient(&s)
            }),
            // A port without `enabled` counts as enabled, a secure port as disabled
            // (Eureka's XML converter defaults).
            port: port(self.port, true, path, "port")?,
            secure_port: port(self.secure_port, false, path, "securePort")?,
            country_id: match self.country_id {
                None => 1,
                Some(c) => i32::try_from(c).map_err(|_| {
                    DecodeError::invalid(path, "countryId", format!("{c} is out of range"))
                })?,
            },
            data_center_info,
            lease_info: self.lease_info.unwrap_or_default().into_model(path)?,
            metadata: self.metadata.map(|m| m.0).unwrap_or_default(),
            home_page_url: self.home_page_url,
            status_page_url: self.status_page_url,
            health_check_url: self.health_check_url,
            secure_health_check_url: self.secure_health_check_url,
            vip_address: self.vip_address,
            secure_vip_address: self.secure_vip_address,
            is_coordinating_discovery_server: self
                .is_coordinating_discovery_server
                .unwrap_or(false),
            last_updated_timestamp: self.last_updated_timestamp.unwrap_or(0),
            last_dirty_timestamp: self.last_dirty_timestamp.unwrap_or(0),
            action_type: self.action_type.and_then(|a| ActionType::parse(&a)),
            asg_name: self.asg_name,
        })
    }
}

fn port(
    wire: Option<PortWire>,
    enabled_default: bool,
    path: &str,
    field: &str,
) -> Result<Port, DecodeError> {
    let Some(wire) = wire else {
        // Java's JSON creator: no port object means port 0, disabled.
        return Ok(Port::new(0, false));
    };
    let number = wire.port.unwrap_or(0);
    let port = u16::try_from(number)
        .map_err(|_| DecodeError::invalid(path, field, format!("{number} is not a port number")))?;
    Ok(Port::new(port, wire.enabled.unwrap_or(enabled_default)))
}

impl DataCenterWire {
    fn into_model(self, path: &str) -> Result<DataCenterInfo, DecodeError> {
        let class = non_empty(self.class);
        let name = match non_empty(self.name) {
            Some(n) => DataCenterInfo::intern_name(n),
            None => match &class {
                Some(c) if c.ends_with("AmazonInfo") => "Amazon".into(),
                _ => "MyOwn".into(),
            },
        };
        if name.len() > 64 {
            return Err(DecodeError::invalid(
                path,
                "dataCenterInfo.name",
                "too long",
            ));
        }
        let class = match class {
            Some(c) => DataCenterInfo::intern_class(c),
            None => DataCenterInfo::class_for(&name).into(),
        };
        Ok(DataCenterInfo {
            name,
            class,
            metadata: self.metadata.map(|m| m.0).unwrap_or_default(),
        })
    }
}

impl LeaseWire {
    fn into_model(self, path: &str) -> Result<LeaseInfo, DecodeError> {
        // Eureka replaces a non-positive duration with the default; so do we for both.
        let secs = |v: Option<i64>, default: u32, field: &str| -> Result<u32, DecodeError> {
            match v {
                None => Ok(default),
                Some(n) if n <= 0 => Ok(default),
                Some(n) => u32::try_from(n).map_err(|_| {
                    DecodeError::invalid(path, field, format!("{n} seconds is out of range"))
                }),
            }
        };
        Ok(LeaseInfo {
            renewal_interval_in_secs: secs(
                self.renewal_interval_in_secs,
                LeaseInfo::DEFAULT_RENEWAL_INTERVAL_SECS,
                "leaseInfo.renewalIntervalInSecs",
            )?,
            duration_in_secs: secs(
                self.duration_in_secs,
                LeaseInfo::DEFAULT_DURATION_SECS,
                "leaseInfo.durationInSecs",
            )?,
            registration_timestamp: self.registration_timestamp.unwrap_or(0),
            last_renewal_timestamp: self
                .last_renewal_timestamp
                .or(self.renewal_timestamp)
                .unwrap_or(0),
            eviction_timestamp: self.eviction_timestamp.unwrap_or(0),
            service_up_timestamp: self.service_up_timestamp.unwrap_or(0),
        })
    }
}

impl ApplicationWire {
    pub fn unwrap_root(self) -> Self {
        match self.application {
            Some(inner) => *inner,
            None => self,
        }
    }

    pub fn into_model(self, path: &str) -> Result<Application, DecodeError> {
        let name = match non_empty(self.name) {
            Some(n) => AppName::parse(&n).map_err(|e| DecodeError::name(path, "name", e))?,
            None => return Err(DecodeError::missing(path, "name")),
        };
        let instances = self
            .instance
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.into_model(&format!("{path}.instance[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Application { name, instances })
    }
}

impl ApplicationsWire {
    pub fn unwrap_root(self) -> Self {
        match self.applications {
            Some(inner) => *inner,
            None => self,
        }
    }

    pub fn into_model(self, path: &str) -> Result<Applications, DecodeError> {
        let applications = self
            .application
            .into_iter()
            .enumerate()
            .map(|(i, w)| w.into_model(&format!("{path}.application[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Applications {
            versions_delta: self.versions_delta.unwrap_or(0),
            apps_hashcode: self.apps_hashcode.unwrap_or_default(),
            applications,
        })
    }
}

/// Java's marker for an empty metadata map.
pub(crate) const EMPTY_MAP_CLASS: &str = "java.util.Collections$EmptyMap";

/// Whether a decoded metadata entry is Java's type marker rather than data: `@class` is
/// always ignored on read; a `class` key only when it carries the EmptyMap marker.
pub(crate) fn is_metadata_marker(key: &str, value: &str) -> bool {
    key == "@class" || (key == "class" && value == EMPTY_MAP_CLASS)
}
