//! Shared test data: the reference notes' example instance and small registries built from it.

use keel_eureka::*;

pub fn app(name: &str) -> AppName {
    AppName::parse(name).unwrap()
}

pub fn id(raw: &str) -> InstanceId {
    InstanceId::parse(raw).unwrap()
}

/// The instance of the reference notes §1.3 (JSON example).
pub fn reference_instance() -> InstanceInfo {
    let mut i = InstanceInfo::new(
        app("order-service"),
        id("10.0.0.5:order-service:8080"),
        "10.0.0.5",
        "10.0.0.5",
    );
    i.port = Port::new(8080, true);
    i.secure_port = Port::new(443, false);
    i.lease_info = LeaseInfo {
        renewal_interval_in_secs: 30,
        duration_in_secs: 90,
        registration_timestamp: 1_700_000_000_000,
        last_renewal_timestamp: 1_700_000_090_000,
        eviction_timestamp: 0,
        service_up_timestamp: 1_700_000_000_000,
    };
    i.metadata.insert("management.port".into(), "8080".into());
    i.metadata.insert("zone".into(), "zone1".into());
    i.home_page_url = Some("http://10.0.0.5:8080/".into());
    i.status_page_url = Some("http://10.0.0.5:8080/actuator/info".into());
    i.health_check_url = Some("http://10.0.0.5:8080/actuator/health".into());
    i.vip_address = Some("order-service".into());
    i.secure_vip_address = Some("order-service".into());
    i.last_updated_timestamp = 1_700_000_000_123;
    i.last_dirty_timestamp = 1_700_000_000_001;
    i.action_type = Some(ActionType::Added);
    i
}

/// A second instance of the same app, on another host.
pub fn second_instance() -> InstanceInfo {
    let mut i = reference_instance();
    i.instance_id = id("10.0.0.6:order-service:8080");
    i.host_name = "10.0.0.6".into();
    i.ip_addr = "10.0.0.6".into();
    i.home_page_url = Some("http://10.0.0.6:8080/".into());
    i.status_page_url = Some("http://10.0.0.6:8080/actuator/info".into());
    i.health_check_url = Some("http://10.0.0.6:8080/actuator/health".into());
    i
}

/// An instance of another app with empty metadata, DOWN, no URLs.
pub fn billing_instance() -> InstanceInfo {
    let mut i = InstanceInfo::new(
        app("billing"),
        id("host-2:billing:8081"),
        "host-2",
        "10.0.0.7",
    );
    i.status = InstanceStatus::Down;
    i.port = Port::new(8081, true);
    i.vip_address = Some("billing".into());
    i.last_updated_timestamp = 1_700_000_000_200;
    i.last_dirty_timestamp = 1_700_000_000_199;
    i.action_type = Some(ActionType::Modified);
    i
}

pub fn order_application() -> Application {
    Application {
        name: app("ORDER-SERVICE"),
        instances: vec![reference_instance(), second_instance()],
    }
}

/// The full registry: two apps, three instances.
pub fn full_registry() -> Applications {
    let mut apps = Applications {
        versions_delta: 1,
        apps_hashcode: String::new(),
        applications: vec![
            order_application(),
            Application {
                name: app("BILLING"),
                instances: vec![billing_instance()],
            },
        ],
    };
    apps.apps_hashcode = apps.reconcile_hashcode();
    apps
}

/// A delta: one instance modified, one deleted; the hash is the full registry's.
pub fn delta() -> Applications {
    let mut modified = billing_instance();
    modified.action_type = Some(ActionType::Modified);
    let mut deleted = second_instance();
    deleted.action_type = Some(ActionType::Deleted);
    Applications {
        versions_delta: 42,
        apps_hashcode: full_registry().apps_hashcode,
        applications: vec![
            Application {
                name: app("BILLING"),
                instances: vec![modified],
            },
            Application {
                name: app("ORDER-SERVICE"),
                instances: vec![deleted],
            },
        ],
    }
}

pub fn encode(format: Format, f: impl FnOnce(Format, &mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    f(format, &mut out);
    String::from_utf8(out).unwrap()
}
