//! Wire formats pinned by insta snapshots, and checked against the reference notes' examples.

use keel_eureka::*;

use crate::fixtures::*;

/// Reference notes §1.3, verbatim.
const REFERENCE_JSON: &str = r#"{"instance":{
  "instanceId":"10.0.0.5:order-service:8080",
  "hostName":"10.0.0.5",
  "app":"ORDER-SERVICE",
  "ipAddr":"10.0.0.5",
  "status":"UP",
  "overriddenStatus":"UNKNOWN",
  "port":{"$":8080,"@enabled":"true"},
  "securePort":{"$":443,"@enabled":"false"},
  "countryId":1,
  "dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},
  "leaseInfo":{"renewalIntervalInSecs":30,"durationInSecs":90,"registrationTimestamp":1700000000000,
               "lastRenewalTimestamp":1700000090000,"evictionTimestamp":0,"serviceUpTimestamp":1700000000000},
  "metadata":{"management.port":"8080","zone":"zone1"},
  "homePageUrl":"http://10.0.0.5:8080/",
  "statusPageUrl":"http://10.0.0.5:8080/actuator/info",
  "healthCheckUrl":"http://10.0.0.5:8080/actuator/health",
  "vipAddress":"order-service",
  "secureVipAddress":"order-service",
  "isCoordinatingDiscoveryServer":"false",
  "lastUpdatedTimestamp":"1700000000123",
  "lastDirtyTimestamp":"1700000000001",
  "actionType":"ADDED"
}}"#;

/// Reference notes §1.4 (its metadata holds only `management.port`).
const REFERENCE_XML: &str = r#"<instance>
  <instanceId>10.0.0.5:order-service:8080</instanceId>
  <hostName>10.0.0.5</hostName>
  <app>ORDER-SERVICE</app>
  <ipAddr>10.0.0.5</ipAddr>
  <status>UP</status>
  <overriddenstatus>UNKNOWN</overriddenstatus>
  <port enabled="true">8080</port>
  <securePort enabled="false">443</securePort>
  <countryId>1</countryId>
  <dataCenterInfo class="com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo">
    <name>MyOwn</name>
  </dataCenterInfo>
  <leaseInfo>
    <renewalIntervalInSecs>30</renewalIntervalInSecs><durationInSecs>90</durationInSecs>
    <registrationTimestamp>1700000000000</registrationTimestamp><lastRenewalTimestamp>1700000090000</lastRenewalTimestamp>
    <evictionTimestamp>0</evictionTimestamp><serviceUpTimestamp>1700000000000</serviceUpTimestamp>
  </leaseInfo>
  <metadata><management.port>8080</management.port></metadata>
  <homePageUrl>http://10.0.0.5:8080/</homePageUrl>
  <statusPageUrl>http://10.0.0.5:8080/actuator/info</statusPageUrl>
  <healthCheckUrl>http://10.0.0.5:8080/actuator/health</healthCheckUrl>
  <vipAddress>order-service</vipAddress>
  <secureVipAddress>order-service</secureVipAddress>
  <isCoordinatingDiscoveryServer>false</isCoordinatingDiscoveryServer>
  <lastUpdatedTimestamp>1700000000123</lastUpdatedTimestamp>
  <lastDirtyTimestamp>1700000000001</lastDirtyTimestamp>
  <actionType>ADDED</actionType>
</instance>"#;

fn strip_layout(xml: &str) -> String {
    xml.lines().map(str::trim).collect()
}

#[test]
fn instance_json_matches_the_reference_byte_for_byte_modulo_layout() {
    let ours = encode(Format::Json, |f, out| {
        encode_instance(f, &reference_instance(), out)
    });
    let reference: String = REFERENCE_JSON.lines().map(str::trim).collect();
    assert_eq!(ours, reference);
}

#[test]
fn instance_xml_matches_the_reference_modulo_layout() {
    let mut i = reference_instance();
    i.metadata.remove("zone");
    let ours = encode(Format::Xml, |f, out| encode_instance(f, &i, out));
    assert_eq!(ours, strip_layout(REFERENCE_XML));
}

#[test]
fn instance_snapshots() {
    let i = reference_instance();
    insta::assert_snapshot!(
        "instance_json",
        encode(Format::Json, |f, o| encode_instance(f, &i, o))
    );
    insta::assert_snapshot!(
        "instance_xml",
        encode(Format::Xml, |f, o| encode_instance(f, &i, o))
    );
}

#[test]
fn application_snapshots() {
    let a = order_application();
    insta::assert_snapshot!(
        "application_json",
        encode(Format::Json, |f, o| encode_application(f, &a, o))
    );
    insta::assert_snapshot!(
        "application_xml",
        encode(Format::Xml, |f, o| encode_application(f, &a, o))
    );
}

#[test]
fn applications_snapshots() {
    let apps = full_registry();
    assert_eq!(apps.apps_hashcode, "DOWN_1_UP_2_");
    insta::assert_snapshot!(
        "applications_json",
        encode(Format::Json, |f, o| encode_applications(f, &apps, o))
    );
    insta::assert_snapshot!(
        "applications_xml",
        encode(Format::Xml, |f, o| encode_applications(f, &apps, o))
    );
}

#[test]
fn delta_snapshots() {
    let d = delta();
    insta::assert_snapshot!(
        "delta_json",
        encode(Format::Json, |f, o| encode_applications(f, &d, o))
    );
    insta::assert_snapshot!(
        "delta_xml",
        encode(Format::Xml, |f, o| encode_applications(f, &d, o))
    );
}

#[test]
fn empty_registry_snapshots() {
    let empty = Applications {
        versions_delta: 1,
        apps_hashcode: Applications::default().reconcile_hashcode(),
        applications: vec![],
    };
    insta::assert_snapshot!(
        "empty_json",
        encode(Format::Json, |f, o| encode_applications(f, &empty, o))
    );
    insta::assert_snapshot!(
        "empty_xml",
        encode(Format::Xml, |f, o| encode_applications(f, &empty, o))
    );
}

#[test]
fn replication_snapshots() {
    let items = vec![
        ReplicationItem {
            app_name: app("ORDER-SERVICE"),
            id: id("10.0.0.5:order-service:8080"),
            last_dirty_timestamp: Some(1_700_000_000_001),
            overridden_status: None,
            status: Some(InstanceStatus::Up),
            instance_info: None,
            action: ReplicationAction::Heartbeat,
        },
        ReplicationItem {
            app_name: app("ORDER-SERVICE"),
            id: id("10.0.0.5:order-service:8080"),
            last_dirty_timestamp: Some(1_700_000_000_001),
            overridden_status: None,
            status: Some(InstanceStatus::Up),
            instance_info: Some(billing_instance()),
            action: ReplicationAction::Register,
        },
    ];
    let mut out = Vec::new();
    encode_replication_list(&items, &mut out);
    insta::assert_snapshot!("replication_list", String::from_utf8(out).unwrap());
    let responses = vec![
        ReplicationItemResponse {
            status_code: 200,
            response_entity: None,
        },
        ReplicationItemResponse {
            status_code: 409,
            response_entity: Some(billing_instance()),
        },
    ];
    let mut out = Vec::new();
    encode_replication_response(&responses, &mut out);
    insta::assert_snapshot!("replication_response", String::from_utf8(out).unwrap());
}
