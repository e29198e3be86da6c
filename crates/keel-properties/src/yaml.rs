//! Loads YAML text into typed trees the way Boot's `OriginTrackedYamlLoader` (SnakeYAML, YAML 1.1) sees them.

use saphyr::{ScalarStyle, Yaml, YamlLoader};
use saphyr_parser::Parser;

use crate::error::ParseError;
use crate::yaml11::{self, Scalar};

/// A YAML node after SnakeYAML-style construction: scalars typed, merge keys applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Parses every document of a YAML stream. Empty and null documents are dropped, as
/// SnakeYAML's `loadAll` + Boot's `getData` drop them, so the result indexes `(document #n)`.
pub(crate) fn load(text: &str) -> Result<Vec<Node>, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut loader: YamlLoader<'_, Yaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    // saphyr rejects keys with identical text; `'a'` vs `a` is caught after typing, as in SnakeYAML.
    loader.allow_duplicate_keys(false);
    let scan = |e: &saphyr::ScanError| {
        ParseError::at(e.marker().line(), e.marker().col() + 1, e.info().to_owned())
    };
    parser.load(&mut loader, true).map_err(|e| scan(&e))?;
    if let Some(e) = loader.error() {
        return Err(scan(e));
    }
    let mut out = Vec::new();
    for doc in loader.into_documents() {
        if matches!(doc, Yaml::BadValue) {
            continue;
        }
        let node = convert(&doc)?;
        match &node {
            Node::Scalar(Scalar::Null) => {}
            Node::Scalar(Scalar::Str(s)) if s.is_empty() => {}
            _ => out.push(node),
        }
    }
    Ok(out)
}

fn convert(yaml: &Yaml<'_>) -> Result<Node, ParseError> {
    match yaml {
        Yaml::Representation(text, style, tag) => {
            let scalar = match tag {
                Some(tag) if tag.is_yaml_core_schema() => yaml11::resolve_tagged(text, &tag.suffix)
                    .ok_or_else(|| {
                        ParseError::at(
                            0,
                            0,
                            format!("cannot construct !!{} from {text:?}", tag.suffix),
                        )
                    })?,
                // The non-specific tag `!` forces a string.
                Some(tag) if tag.handle == "!" && tag.suffix.is_empty() => {
                    Scalar::Str(text.to_string())
                }
                Some(tag) => {
                    return Err(ParseError::at(
                        0,
                        0,
                        format!(
                            "could not determine a constructor for the tag {}{}",
                            tag.handle, tag.suffix
                        ),
                    ));
                }
                None if *style == ScalarStyle::Plain => yaml11::resolve_plain(text),
                None => Scalar::Str(text.to_string()),
            };
            Ok(Node::Scalar(scalar))
        }
        Yaml::Value(v) => Ok(Node::Scalar(match v {
            saphyr::Scalar::Null => Scalar::Null,
            saphyr::Scalar::Boolean(b) => Scalar::Bool(*b),
            saphyr::Scalar::Integer(i) => Scalar::Int(i128::from(*i)),
            saphyr::Scalar::FloatingPoint(f) => Scalar::Float(f.into_inner()),
            saphyr::Scalar::String(s) => Scalar::Str(s.to_string()),
        })),
        Yaml::Sequence(items) => Ok(Node::Seq(
            items.iter().map(convert).collect::<Result<_, _>>()?,
        )),
        Yaml::Mapping(map) => {
            let mut pairs = Vec::with_capacity(map.len());
            for (k, v) in map {
                pairs.push((convert(k)?, convert(v)?));
            }
            merge_and_check(pairs).map(Node::Map)
        }
        Yaml::Tagged(tag, inner) if tag.is_yaml_core_schema() => convert(inner),
        Yaml::Tagged(tag, _) => Err(ParseError::at(
            0,
            0,
            format!(
                "could not determine a constructor for the tag {}{}",
                tag.handle, tag.suffix
            ),
        )),
        Yaml::Alias(_) | Yaml::BadValue => Err(ParseError::at(0, 0, "unresolvable alias or value")),
    }
}

/// SnakeYAML's `mergeNode`: `<<` entries are spliced in at their position, explicit keys win
/// over merged ones (keeping the first position), and among merged maps the earlier wins.
fn merge_and_check(pairs: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, ParseError> {
    let mut explicit: Vec<&Node> = Vec::new();
    for (k, _) in &pairs {
        if *k != Node::Scalar(Scalar::Merge) {
            if explicit.contains(&k) {
                return Err(ParseError::at(
                    0,
                    0,
                    format!("found duplicate key {}", describe(k)),
                ));
            }
            explicit.push(k);
        }
    }
    if !pairs.iter().any(|(k, _)| *k == Node::Scalar(Scalar::Merge)) {
        return Ok(pairs);
    }
    let mut out: Vec<(Node, Node)> = Vec::new();
    merge_into(pairs, true, &mut out)?;
    Ok(out)
}

fn merge_into(
    pairs: Vec<(Node, Node)>,
    preferred: bool,
    out: &mut Vec<(Node, Node)>,
) -> Result<(), ParseError> {
    for (k, v) in pairs {
        if k == Node::Scalar(Scalar::Merge) {
            match v {
                Node::Map(inner) => merge_into(inner, false, out)?,
                Node::Seq(items) => {
                    for item in items {
                        let Node::Map(inner) = item else {
                            return Err(ParseError::at(0, 0, "expected a mapping for merging"));
                        };
                        merge_into(inner, false, out)?;
                    }
                }
                Node::Scalar(_) => {
                    return Err(ParseError::at(
                        0,
                        0,
                        "expected a mapping or list of mappings for merging",
                    ));
                }
            }
        } else if let Some(slot) = out.iter_mut().find(|(existing, _)| *existing == k) {
            if preferred {
                slot.1 = v;
            }
        } else {
            out.push((k, v));
        }
    }
    Ok(())
}

fn describe(node: &Node) -> String {
    match node {
        Node::Scalar(Scalar::Str(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_documents_are_dropped() {
        let docs = load("---\n# only a comment\n---\na: 1\n---\n~\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn duplicate_keys_fail_even_across_quoting() {
        let err = load("a: 1\n'a': 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn merge_keys_follow_snakeyaml() {
        let docs = load("base: &b\n  x: 1\n  y: 2\nchild:\n  <<: *b\n  y: 3\n").unwrap();
        let Node::Map(root) = &docs[0] else { panic!() };
        let Node::Map(child) = &root[1].1 else {
            panic!()
        };
        let keys: Vec<_> = child
            .iter()
            .map(|(k, v)| (describe(k), v.clone()))
            .collect();
        assert_eq!(keys[0], ("x".into(), Node::Scalar(Scalar::Int(1))));
        assert_eq!(keys[1], ("y".into(), Node::Scalar(Scalar::Int(3))));
    }

    #[test]
    fn unknown_tags_are_errors_like_safe_constructor() {
        assert!(load("a: !custom 1\n").is_err());
        assert_eq!(
            load("a: !!str 1\n").unwrap()[0],
            Node::Map(vec![(
                Node::Scalar(Scalar::Str("a".into())),
                Node::Scalar(Scalar::Str("1".into()))
            )])
        );
    }

    #[test]
    fn syntax_errors_carry_position() {
        let err = load("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line > 0, "{err:?}");
    }
}
