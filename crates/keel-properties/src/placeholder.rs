//! `${key:default}` resolution against an Environment's own sources (`resolvePlaceholders=true`).
//!
//! Only the returned property sources are consulted (no system properties or environment
//! variables); unresolvable placeholders stay literal; `\${` (or `\\${` from JSON) escapes.

use crate::environment::Environment;
use crate::value::Value;

const MASK: &str = "$_{";
const MAX_DEPTH: usize = 32;

/// Resolves placeholders in `text` against `env`.
pub fn resolve(env: &Environment, text: &str) -> String {
    if !text.contains("${") {
        return text.to_owned();
    }
    let masked = mask_escapes(text);
    let lookup = |key: &str| env.get(key).map(lookup_text);
    let mut visiting = Vec::new();
    resolve_inner(&masked, &lookup, &mut visiting).replace(MASK, "${")
}

/// Spring's conversion of a property value to `String` for substitution.
fn lookup_text(v: &Value) -> String {
    match v {
        // DefaultConversionService joins collections; an empty one is "".
        Value::EmptyList => String::new(),
        other => other.to_java_string(),
    }
}

fn mask_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let before = &rest[..i];
        let slashes = before.len() - before.trim_end_matches('\\').len();
        if slashes > 0 {
            out.push_str(&before[..before.len() - slashes.min(2)]);
            out.push_str(MASK);
        } else {
            out.push_str(before);
            out.push_str("${");
        }
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

fn resolve_inner(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    visiting: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(rel) = text[i..].find("${") {
        let start = i + rel;
        out.push_str(&text[i..start]);
        let Some(end) = find_end(text, start + 2) else {
            out.push_str(&text[start..]);
            return out;
        };
        let original = &text[start + 2..end];
        let literal = &text[start..=end];
        if visiting.len() >= MAX_DEPTH || visiting.iter().any(|v| v == original) {
            // Spring fails on circular references; leaving them literal keeps the rendering up.
            out.push_str(literal);
            i = end + 1;
            continue;
        }
        visiting.push(original.to_owned());
        let key = resolve_inner(original, lookup, visiting);
        let key = key.trim();
        let value = lookup(key).or_else(|| {
            key.split_once(':')
                .map(|(k, default)| lookup(k.trim()).unwrap_or_else(|| default.to_owned()))
        });
        match value {
            Some(v) => out.push_str(&resolve_inner(&v, lookup, visiting)),
            None => out.push_str(literal),
        }
        visiting.pop();
        i = end + 1;
    }
    out.push_str(&text[i..]);
    out
}

/// Index of the `}` closing a placeholder whose body starts at `from`, counting nested `{`.
fn find_end(text: &str, from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[from..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(from + i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::source::{PropertySource, Source};

    fn env(pairs: &[(&str, Value)]) -> Environment {
        let source: Source = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Environment {
            name: "a".into(),
            profiles: vec![],
            label: None,
            version: None,
            state: None,
            property_sources: vec![PropertySource {
                name: "s".into(),
                source: Arc::new(source),
            }],
        }
    }

    #[test]
    fn resolves_nested_defaults_and_escapes() {
        let e = env(&[
            ("host", Value::from("db")),
            ("port", Value::Integer(5432)),
            ("url", Value::from("jdbc://${host}:${port}")),
            ("which", Value::from("host")),
        ]);
        assert_eq!(resolve(&e, "x=${url}"), "x=jdbc://db:5432");
        assert_eq!(resolve(&e, "${missing:dflt} ${missing}"), "dflt ${missing}");
        assert_eq!(resolve(&e, "${${which}}"), "db");
        assert_eq!(
            resolve(&e, "\\${host} and \\\\${host}"),
            "${host} and ${host}"
        );
        assert_eq!(resolve(&e, "${ host }"), "db");
    }

    #[test]
    fn circular_references_stay_literal() {
        let e = env(&[("a", Value::from("${b}")), ("b", Value::from("${a}"))]);
        assert_eq!(resolve(&e, "${a}"), "${a}");
    }
}
