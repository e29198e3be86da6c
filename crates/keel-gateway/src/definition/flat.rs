//! Flattening YAML, `.properties` and JSON into Spring's relaxed keys (`a.b[0].c`), keeping order.

use super::DefinitionError;

/// Flattens every YAML document in `text`; sequences become `key[i]`.
pub fn flatten_yaml(text: &str) -> Result<Vec<(String, String)>, DefinitionError> {
    use saphyr::{LoadableYamlNode, Yaml};
    let docs = Yaml::load_from_str(text)
        .map_err(|e| DefinitionError::new(format!("invalid YAML: {e}")))?;
    let mut out = Vec::new();
    for doc in &docs {
        walk_yaml(doc, String::new(), &mut out)?;
    }
    Ok(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_yaml(
    node: &saphyr::Yaml<'_>,
    prefix: String,
    out: &mut Vec<(String, String)>,
) -> Result<(), DefinitionError> {
    use saphyr::{Scalar, Yaml};
    match node {
        Yaml::Mapping(map) => {
            for (k, v) in map {
                let key = match k {
                    Yaml::Value(s) => scalar(s),
                    other => {
                        return Err(DefinitionError::new(format!(
                            "unsupported key {other:?} under `{prefix}`"
                        )));
                    }
                };
                walk_yaml(v, join(&prefix, &key), out)?;
            }
        }
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk_yaml(item, format!("{prefix}[{i}]"), out)?;
            }
        }
        Yaml::Value(Scalar::Null) if prefix.is_empty() => {}
        Yaml::Value(s) => out.push((prefix, scalar(s))),
        Yaml::BadValue => {
            return Err(DefinitionError::new(format!(
                "bad YAML value at `{prefix}`"
            )));
        }
        other => {
            return Err(DefinitionError::new(format!(
                "unsupported YAML node at `{prefix}`: {other:?}"
            )));
        }
    }
    Ok(())
}

fn scalar(s: &saphyr::Scalar<'_>) -> String {
    use saphyr::Scalar;
    match s {
        Scalar::Null => String::new(),
        Scalar::Boolean(b) => b.to_string(),
        Scalar::Integer(i) => i.to_string(),
        Scalar::FloatingPoint(f) => f.to_string(),
        Scalar::String(s) => s.to_string(),
    }
}

/// Parses `key=value` / `key: value` lines (`#`/`!` comments, `\` line continuation, `\=` escapes).
pub fn flatten_properties(text: &str) -> Result<Vec<(String, String)>, DefinitionError> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\').filter(|l| !l.ends_with('\\')) {
            logical.push_str(cont);
            continue;
        }
        logical.push_str(line);
        let entry = std::mem::take(&mut logical);
        // The key ends at the first unescaped `=` or `:`; the value keeps any later ones (`Path=/a/**`).
        let mut key = String::new();
        let mut chars = entry.char_indices();
        let mut value_start = entry.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        key.push(n);
                    }
                }
                '=' | ':' => {
                    value_start = i + 1;
                    break;
                }
                c if c.is_whitespace() => {
                    value_start = i;
                    break;
                }
                c => key.push(c),
            }
        }
        let mut value = entry[value_start..].trim_start();
        if let Some(v) = value.strip_prefix(['=', ':']) {
            value = v.trim_start();
        }
        if key.is_empty() {
            return Err(DefinitionError::new(format!(
                "properties line without a key: `{entry}`"
            )));
        }
        out.push((key, value.trim_end().to_owned()));
    }
    Ok(out)
}

/// Flattens a JSON value under `prefix`; strings in arrays stay shortcut specs (`predicates[0]=Path=/a/**`).
pub fn flatten_json(v: &serde_json::Value, prefix: String, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_json(v, join(&prefix, k), out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_json(item, format!("{prefix}[{i}]"), out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((prefix, s.clone())),
        other => out.push((prefix, other.to_string())),
    }
}
