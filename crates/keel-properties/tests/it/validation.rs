//! Last-known-good validation: parse failures and undecryptable `{cipher}` values, by file.

use keel_properties::{ConfigTree, EnvironmentError, TextEncryptor};

use crate::fixture;

#[test]
fn fixture_reports_only_the_bad_cipher() {
    let tree = fixture::tree();
    assert_eq!(tree.validate(None), vec![]);
    let errors = tree.validate(Some(&TextEncryptor::new("foo")));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].file, "foo.yml");
    assert_eq!(errors[0].key.as_deref(), Some("broken"));
}

#[test]
fn broken_files_are_reported_with_names_and_fail_requests() {
    let tree = ConfigTree::from_files([
        ("application.yml", "a: [1, 2\n"),
        ("good.yml", "ok: true\n"),
        ("dup.yml", "a: 1\na: 2\n"),
        ("bad.properties", "x=\\uZZZZ\n"),
        ("notes.txt", "ignored: [\n"),
    ]);
    let mut files: Vec<String> = tree.validate(None).into_iter().map(|e| e.file).collect();
    files.sort();
    assert_eq!(files, ["application.yml", "bad.properties", "dup.yml"]);
    // Spring answers 500 for any request that needs a broken file (here: everyone).
    let err = tree
        .environment(&fixture::query("good", "default"), &fixture::layout(&[]))
        .unwrap_err();
    assert!(
        matches!(err, EnvironmentError::InvalidFile(ref e) if e.path == "application.yml"),
        "{err}"
    );
}
