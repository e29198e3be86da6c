//! The Eureka wire model: `InstanceInfo`, `Application`, `Applications` and their parts.

use std::borrow::Cow;

pub use crate::metadata::Metadata;
use crate::name::{AppName, InstanceId};
use crate::status::{ActionType, InstanceStatus};

/// `dataCenterInfo.@class` for `MyOwn` and `Netflix`.
pub const DEFAULT_DATA_CENTER_CLASS: &str =
    "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo";
/// `dataCenterInfo.@class` for `Amazon`.
pub const AMAZON_DATA_CENTER_CLASS: &str = "com.netflix.appinfo.AmazonInfo";

/// A port and whether traffic may use it (`{"$":8080,"@enabled":"true"}` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub port: u16,
    pub enabled: bool,
}

impl Port {
    pub const fn new(port: u16, enabled: bool) -> Self {
        Self { port, enabled }
    }
}

/// Where the instance runs. `name` is `MyOwn`, `Netflix` or `Amazon`; `class` is the Java
/// class name the Java server and py-eureka-client require (`@class` / `class=`).
///
/// Both are almost always one of a few constants, which decoding borrows instead of
/// allocating them for every instance a registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataCenterInfo {
    pub name: Cow<'static, str>,
    pub class: Cow<'static, str>,
    /// AmazonInfo's `metadata` (`instance-id`, `availability-zone`, ...); empty otherwise.
    pub metadata: Metadata,
}

impl DataCenterInfo {
    /// `MyOwn`, what Spring Cloud and py-eureka-client send off AWS.
    pub fn my_own() -> Self {
        Self {
            name: Cow::Borrowed("MyOwn"),
            class: Cow::Borrowed(DEFAULT_DATA_CENTER_CLASS),
            metadata: Metadata::new(),
        }
    }

    /// `name` as a constant when it is one of Eureka's data-center names.
    pub fn intern_name(name: String) -> Cow<'static, str> {
        match ["MyOwn", "Amazon", "Netflix"]
            .into_iter()
            .find(|n| *n == name)
        {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(name),
        }
    }

    /// `class` as a constant when it is one of the two classes clients send.
    pub fn intern_class(class: String) -> Cow<'static, str> {
        match [DEFAULT_DATA_CENTER_CLASS, AMAZON_DATA_CENTER_CLASS]
            .into_iter()
            .find(|c| *c == class)
        {
            Some(c) => Cow::Borrowed(c),
            None => Cow::Owned(class),
        }
    }

    /// The Java class name that goes with a data-center name.
    pub fn class_for(name: &str) -> &'static str {
        if name.eq_ignore_ascii_case("Amazon") {
            AMAZON_DATA_CENTER_CLASS
        } else {
            DEFAULT_DATA_CENTER_CLASS
        }
    }
}

impl Default for DataCenterInfo {
    fn default() -> Self {
        Self::my_own()
    }
}

/// Lease timings. Timestamps are epoch milliseconds; 0 means unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    pub renewal_interval_in_secs: u32,
    pub duration_in_secs: u32,
    pub registration_timestamp: i64,
    /// Eureka writes "last renew + duration" here, not the last renewal itself.
    pub last_renewal_timestamp: i64,
    pub eviction_timestamp: i64,
    pub service_up_timestamp: i64,
}

impl LeaseInfo {
    /// Eureka's defaults (`LeaseInfo.DEFAULT_LEASE_RENEWAL_INTERVAL` / `_DURATION`).
    pub const DEFAULT_RENEWAL_INTERVAL_SECS: u32 = 30;
    pub const DEFAULT_DURATION_SECS: u32 = 90;
}

impl Default for LeaseInfo {
    fn default() -> Self {
        Self {
            renewal_interval_in_secs: Self::DEFAULT_RENEWAL_INTERVAL_SECS,
            duration_in_secs: Self::DEFAULT_DURATION_SECS,
            registration_timestamp: 0,
            last_renewal_timestamp: 0,
            eviction_timestamp: 0,
            service_up_timestamp: 0,
        }
    }
}

/// One registered instance, as clients register it and as the registry serves it.
///
/// `status` is the *effective* status (the overridden-status rules already applied);
/// it is what clients see and what `apps__hashcode` counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `instanceId`, or, when a client omits it, Eureka's fallback: the AmazonInfo
    /// `instance-id`, then `hostName`.
    pub instance_id: InstanceId,
    pub host_name: String,
    pub app: AppName,
    pub app_group_name: Option<String>,
    pub ip_addr: String,
    pub status: InstanceStatus,
    pub overridden_status: InstanceStatus,
    pub port: Port,
    pub secure_port: Port,
    pub country_id: i32,
    pub data_center_info: DataCenterInfo,
    pub lease_info: LeaseInfo,
    pub metadata: Metadata,
    pub home_page_url: Option<String>,
    pub status_page_url: Option<String>,
    pub health_check_url: Option<String>,
    pub secure_health_check_url: Option<String>,
    pub vip_address: Option<String>,
    pub secure_vip_address: Option<String>,
    pub is_coordinating_discovery_server: bool,
    /// Epoch ms; 0 when the client did not send it (Spring Cloud never does).
    pub last_updated_timestamp: i64,
    /// Epoch ms; 0 when the client did not send it.
    pub last_dirty_timestamp: i64,
    pub action_type: Option<ActionType>,
    pub asg_name: Option<String>,
}

impl InstanceInfo {
    /// A minimal UP instance with Eureka's defaults for everything else
    /// (port 7001 enabled, secure port 7002 disabled, country 1, MyOwn, 30 s / 90 s lease).
    pub fn new(app: AppName, instance_id: InstanceId, host_name: &str, ip_addr: &str) -> Self {
        Self {
            instance_id,
            host_name: host_name.to_owned(),
            app,
            app_group_name: None,
            ip_addr: ip_addr.to_owned(),
            status: InstanceStatus::Up,
            overridden_status: InstanceStatus::Unknown,
            port: Port::new(7001, true),
            secure_port: Port::new(7002, false),
            country_id: 1,
            data_center_info: DataCenterInfo::my_own(),
            lease_info: LeaseInfo::default(),
            metadata: Metadata::new(),
            home_page_url: None,
            status_page_url: None,
            health_check_url: None,
            secure_health_check_url: None,
            vip_address: None,
            secure_vip_address: None,
            is_coordinating_discovery_server: false,
            last_updated_timestamp: 0,
            last_dirty_timestamp: 0,
            action_type: None,
            asg_name: None,
        }
    }

    /// Eureka's register-time checks, with the Java server's 400 messages. `path_app` is
    /// the `{APP}` of `POST /apps/{APP}`.
    pub fn check_registrable(&self, path_app: &AppName) -> Result<(), RegisterError> {
        if self.host_name.trim().is_empty() {
            return Err(RegisterError::MissingHostName);
        }
        if self.ip_addr.trim().is_empty() {
            return Err(RegisterError::MissingIpAddr);
        }
        if &self.app != path_app {
            return Err(RegisterError::MismatchedAppName {
                expected: path_app.clone(),
                actual: self.app.clone(),
            });
        }
        if self.data_center_info.name.trim().is_empty() {
            return Err(RegisterError::MissingDataCenterName);
        }
        Ok(())
    }

    /// Whether `vip_address` (a comma-separated list) contains `vip` exactly, as
    /// `GET /vips/{vip}` matches.
    pub fn has_vip(&self, vip: &str) -> bool {
        has_address(self.vip_address.as_deref(), vip)
    }

    /// Same as [`InstanceInfo::has_vip`] for `secure_vip_address` (`GET /svips/{svip}`).
    pub fn has_secure_vip(&self, svip: &str) -> bool {
        has_address(self.secure_vip_address.as_deref(), svip)
    }
}

fn has_address(list: Option<&str>, wanted: &str) -> bool {
    list.is_some_and(|l| l.split(',').any(|a| a.trim() == wanted))
}

/// A registration body that decodes but that Eureka would refuse (the server answers 400
/// with this message as a text body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("Missing hostname")]
    MissingHostName,
    #[error("Missing ip address")]
    MissingIpAddr,
    #[error("Mismatched appName, expecting {expected} but was {actual}")]
    MismatchedAppName { expected: AppName, actual: AppName },
    #[error("Missing dataCenterInfo Name")]
    MissingDataCenterName,
}

/// All instances of one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub name: AppName,
    pub instances: Vec<InstanceInfo>,
}

/// A full registry or a delta.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applications {
    /// `versions__delta`: 1 for a full fetch, the delta counter for `/apps/delta`.
    pub versions_delta: i64,
    /// `apps__hashcode`, e.g. `DOWN_1_UP_3_`; see [`crate::StatusCounts`].
    pub apps_hashcode: String,
    pub applications: Vec<Application>,
}
