//! Flattens typed YAML trees into dotted keys with list indexes, as Spring's `YamlProcessor` does.

use crate::source::Source;
use crate::value::{Value, java_double};
use crate::yaml::Node;
use crate::yaml11::Scalar;

/// Flattens one YAML document. A document that is not a mapping is stored under the key
/// `document`, as `YamlProcessor.asMap` does.
pub(crate) fn flatten_document(doc: Node) -> Source {
    let mut out = Source::new();
    match doc {
        Node::Map(pairs) if !pairs.is_empty() => flatten_map(pairs, "", &mut out),
        other => put(&mut out, "document".to_owned(), other),
    }
    out
}

fn flatten_map(pairs: Vec<(Node, Node)>, path: &str, out: &mut Source) {
    for (key, value) in pairs {
        let key = key_text(&key);
        let full = if path.trim().is_empty() {
            key
        } else if key.starts_with('[') {
            format!("{path}{key}")
        } else {
            format!("{path}.{key}")
        };
        put(out, full, value);
    }
}

fn put(out: &mut Source, key: String, value: Node) {
    match value {
        Node::Map(pairs) if !pairs.is_empty() => flatten_map(pairs, &key, out),
        Node::Seq(items) if !items.is_empty() => {
            for (i, item) in items.into_iter().enumerate() {
                put(out, format!("{key}[{i}]"), item);
            }
        }
        // Boot wraps empty collections as tracked values, so they survive as leaves.
        Node::Map(_) => {
            out.insert(key, Value::EmptyMap);
        }
        Node::Seq(_) => {
            out.insert(key, Value::EmptyList);
        }
        Node::Scalar(s) => {
            out.insert(key, scalar_value(s));
        }
    }
}

fn scalar_value(s: Scalar) -> Value {
    match s {
        Scalar::Null => Value::String(String::new()),
        Scalar::Bool(b) => Value::Boolean(b),
        Scalar::Int(i) => Value::Integer(i),
        Scalar::Float(f) => Value::Float(f),
        Scalar::Str(s) => Value::String(s),
        Scalar::Merge => Value::String("<<".to_owned()),
    }
}

/// Non-string keys become `[<toString>]` (`YamlProcessor.asMap`: "YAML can have numbers as keys").
fn key_text(key: &Node) -> String {
    match key {
        Node::Scalar(Scalar::Str(s)) => s.clone(),
        Node::Scalar(Scalar::Merge) => "<<".to_owned(),
        Node::Scalar(Scalar::Null) => "[null]".to_owned(),
        Node::Scalar(Scalar::Bool(b)) => format!("[{b}]"),
        Node::Scalar(Scalar::Int(i)) => format!("[{i}]"),
        Node::Scalar(Scalar::Float(f)) => format!("[{}]", java_double(*f)),
        other => format!("[{}]", java_to_string(other)),
    }
}

fn java_to_string(node: &Node) -> String {
    match node {
        Node::Scalar(Scalar::Str(s)) => s.clone(),
        Node::Scalar(s) => scalar_value(s.clone()).to_java_string(),
        Node::Seq(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(java_to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Node::Map(pairs) => format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}={}", java_to_string(k), java_to_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    fn flat(text: &str) -> Vec<(String, Value)> {
        let doc = load(text).unwrap().into_iter().next().unwrap();
        flatten_document(doc).into_iter().collect()
    }

    #[test]
    fn nested_maps_and_lists() {
        let got = flat(
            "spring:\n  datasource:\n    url: jdbc:x\nservers:\n  - host: a\n    port: 80\n  - b\nm:\n  - [1, 2]\n",
        );
        assert_eq!(
            got,
            vec![
                ("spring.datasource.url".into(), Value::from("jdbc:x")),
                ("servers[0].host".into(), Value::from("a")),
                ("servers[0].port".into(), Value::Integer(80)),
                ("servers[1]".into(), Value::from("b")),
                ("m[0][0]".into(), Value::Integer(1)),
                ("m[0][1]".into(), Value::Integer(2)),
            ]
        );
    }

    #[test]
    fn yaml11_scalars_and_empties() {
        let got = flat(
            "a: yes\nb: off\nc: ~\nd:\ne: []\nf: {}\ng: '1'\nh: 1.5\ni: \"on\"\nj: 2001-12-14\n",
        );
        assert_eq!(
            got,
            vec![
                ("a".into(), Value::Boolean(true)),
                ("b".into(), Value::Boolean(false)),
                ("c".into(), Value::from("")),
                ("d".into(), Value::from("")),
                ("e".into(), Value::EmptyList),
                ("f".into(), Value::EmptyMap),
                ("g".into(), Value::from("1")),
                ("h".into(), Value::Float(1.5)),
                ("i".into(), Value::from("on")),
                ("j".into(), Value::from("2001-12-14")),
            ]
        );
    }

    #[test]
    fn bracket_and_non_string_keys() {
        let got = flat("m:\n  \"[a.b]\": 1\n  2: two\n  on: x\n");
        assert_eq!(
            got,
            vec![
                ("m[a.b]".into(), Value::Integer(1)),
                ("m[2]".into(), Value::from("two")),
                ("m[true]".into(), Value::from("x")),
            ]
        );
    }

    #[test]
    fn non_map_documents_use_document_key() {
        assert_eq!(
            flat("- a\n- b\n")[1],
            ("document[1]".into(), Value::from("b"))
        );
        assert_eq!(
            flat("hello\n"),
            vec![("document".into(), Value::from("hello"))]
        );
    }
}
