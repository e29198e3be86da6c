//! Bad input: every refusal is an error whose message names what is wrong.

use keel_eureka::*;

fn json_err(body: &str) -> String {
    decode_instance(Format::Json, body.as_bytes())
        .unwrap_err()
        .to_string()
}

fn xml_err(body: &str) -> String {
    decode_instance(Format::Xml, body.as_bytes())
        .unwrap_err()
        .to_string()
}

const MIN_XML: &str = "<instance><app>a</app><hostName>h</hostName></instance>";

#[test]
fn minimal_bodies_decode() {
    decode_instance(Format::Json, br#"{"instance":{"app":"a","hostName":"h"}}"#).unwrap();
    decode_instance(Format::Json, br#"{"app":"a","hostName":"h"}"#).unwrap();
    decode_instance(Format::Xml, MIN_XML.as_bytes()).unwrap();
}

#[test]
fn doctype_is_refused() {
    let e = xml_err(&format!("<!DOCTYPE instance>{MIN_XML}"));
    assert!(e.contains("DOCTYPE"), "{e}");
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><instance><app>&lol2;</app></instance>"#;
    assert!(xml_err(laughs).contains("DOCTYPE"));
    let xxe = r#"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><instance><app>&xxe;</app></instance>"#;
    assert!(matches!(
        decode_instance(Format::Xml, xxe.as_bytes()),
        Err(DecodeError::XmlForbidden(_))
    ));
}

#[test]
fn undeclared_entities_are_refused_and_predefined_ones_resolved() {
    let e = xml_err("<instance><app>&xxe;</app><hostName>h</hostName></instance>");
    assert!(e.contains("&xxe;"), "{e}");
    let e = xml_err(r#"<instance><port enabled="&foo;">1</port></instance>"#);
    assert!(e.contains("refused"), "{e}");
    let i = decode_instance(
        Format::Xml,
        b"<instance><app>a</app><hostName>h&amp;&lt;&#65;&#x42;<![CDATA[<c>]]></hostName></instance>",
    )
    .unwrap();
    assert_eq!(i.host_name, "h&<AB<c>");
}

#[test]
fn malformed_documents_name_the_problem() {
    assert!(json_err(r#"{"instance":{"app":"a""#).starts_with("malformed JSON"));
    assert!(json_err("").starts_with("malformed JSON"));
    let e = xml_err("<instance><app>a</hostName></instance>");
    assert!(e.starts_with("malformed XML"), "{e}");
    let e = xml_err("<application><name>A</name></application>");
    assert_eq!(
        e,
        "malformed XML: expected root element <instance>, found <application>"
    );
    let e = xml_err("<instance><app>a</app>");
    assert!(e.contains("unclosed") || e.contains("malformed"), "{e}");
    assert!(xml_err("").contains("no root element"));
    assert!(xml_err("\u{feff}<instance>").starts_with("malformed XML"));
    assert!(
        decode_instance(Format::Xml, b"<instance>\xff</instance>")
            .unwrap_err()
            .to_string()
            .contains("UTF-8")
    );
}

#[test]
fn field_errors_carry_their_path() {
    assert_eq!(
        json_err(r#"{"instance":{"hostName":"h"}}"#),
        "instance.app: missing"
    );
    assert_eq!(
        json_err(r#"{"instance":{"app":"a/b","hostName":"h"}}"#),
        "instance.app: app name must not contain '/' (found at byte 1)"
    );
    assert_eq!(
        json_err(r#"{"instance":{"app":"a","instanceId":"x\u0001"}}"#),
        "instance.instanceId: instance id contains a control character (U+0001) at byte 1"
    );
    assert_eq!(
        json_err(r#"{"instance":{"app":"a"}}"#),
        "instance.instanceId: missing (and no hostName to fall back to)"
    );
    assert_eq!(
        json_err(r#"{"instance":{"app":"a","hostName":"h","port":{"$":70000}}}"#),
        "instance.port: 70000 is not a port number"
    );
    let e = json_err(r#"{"instance":{"app":"a","hostName":"h","lastDirtyTimestamp":"soon"}}"#);
    assert!(e.contains("soon") && e.contains("line 1"), "{e}");
    assert_eq!(
        xml_err("<instance><app>a</app><hostName>h</hostName><countryId>x</countryId></instance>"),
        "instance.countryId: expected an integer, found \"x\""
    );
    let e = decode_applications(
        Format::Json,
        br#"{"applications":{"application":[{"name":"A","instance":[{"app":"A","hostName":"h"},{"app":"","hostName":"h"}]}]}}"#,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "applications.application[0].instance[1].app: missing");
}

#[test]
fn register_checks_use_eurekas_messages() {
    let i = decode_instance(Format::Json, br#"{"instance":{"app":"a","hostName":"h"}}"#).unwrap();
    let a = AppName::parse("A").unwrap();
    assert_eq!(
        i.check_registrable(&a).unwrap_err().to_string(),
        "Missing ip address"
    );
    let i = decode_instance(
        Format::Json,
        br#"{"instance":{"app":"a","hostName":"h","ipAddr":"1.2.3.4"}}"#,
    )
    .unwrap();
    i.check_registrable(&a).unwrap();
    let b = AppName::parse("b").unwrap();
    assert_eq!(
        i.check_registrable(&b).unwrap_err().to_string(),
        "Mismatched appName, expecting B but was A"
    );
}

#[test]
fn lenient_values() {
    let i = decode_instance(
        Format::Json,
        br#"{"instance":{"app":"a","hostName":"h","status":"bogus","overriddenStatus":"out_of_service",
            "port":"8080","securePort":{"$":"8443","@enabled":"TRUE","extra":1},
            "countryId":"2","isCoordinatingDiscoveryServer":true,"lastDirtyTimestamp":1.7e12,
            "leaseInfo":{"durationInSecs":"-1","renewalTimestamp":"5"},
            "metadata":{"n":1,"b":false,"nul":null,"@class":"x"},
            "actionType":"weird","unknownField":{"deep":[1,2,3]}}}"#,
    )
    .unwrap();
    assert_eq!(
        i.status,
        InstanceStatus::Unknown,
        "unknown status reads as UNKNOWN"
    );
    assert_eq!(i.overridden_status, InstanceStatus::OutOfService);
    assert_eq!(i.port, Port::new(8080, true));
    assert_eq!(i.secure_port, Port::new(8443, true));
    assert_eq!(i.country_id, 2);
    assert!(i.is_coordinating_discovery_server);
    assert_eq!(i.last_dirty_timestamp, 1_700_000_000_000);
    assert_eq!(i.lease_info.duration_in_secs, 90);
    assert_eq!(i.lease_info.last_renewal_timestamp, 5);
    assert_eq!(i.metadata.len(), 2);
    assert_eq!(i.metadata["n"], "1");
    assert_eq!(i.metadata["b"], "false");
    assert_eq!(i.action_type, None);
    // Both spellings present: the lower-case one wins, as in Java's creator.
    let i = decode_instance(
        Format::Json,
        br#"{"instance":{"app":"a","hostName":"h","overriddenStatus":"DOWN","overriddenstatus":"UP"}}"#,
    )
    .unwrap();
    assert_eq!(i.overridden_status, InstanceStatus::Up);
}

#[test]
fn replication_items_fail_one_by_one() {
    let items = decode_replication_list(
        br#"{"replicationList":[{"appName":"A","id":"i/1","action":"Cancel"},{"appName":"A","id":"i1","action":"Nope"},{"appName":"A","id":"i1","action":"Cancel"}]}"#,
    )
    .unwrap();
    assert_eq!(
        items[0].as_ref().unwrap_err().to_string(),
        "replicationList[0].id: instance id must not contain '/' (found at byte 1)"
    );
    assert_eq!(
        items[1].as_ref().unwrap_err().to_string(),
        "replicationList[1].action: unknown action \"Nope\""
    );
    assert!(items[2].is_ok());
    assert!(decode_replication_list(b"[").is_err());
}
