//! The merged renderings served at `/{application}-{profiles}.{properties,yml,yaml,json}`.

mod yaml;

use indexmap::IndexMap;

use crate::environment::Environment;
use crate::merge::{MergedConfig, Nested};
use crate::placeholder;

pub use crate::merge::InvalidKey;

/// `.properties`: one `key: value` line per merged key, sorted, joined with `\n`, values not
/// escaped (Spring's `getPropertiesString`). Placeholders resolve over the whole text.
pub fn properties(env: &Environment, resolve_placeholders: bool) -> String {
    let merged = MergedConfig::of(env);
    let mut out = String::new();
    for (key, value) in &merged.0 {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(key);
        out.push_str(": ");
        out.push_str(&value.to_java_string());
    }
    if resolve_placeholders {
        placeholder::resolve(env, &out)
    } else {
        out
    }
}

/// `.json`: the merged keys re-nested (lists rebuilt from `[i]`), compact as Jackson writes it.
pub fn json(env: &Environment, resolve_placeholders: bool) -> Result<String, InvalidKey> {
    let root = nested(env, resolve_placeholders)?;
    // Invariant: nested maps have string keys and serialisable values.
    Ok(serde_json::to_string(&root).expect("nested config serialises"))
}

/// `.yml`/`.yaml`: the merged keys re-nested and dumped as SnakeYAML's `dumpAsMap` does
/// (block style, indent 2, sequences not indented, YAML 1.1 look-alike strings quoted).
/// A lone top-level `document` key is unwrapped (`stripDocumentFromYaml`).
pub fn yaml(env: &Environment, resolve_placeholders: bool) -> Result<String, InvalidKey> {
    let root = nested(env, resolve_placeholders)?;
    if root.len() == 1
        && let Some(doc) = root.get("document")
    {
        return Ok(yaml::dump_document(doc));
    }
    Ok(yaml::dump_map(&root))
}

fn nested(
    env: &Environment,
    resolve_placeholders: bool,
) -> Result<IndexMap<String, Nested>, InvalidKey> {
    let mut root = MergedConfig::of(env).nested()?;
    if resolve_placeholders {
        for v in root.values_mut() {
            resolve_in(env, v);
        }
    }
    Ok(root)
}

fn resolve_in(env: &Environment, node: &mut Nested) {
    match node {
        Nested::Value(crate::Value::String(s)) if s.contains("${") => {
            *s = placeholder::resolve(env, s);
        }
        Nested::Map(m) => m.values_mut().for_each(|v| resolve_in(env, v)),
        Nested::List(l) => l.iter_mut().for_each(|v| resolve_in(env, v)),
        _ => {}
    }
}
