//! Splicing cached per-instance fragments gives the same bytes as encoding whole documents.

use keel_eureka::*;

use crate::fixtures::*;

fn fragment(format: Format, i: &InstanceInfo) -> Vec<u8> {
    let mut out = Vec::new();
    encode_instance_fragment(format, i, &mut out);
    out
}

#[test]
fn spliced_documents_equal_encoded_ones() {
    for format in [Format::Json, Format::Xml] {
        let apps = full_registry();
        let mut spliced = Vec::new();
        let mut w = ApplicationsWriter::new(
            format,
            apps.versions_delta,
            &apps.apps_hashcode,
            &mut spliced,
        );
        for app in &apps.applications {
            let mut scope = w.application(&app.name);
            for i in &app.instances {
                scope.instance_fragment(&fragment(format, i));
            }
        }
        w.finish();
        let mut whole = Vec::new();
        encode_applications(format, &apps, &mut whole);
        assert_eq!(
            String::from_utf8(spliced).unwrap(),
            String::from_utf8(whole).unwrap()
        );

        let app = order_application();
        let mut spliced = Vec::new();
        let mut w = ApplicationWriter::new(format, &app.name, &mut spliced);
        for i in &app.instances {
            w.instance_fragment(&fragment(format, i));
        }
        w.finish();
        let mut whole = Vec::new();
        encode_application(format, &app, &mut whole);
        assert_eq!(spliced, whole);

        let i = reference_instance();
        let mut spliced = Vec::new();
        write_instance_document(format, &fragment(format, &i), &mut spliced);
        let mut whole = Vec::new();
        encode_instance(format, &i, &mut whole);
        assert_eq!(spliced, whole);
    }
}

#[test]
fn json_documents_are_valid_json() {
    for doc in [
        crate::fixtures::encode(Format::Json, |f, o| {
            encode_applications(f, &full_registry(), o)
        }),
        crate::fixtures::encode(Format::Json, |f, o| {
            encode_applications(f, &Applications::default(), o)
        }),
        crate::fixtures::encode(Format::Json, |f, o| {
            encode_application(f, &order_application(), o)
        }),
    ] {
        serde_json::from_str::<serde_json::Value>(&doc).unwrap();
    }
}
