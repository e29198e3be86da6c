//! The merged `.properties`, `.yml` and `.json` renderings of the fixture repository.

use keel_properties::{ConfigTree, MergedConfig, Value, render};

use crate::fixture::{self, served};

#[test]
fn properties_rendering_snapshot() {
    let env = served("foo", "dev,db", &["config", "{application}"]);
    insta::assert_snapshot!(
        "render_foo_dev_db_properties",
        render::properties(&env, true)
    );
}

#[test]
fn yaml_rendering_snapshot() {
    let env = served("foo", "dev,db", &["config", "{application}"]);
    insta::assert_snapshot!("render_foo_dev_db_yml", render::yaml(&env, true).unwrap());
}

#[test]
fn json_rendering_snapshot() {
    let env = served("foo", "dev,db", &["config", "{application}"]);
    insta::assert_snapshot!("render_foo_dev_db_json", render::json(&env, true).unwrap());
}

#[test]
fn placeholders_resolve_only_when_asked() {
    let env = served("foo", "default", &[]);
    let resolved = render::properties(&env, true);
    assert!(
        resolved.contains("endpoints[0].url: https://example.org/keel/alpha"),
        "{resolved}"
    );
    assert!(resolved.contains("escaped: ${not.resolved}"), "{resolved}");
    assert_eq!(
        env.resolve_placeholders("url=${info.url}"),
        "url=https://example.org/keel"
    );
    let raw = render::properties(&env, false);
    assert!(raw.contains("endpoints[0].url: ${info.url}/alpha"), "{raw}");
}

#[test]
fn higher_list_replaces_whole_list() {
    let env = served("foo", "default", &[]);
    let merged = MergedConfig::of(&env);
    // foo.properties has tags[0] only; foo.yml's three tags are replaced, not merged by index.
    let tags: Vec<_> = merged.0.keys().filter(|k| k.starts_with("tags[")).collect();
    assert_eq!(tags, ["tags[0]"]);
    assert_eq!(merged.0["tags[0]"], Value::from("props-only"));
}

#[test]
fn compound_keys_and_document_unwrap() {
    let tree = ConfigTree::from_files([(
        "application.yml",
        "logging.level.org: INFO\nlogging.level.org.keel: DEBUG\n",
    )]);
    let layout = fixture::layout(&[]);
    let env = tree
        .environment(&fixture::query("app", "default"), &layout)
        .unwrap();
    assert_eq!(
        render::yaml(&env, true).unwrap(),
        "logging:\n  level:\n    org: INFO\n    org.keel: DEBUG\n"
    );
    let list_only = ConfigTree::from_files([("list.yml", "- a\n- b\n")]);
    let env = list_only
        .environment(&fixture::query("list", "default"), &layout)
        .unwrap();
    assert_eq!(render::yaml(&env, true).unwrap(), "- a\n- b\n");
}

#[test]
fn invalid_keys_are_rejected_like_spring() {
    let tree = ConfigTree::from_files([("application.properties", "a..b=1\n")]);
    let env = tree
        .environment(&fixture::query("app", "default"), &fixture::layout(&[]))
        .unwrap();
    assert!(render::json(&env, true).is_err());
    assert_eq!(render::properties(&env, true), "a..b: 1");
}

#[test]
fn diff_reports_added_removed_changed() {
    let before = ConfigTree::from_files([("app.yml", "a: 1\nb: x\nl: [1, 2]\n")]);
    let after = ConfigTree::from_files([("app.yml", "a: 2\nc: y\nl: [1]\n")]);
    let q = fixture::query("app", "default");
    let layout = fixture::layout(&[]);
    let old = MergedConfig::of(&before.environment(&q, &layout).unwrap());
    let new = MergedConfig::of(&after.environment(&q, &layout).unwrap());
    let diff = old.diff(&new);
    insta::assert_snapshot!("diff_json", serde_json::to_string_pretty(&diff).unwrap());
    assert!(old.diff(&old).is_empty());
}
