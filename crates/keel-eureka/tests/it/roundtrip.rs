//! Encode-then-decode gives back the same model, for fixtures and for generated instances.

use keel_eureka::*;
use proptest::prelude::*;

use crate::fixtures::*;

fn roundtrip_apps(format: Format, apps: &Applications) -> Applications {
    let mut out = Vec::new();
    encode_applications(format, apps, &mut out);
    decode_applications(format, &out).unwrap()
}

#[test]
fn fixtures_roundtrip_in_both_formats() {
    for format in [Format::Json, Format::Xml] {
        assert_eq!(roundtrip_apps(format, &full_registry()), full_registry());
        assert_eq!(roundtrip_apps(format, &delta()), delta());
        let mut out = Vec::new();
        encode_application(format, &order_application(), &mut out);
        assert_eq!(
            decode_application(format, &out).unwrap(),
            order_application()
        );
        let mut out = Vec::new();
        encode_instance(format, &billing_instance(), &mut out);
        assert_eq!(decode_instance(format, &out).unwrap(), billing_instance());
    }
}

#[test]
fn replication_roundtrips() {
    let items = vec![ReplicationItem {
        app_name: app("A"),
        id: id("i-1"),
        last_dirty_timestamp: Some(5),
        overridden_status: Some(InstanceStatus::OutOfService),
        status: Some(InstanceStatus::OutOfService),
        instance_info: Some(reference_instance()),
        action: ReplicationAction::Register,
    }];
    let mut out = Vec::new();
    encode_replication_list(&items, &mut out);
    let back: Vec<_> = decode_replication_list(&out)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, items);
    let responses = vec![ReplicationItemResponse {
        status_code: 409,
        response_entity: Some(billing_instance()),
    }];
    let mut out = Vec::new();
    encode_replication_response(&responses, &mut out);
    assert_eq!(decode_replication_response(&out).unwrap(), responses);
}

/// Text XML 1.0 can carry (no C0 controls but tab/newline, no U+FFFE/U+FFFF).
fn xml_text() -> BoxedStrategy<String> {
    "[\\t\\n\\x20-\\u{D7FF}\\u{E000}-\\u{FFFD}\\u{10000}-\\u{10FFFF}]{0,24}".boxed()
}

fn any_text() -> BoxedStrategy<String> {
    any::<String>().boxed()
}

fn name_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.:_-]{0,30}"
}

fn instance(
    text: BoxedStrategy<String>,
    keys: BoxedStrategy<String>,
) -> impl Strategy<Value = InstanceInfo> {
    let status = prop::sample::select(InstanceStatus::ALL.to_vec());
    (
        (
            name_text(),
            name_text(),
            text.clone(),
            text.clone(),
            status.clone(),
            status,
        ),
        (
            any::<(u16, bool)>(),
            any::<(u16, bool)>(),
            any::<i32>(),
            any::<(i64, i64)>(),
            1u32..10_000,
            1u32..10_000,
        ),
        (
            prop::collection::btree_map(keys, text.clone(), 0..4),
            prop::option::of(text.clone()),
            prop::option::of(text),
            any::<bool>(),
        ),
        prop::option::of(prop::sample::select(vec![
            ActionType::Added,
            ActionType::Modified,
            ActionType::Deleted,
        ])),
    )
        .prop_map(
            |(
                (a, i, host, ip, status, ovr),
                (p, sp, country, (lu, ld), ri, d),
                (metadata, home, vip, coord),
                action,
            )| {
                let mut inst = InstanceInfo::new(app(&a), id(&i), &host, &ip);
                inst.status = status;
                inst.overridden_status = ovr;
                inst.port = Port::new(p.0, p.1);
                inst.secure_port = Port::new(sp.0, sp.1);
                inst.country_id = country;
                inst.last_updated_timestamp = lu;
                inst.last_dirty_timestamp = ld;
                inst.lease_info.renewal_interval_in_secs = ri;
                inst.lease_info.duration_in_secs = d;
                inst.metadata = metadata.into();
                inst.home_page_url = home;
                inst.vip_address = vip;
                inst.is_coordinating_discovery_server = coord;
                inst.action_type = action;
                inst
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn json_roundtrips_any_strings(i in instance(any_text(), any_text().prop_filter("marker keys", |k| k != "@class" && k != "class").boxed())) {
        let mut out = Vec::new();
        encode_instance(Format::Json, &i, &mut out);
        prop_assert_eq!(decode_instance(Format::Json, &out).unwrap(), i);
    }

    #[test]
    fn xml_roundtrips_xml_safe_strings(i in instance(xml_text(), "[a-z][a-z0-9._$-]{0,12}".boxed())) {
        let mut out = Vec::new();
        encode_instance(Format::Xml, &i, &mut out);
        prop_assert_eq!(decode_instance(Format::Xml, &out).unwrap(), i);
    }

    #[test]
    fn hashcode_matches_a_recount(statuses in prop::collection::vec(prop::sample::select(InstanceStatus::ALL.to_vec()), 0..50)) {
        let counts: StatusCounts = statuses.iter().copied().collect();
        let mut expected = String::new();
        let mut names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for n in names {
            let c = statuses.iter().filter(|s| s.as_str() == n).count();
            expected.push_str(&format!("{n}_{c}_"));
        }
        prop_assert_eq!(counts.hashcode(), expected);
    }
}
