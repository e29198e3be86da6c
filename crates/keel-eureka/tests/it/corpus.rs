//! Decodes the committed corpus of real clients' bodies (tests/corpus/) and checks the fields.

use keel_eureka::*;

pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CORPUS}/{name}")).unwrap()
}

/// Every corpus body, with the format a server would pick for it.
pub fn all_bodies() -> Vec<(String, Format, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let format = match p.extension()?.to_str()? {
                "json" => Format::Json,
                "xml" => Format::Xml,
                _ => return None,
            };
            Some((name, format, std::fs::read(&p).unwrap()))
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn py_eureka_client_register() {
    let body = read("py-eureka-client-register.json");
    let format = Format::from_content_type("application/json").unwrap();
    let i = decode_instance(format, &body).unwrap();
    assert_eq!(i.instance_id.as_str(), "10.0.0.5:order-service:9090");
    assert_eq!(i.app.as_str(), "ORDER-SERVICE");
    assert_eq!(i.status, InstanceStatus::Up);
    // py-eureka-client spells it `overriddenstatus`.
    assert_eq!(i.overridden_status, InstanceStatus::Unknown);
    assert_eq!(i.port, Port::new(9090, true));
    assert_eq!(i.secure_port, Port::new(9443, false));
    assert_eq!(i.lease_info.renewal_interval_in_secs, 1);
    assert_eq!(i.lease_info.duration_in_secs, 3);
    // Timestamps arrive as strings.
    assert_eq!(i.last_dirty_timestamp, 1_700_000_000_001);
    assert_eq!(i.last_updated_timestamp, 1_700_000_000_001);
    assert_eq!(
        i.metadata.get("management.port").map(String::as_str),
        Some("9090")
    );
    assert_eq!(i.metadata.get("zone").map(String::as_str), Some("zone1"));
    assert_eq!(i.vip_address.as_deref(), Some("order-service"));
    assert_eq!(i.secure_health_check_url.as_deref(), Some(""));
    assert!(!i.is_coordinating_discovery_server);
    i.check_registrable(&AppName::parse("order-service").unwrap())
        .unwrap();

    let down = decode_instance(Format::Json, &read("py-eureka-client-register-down.json")).unwrap();
    assert_eq!(down.status, InstanceStatus::Down);
}

#[test]
fn spring_cloud_register() {
    let i = decode_instance(Format::Json, &read("spring-cloud-register.json")).unwrap();
    assert_eq!(
        i.instance_id.as_str(),
        "host-1.example.internal:order-service:8080"
    );
    assert_eq!(i.host_name, "host-1.example.internal");
    assert_eq!(i.overridden_status, InstanceStatus::Unknown);
    assert_eq!(i.port, Port::new(8080, true));
    // nulls read as absent
    assert_eq!(i.app_group_name, None);
    assert_eq!(i.action_type, None);
    assert_eq!(i.secure_health_check_url, None);
    assert_eq!(i.last_dirty_timestamp, 1_700_000_000_001);
    assert_eq!(i.metadata.len(), 1);

    let empty = decode_instance(
        Format::Json,
        &read("spring-cloud-register-empty-metadata.json"),
    )
    .unwrap();
    assert!(
        empty.metadata.is_empty(),
        "the @class marker is not metadata"
    );
    assert_eq!(empty.status, InstanceStatus::Down);
}

#[test]
fn eureka_js_client_register() {
    let i = decode_instance(Format::Json, &read("eureka-js-client-register.json")).unwrap();
    // No instanceId: falls back to hostName. App upper-cased.
    assert_eq!(i.instance_id.as_str(), "localhost");
    assert_eq!(i.app.as_str(), "JQSERVICE");
    assert_eq!(i.port, Port::new(8080, true), "@enabled as a boolean");
    assert_eq!(i.secure_port, Port::new(0, false));
    assert_eq!(i.lease_info, LeaseInfo::default());

    let aws = decode_instance(Format::Json, &read("eureka-js-client-register-aws.json")).unwrap();
    assert_eq!(
        aws.instance_id.as_str(),
        "i-0abc123def456",
        "AmazonInfo instance-id fallback"
    );
    assert_eq!(aws.data_center_info.name, "Amazon");
    assert_eq!(aws.data_center_info.class, AMAZON_DATA_CENTER_CLASS);
    assert_eq!(
        aws.data_center_info
            .metadata
            .get("availability-zone")
            .map(String::as_str),
        Some("us-east-1a")
    );
}

#[test]
fn xstream_register_xml() {
    let body = read("xstream-register.xml");
    assert_eq!(Format::sniff(&body), Format::Xml);
    let i = decode_instance(Format::Xml, &body).unwrap();
    let mut expected = crate::fixtures::reference_instance();
    expected.metadata.remove("zone");
    assert_eq!(i, expected);
}

#[test]
fn xstream_applications_xml() {
    let apps = decode_applications(Format::Xml, &read("xstream-apps.xml")).unwrap();
    assert_eq!(apps.versions_delta, 1);
    assert_eq!(apps.apps_hashcode, "DOWN_1_UP_1_");
    assert_eq!(apps.reconcile_hashcode(), apps.apps_hashcode);
    assert_eq!(apps.applications.len(), 2);
    let order = &apps.applications[0].instances[0];
    assert!(
        order.metadata.is_empty(),
        "EmptyMap class attribute is not metadata"
    );
    let billing = &apps.applications[1].instances[0];
    assert_eq!(
        billing.instance_id.as_str(),
        "host-2",
        "no instanceId: hostName"
    );
    // Without `enabled`, XStream's converter reads port as enabled, securePort as disabled.
    assert_eq!(billing.port, Port::new(8081, true));
    assert_eq!(billing.secure_port, Port::new(443, false));
    assert_eq!(billing.lease_info, LeaseInfo::default());
    assert_eq!(
        billing.metadata.get("build_id").map(String::as_str),
        Some("42"),
        "XStream `__` decoded"
    );
    assert_eq!(billing.action_type, Some(ActionType::Modified));
}

#[test]
fn single_objects_instead_of_arrays() {
    let apps = decode_applications(Format::Json, &read("eureka-apps-single-objects.json")).unwrap();
    assert_eq!(apps.versions_delta, 7);
    assert_eq!(apps.applications.len(), 1);
    assert_eq!(apps.applications[0].instances.len(), 1);
    assert_eq!(
        apps.applications[0].instances[0].action_type,
        Some(ActionType::Modified)
    );
}

#[test]
fn replication_batch() {
    let items = decode_replication_list(&read("replication-batch.json")).unwrap();
    let items: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    let actions: Vec<_> = items.iter().map(|i| i.action).collect();
    assert_eq!(
        actions,
        [
            ReplicationAction::Heartbeat,
            ReplicationAction::Register,
            ReplicationAction::StatusUpdate,
            ReplicationAction::Cancel
        ]
    );
    assert_eq!(items[0].last_dirty_timestamp, Some(1_700_000_000_001));
    assert_eq!(
        items[1].instance_info.as_ref().unwrap().app.as_str(),
        "ORDER-SERVICE"
    );
    assert_eq!(
        items[2].overridden_status,
        Some(InstanceStatus::OutOfService)
    );
    assert_eq!(items[3].status, None);

    let responses = decode_replication_response(&read("replication-response.json")).unwrap();
    let codes: Vec<_> = responses.iter().map(|r| r.status_code).collect();
    assert_eq!(codes, [200, 404, 409]);
    assert_eq!(
        responses[2]
            .response_entity
            .as_ref()
            .unwrap()
            .last_dirty_timestamp,
        1_700_000_000_009
    );
}

#[test]
fn every_corpus_file_decodes() {
    for (name, format, body) in all_bodies() {
        let ok = if name.starts_with("replication-batch") {
            decode_replication_list(&body).map(|_| ()).is_ok()
        } else if name.starts_with("replication-response") {
            decode_replication_response(&body).is_ok()
        } else if name.contains("apps") {
            decode_applications(format, &body).is_ok()
        } else {
            decode_instance(format, &body).is_ok()
        };
        assert!(ok, "{name} failed to decode");
    }
}
