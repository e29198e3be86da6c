//! `InstanceConfig`: how this process describes itself to the registry.

use std::time::Duration;

use keel_eureka::{AppName, InstanceId, InstanceInfo, InstanceStatus, LeaseInfo, Metadata, Port};

/// This process as an Eureka instance. Defaults follow Spring Cloud's.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub app: AppName,
    /// Spring's default is `host:app:port`.
    pub instance_id: InstanceId,
    pub host_name: String,
    pub ip_addr: String,
    pub port: u16,
    pub secure_port: Option<u16>,
    /// Spring Cloud's zone key; balancers prefer same-zone instances.
    pub zone: Option<String>,
    pub metadata: Metadata,
    pub health_check_path: String,
    pub status_page_path: String,
    pub renewal_interval: Duration,
    pub lease_duration: Duration,
}

impl InstanceConfig {
    /// An instance reachable at `host:port` over plain HTTP.
    pub fn new(app: AppName, host: &str, port: u16) -> Self {
        // host and port cannot hold '/' or control characters... unless the host does; then
        // fall back to the app name, which is already checked.
        let instance_id =
            InstanceId::parse(&format!("{host}:{}:{port}", app.as_str().to_lowercase()))
                .unwrap_or_else(|_| {
                    InstanceId::parse(app.as_str()).unwrap_or_else(|_| unreachable_id())
                });
        Self {
            app,
            instance_id,
            host_name: host.to_owned(),
            ip_addr: host.to_owned(),
            port,
            secure_port: None,
            zone: None,
            metadata: Metadata::new(),
            health_check_path: "/actuator/health".to_owned(),
            status_page_path: "/actuator/info".to_owned(),
            renewal_interval: Duration::from_secs(LeaseInfo::DEFAULT_RENEWAL_INTERVAL_SECS.into()),
            lease_duration: Duration::from_secs(LeaseInfo::DEFAULT_DURATION_SECS.into()),
        }
    }

    /// The `InstanceInfo` to register, with `status` and `lastDirtyTimestamp` = `dirty_ms`.
    pub fn to_info(&self, status: InstanceStatus, dirty_ms: i64) -> InstanceInfo {
        let mut info = InstanceInfo::new(
            self.app.clone(),
            self.instance_id.clone(),
            &self.host_name,
            &self.ip_addr,
        );
        info.status = status;
        info.port = Port::new(self.port, true);
        info.secure_port = Port::new(self.secure_port.unwrap_or(443), self.secure_port.is_some());
        info.metadata = self.metadata.clone();
        if let Some(zone) = &self.zone {
            info.metadata.insert("zone".to_owned(), zone.clone());
        }
        let base = format!("http://{}:{}", self.host_name, self.port);
        info.home_page_url = Some(format!("{base}/"));
        info.health_check_url = Some(format!("{base}{}", self.health_check_path));
        info.status_page_url = Some(format!("{base}{}", self.status_page_path));
        let vip = self.app.as_str().to_lowercase();
        info.vip_address = Some(vip.clone());
        info.secure_vip_address = Some(vip);
        info.lease_info.renewal_interval_in_secs = secs(self.renewal_interval);
        info.lease_info.duration_in_secs = secs(self.lease_duration);
        info.last_dirty_timestamp = dirty_ms;
        info.last_updated_timestamp = dirty_ms;
        info
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX)
}

fn unreachable_id() -> InstanceId {
    // A literal that passes every InstanceId check.
    InstanceId::parse("instance").unwrap_or_else(|_| unreachable!("'instance' is a valid id"))
}
