//! Loads the fixture config repository and builds environments from it.

use std::path::Path;

use keel_properties::{
    AppNames, ConfigTree, Environment, EnvironmentQuery, Label, Profiles, RepoLayout, SourceNaming,
    TextEncryptor,
};

pub const URI: &str = "https://git.example.org/keel/config-repo";
pub const WORKDIR: &str = "/var/lib/keel/config-repo";
pub const COMMIT: &str = "9223983ee48b453a0f8b49b77e94cab598806bb7";

/// Every file under `tests/fixtures/config-repo`, as (relative path, bytes).
pub fn files() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config-repo");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(&path).unwrap()));
        }
    }
}

pub fn tree() -> ConfigTree {
    ConfigTree::from_files(files())
}

pub fn layout(search_paths: &[&str]) -> RepoLayout {
    RepoLayout {
        naming: SourceNaming::git(URI, WORKDIR),
        search_paths: search_paths.iter().map(|s| (*s).to_owned()).collect(),
    }
}

pub fn query(app: &str, profiles: &str) -> EnvironmentQuery {
    EnvironmentQuery {
        applications: AppNames::parse(app).unwrap(),
        profiles: Profiles::parse(profiles).unwrap(),
        label: Some(Label::parse("main").unwrap()),
    }
}

/// The environment as the server would serve it: built, versioned, decrypted with key `foo`.
pub fn served(app: &str, profiles: &str, search_paths: &[&str]) -> Environment {
    let mut env = tree()
        .environment(&query(app, profiles), &layout(search_paths))
        .unwrap();
    env.version = Some(COMMIT.to_owned());
    env.decrypt(&TextEncryptor::new("foo"));
    env
}

/// Source names with the URI prefix dropped, for compact ordering assertions.
pub fn names(env: &Environment) -> Vec<String> {
    env.property_sources
        .iter()
        .map(|ps| {
            ps.name
                .strip_prefix(&format!("{URI}/"))
                .unwrap_or(&ps.name)
                .to_owned()
        })
        .collect()
}
