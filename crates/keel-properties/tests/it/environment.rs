//! Property-source order, naming, YAML 1.1 typing and the Environment JSON for the fixture repository.

use keel_properties::Value;

use crate::fixture::{self, names, served};

fn doc(path: &str, location: &str, n: usize) -> String {
    format!(
        "Config resource 'file [{}/{path}' via location '{location}' (document #{n})",
        fixture::WORKDIR
    )
}

#[test]
fn order_follows_spring_for_profiles_locations_and_documents() {
    let env = served("foo", "dev,db", &["config", "{application}"]);
    assert_eq!(
        names(&env),
        vec![
            // Profile-specific first; the last profile (db) wins; later locations win.
            "config/foo-db.properties".to_owned(),
            "config/application-db.yml".to_owned(),
            // Multi-document file: later documents first, inactive ones (prod) left out.
            doc("foo-db.yml", "", 1),
            doc("foo-db.yml", "", 0),
            "foo-dev.properties".to_owned(),
            "application-dev.yml".to_owned(),
            // Then the non-profile files: the {application} search path, then .properties over .yml.
            "foo/foo.yml".to_owned(),
            "foo.properties".to_owned(),
            "foo.yml".to_owned(),
            // A document activated by on-profile stays in its file's slot.
            doc("application.yml", "", 2),
            doc("application.yml", "", 0),
        ]
    );
    assert_eq!(env.profiles, ["dev", "db"]);
    assert_eq!(env.label.as_deref(), Some("main"));
}

#[test]
fn swapping_profiles_swaps_precedence() {
    let env = served("foo", "db,dev", &[]);
    assert_eq!(
        names(&env)[..4],
        [
            "foo-dev.properties".to_owned(),
            "application-dev.yml".to_owned(),
            doc("foo-db.yml", "", 1),
            doc("foo-db.yml", "", 0),
        ]
    );
    assert_eq!(env.get("foo"), Some(&Value::from("from foo development")));
}

#[test]
fn later_application_name_wins() {
    let env = served("foo,bar", "default", &[]);
    assert_eq!(
        names(&env),
        vec![
            "bar.yml".to_owned(),
            "foo.properties".to_owned(),
            "foo.yml".to_owned(),
            doc("application.yml", "", 0)
        ]
    );
    assert_eq!(env.get("foo"), Some(&Value::from("from bar")));
    assert_eq!(env.name, "foo,bar");
}

#[test]
fn unknown_application_gets_shared_sources_only() {
    let env = served("nobody", "cloud", &[]);
    assert_eq!(
        names(&env),
        vec![doc("application.yml", "", 1), doc("application.yml", "", 0)]
    );
    assert_eq!(env.get("foo"), Some(&Value::from("from cloud document")));
}

#[test]
fn search_path_documents_name_their_location() {
    let tree = keel_properties::ConfigTree::from_files([
        ("sub/application.yml", "a: 1\n---\nb: 2\n"),
        ("application.yml", "a: 0\n"),
    ]);
    let env = tree
        .environment(&fixture::query("x", "default"), &fixture::layout(&["sub"]))
        .unwrap();
    assert_eq!(
        names(&env),
        vec![
            doc("sub/application.yml", "sub/", 1),
            doc("sub/application.yml", "sub/", 0),
            "application.yml".to_owned()
        ]
    );
}

#[test]
fn yaml_11_scalars_keep_spring_types() {
    let env = served("foo", "default", &[]);
    let yml = env
        .property_sources
        .iter()
        .find(|ps| ps.name.ends_with("/foo.yml"))
        .unwrap();
    let get = |k: &str| yml.source.get(k).cloned();
    assert_eq!(get("server.port"), Some(Value::Integer(8080)));
    assert_eq!(get("server.ratio"), Some(Value::Float(0.75)));
    assert_eq!(get("server.big"), Some(Value::Float(1e10)));
    assert_eq!(get("server.octal"), Some(Value::Integer(8)));
    assert_eq!(get("server.hex"), Some(Value::Integer(31)));
    assert_eq!(get("server.nothing"), Some(Value::from("")));
    assert_eq!(get("server.quoted"), Some(Value::from("on")));
    assert_eq!(get("server.started"), Some(Value::from("2024-01-31")));
    assert_eq!(get("empty"), Some(Value::EmptyList));
    assert_eq!(get("codes[1]"), Some(Value::from("one")));
    let shared = env.property_sources.last().unwrap();
    assert_eq!(
        shared.source.get("feature.enabled"),
        Some(&Value::Boolean(true))
    );
    assert_eq!(
        shared.source.get("feature.legacy"),
        Some(&Value::Boolean(false))
    );
    assert_eq!(
        shared.source.get("feature.shadow"),
        Some(&Value::Boolean(true))
    );
    assert_eq!(
        shared.source.get("feature.letters"),
        Some(&Value::from("y"))
    );
}

#[test]
fn properties_values_are_strings_with_java_escapes() {
    let env = served("foo", "default", &[]);
    let props = env
        .property_sources
        .iter()
        .find(|ps| ps.name.ends_with("/foo.properties"))
        .unwrap();
    assert_eq!(
        props.source.get("path"),
        Some(&Value::from("C:\\temp\\keel"))
    );
    assert_eq!(
        props.source.get("greeting"),
        Some(&Value::from("caf\u{e9} au lait"))
    );
    assert_eq!(
        props.source.get("democonfigclient.message"),
        Some(&Value::from("hello spring io"))
    );
}

#[test]
fn cipher_values_decrypt_or_become_invalid() {
    let env = served("foo", "default", &[]);
    let yml = env
        .property_sources
        .iter()
        .find(|ps| ps.name.ends_with("/foo.yml"))
        .unwrap();
    assert_eq!(yml.source.get("password"), Some(&Value::from("foo")));
    assert_eq!(yml.source.get("broken"), None);
    assert_eq!(
        yml.source.get("invalid.broken"),
        Some(&Value::from("<n/a>"))
    );
    // Spring removes and re-adds decrypted keys, so they move to the end of their source.
    let tail: Vec<&String> = yml.source.keys().rev().take(2).collect();
    assert_eq!(tail, ["invalid.broken", "password"]);
}

#[test]
fn environment_json_snapshot() {
    let env = served("foo", "dev,db", &["config", "{application}"]);
    insta::assert_snapshot!(
        "environment_foo_dev_db",
        serde_json::to_string_pretty(&env).unwrap()
    );
    // The wire body is compact, in Jackson's field order.
    let compact = env.to_json();
    assert!(
        compact.starts_with(
            r#"{"name":"foo","profiles":["dev","db"],"label":"main","version":"9223983"#
        )
    );
    assert!(compact.contains(r#""server.big":1.0E10"#), "{compact}");
}
