//! `ServiceInstance`: what a caller needs to know about one registered instance.

use std::sync::Arc;
use std::time::Duration;

use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus, Metadata};

/// One instance of an application, as discovery serves it. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstance {
    pub id: InstanceId,
    pub app: AppName,
    /// `hostName` (an IP when the instance registered with `preferIpAddress`).
    pub host: String,
    pub ip: String,
    /// The plain-HTTP port, if enabled.
    pub port: Option<u16>,
    /// The HTTPS port, if enabled.
    pub secure_port: Option<u16>,
    pub status: InstanceStatus,
    /// Spring Cloud's metadata `zone`, else AmazonInfo's `availability-zone`.
    pub zone: Option<String>,
    pub vip_address: Option<String>,
    pub metadata: Arc<Metadata>,
    pub lease: Lease,
}

/// The lease terms the instance registered with, and when it registered (epoch ms, 0 = unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub renewal_interval: Duration,
    pub duration: Duration,
    pub registered_at_ms: i64,
}

impl ServiceInstance {
    /// Reads the parts of an Eureka `InstanceInfo` a caller uses.
    pub fn from_info(info: &InstanceInfo) -> Self {
        let zone = info
            .metadata
            .get("zone")
            .or_else(|| info.data_center_info.metadata.get("availability-zone"))
            .cloned();
        Self {
            id: info.instance_id.clone(),
            app: info.app.clone(),
            host: info.host_name.clone(),
            ip: info.ip_addr.clone(),
            port: info.port.enabled.then_some(info.port.port),
            secure_port: info.secure_port.enabled.then_some(info.secure_port.port),
            status: info.status,
            zone,
            vip_address: info.vip_address.clone(),
            metadata: Arc::new(info.metadata.clone()),
            lease: Lease {
                renewal_interval: Duration::from_secs(
                    info.lease_info.renewal_interval_in_secs.into(),
                ),
                duration: Duration::from_secs(info.lease_info.duration_in_secs.into()),
                registered_at_ms: info.lease_info.registration_timestamp,
            },
        }
    }

    /// Whether callers should send it traffic (Eureka's `filterOnlyUpInstances`).
    pub fn is_up(&self) -> bool {
        self.status == InstanceStatus::Up
    }

    /// `https://host:securePort` when the secure port is enabled (Spring Cloud's `isSecure()`),
    /// else `http://host:port`; `None` when neither port is enabled.
    pub fn base_url(&self) -> Option<String> {
        let host = if self.host.is_empty() {
            &self.ip
        } else {
            &self.host
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        match (self.secure_port, self.port) {
            (Some(p), _) => Some(format!("https://{host}:{p}")),
            (None, Some(p)) => Some(format!("http://{host}:{p}")),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_eureka::Port;

    fn info() -> InstanceInfo {
        InstanceInfo::new(
            AppName::parse("orders").unwrap(),
            InstanceId::parse("h:orders:1").unwrap(),
            "h",
            "10.0.0.1",
        )
    }

    #[test]
    fn zone_and_ports_come_from_the_wire_model() {
        let mut i = info();
        i.metadata.insert("zone".into(), "z1".into());
        i.port = Port::new(8080, true);
        let s = ServiceInstance::from_info(&i);
        assert_eq!(s.zone.as_deref(), Some("z1"));
        assert_eq!(s.base_url().as_deref(), Some("http://h:8080"));
        assert!(s.is_up());

        i.secure_port = Port::new(8443, true);
        assert_eq!(
            ServiceInstance::from_info(&i).base_url().as_deref(),
            Some("https://h:8443"),
            "the secure port wins when both are enabled"
        );
        i.port = Port::new(8080, false);
        i.host_name = "::1".into();
        assert_eq!(
            ServiceInstance::from_info(&i).base_url().as_deref(),
            Some("https://[::1]:8443")
        );
        i.secure_port.enabled = false;
        assert_eq!(ServiceInstance::from_info(&i).base_url(), None);
    }
}
