//! Binding flattened keys to structs: re-nesting `a.b[0]` keys into a tree, and a lenient
//! deserialiser that reads scalars as Spring's binder does (`"8080"` fills a number, `on` a
//! bool, `"a,b"` a list).

use std::collections::BTreeMap;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde_json::Value;

enum Node {
    Leaf(Value),
    Map(BTreeMap<String, Node>),
    List(BTreeMap<usize, Node>),
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[0][1].c` → `a`, `b`, 0, 1, `c`; `None` for a malformed key (an unclosed bracket).
fn steps(key: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            out.push(Step::Index(inner[..close].trim().parse().ok()?));
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

fn insert(node: &mut Node, steps: &[Step<'_>], value: &Value) {
    let Some((first, rest)) = steps.split_first() else {
        // A key that is also a prefix of longer keys: the nested keys win (Spring's binder
        // does the same for `a=1` next to `a.b=2`).
        if !matches!(node, Node::Map(_) | Node::List(_)) {
            *node = Node::Leaf(value.clone());
        }
        return;
    };
    let child = match first {
        Step::Key(k) => {
            if !matches!(node, Node::Map(_)) {
                *node = Node::Map(BTreeMap::new());
            }
            let Node::Map(map) = node else { return };
            map.entry((*k).to_owned())
                .or_insert(Node::Leaf(Value::Null))
        }
        Step::Index(i) => {
            if !matches!(node, Node::List(_)) {
                *node = Node::List(BTreeMap::new());
            }
            let Node::List(list) = node else { return };
            list.entry(*i).or_insert(Node::Leaf(Value::Null))
        }
    };
    if rest.is_empty() && matches!(child, Node::Map(_) | Node::List(_)) {
        return;
    }
    insert(child, rest, value);
}

fn into_value(node: Node) -> Value {
    match node {
        Node::Leaf(v) => v,
        Node::Map(m) => Value::Object(m.into_iter().map(|(k, v)| (k, into_value(v))).collect()),
        // Indexes with gaps bind in order, as Spring's do.
        Node::List(l) => Value::Array(l.into_values().map(into_value).collect()),
    }
}

/// Re-nests flattened `(key, value)` pairs into a JSON tree. Malformed keys are skipped.
pub(crate) fn nest<'a>(pairs: impl Iterator<Item = (&'a str, &'a Value)>) -> Value {
    let mut root = Node::Map(BTreeMap::new());
    for (key, value) in pairs {
        if let Some(steps) = steps(key) {
            insert(&mut root, &steps, value);
        }
    }
    into_value(root)
}

/// A JSON value read leniently; nested values are read the same way.
pub(crate) struct Relaxed(pub Value);

impl<'de> IntoDeserializer<'de, serde_json::Error> for Relaxed {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

macro_rules! lenient_number {
    ($($method:ident => $visit:ident : $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match &self.0 {
                Value::String(s) => {
                    let n: $ty = s.trim().parse().map_err(|_| {
                        de::Error::invalid_value(de::Unexpected::Str(s), &stringify!($ty))
                    })?;
                    visitor.$visit(n)
                }
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Relaxed {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter().map(Relaxed));
                let v = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(v)
            }
            Value::Object(map) => {
                let mut map = MapDeserializer::new(map.into_iter().map(|(k, v)| (k, Relaxed(v))));
                let v = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(v)
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match &self.0 {
            Value::String(s) => match parse_bool(s) {
                Some(b) => visitor.visit_bool(b),
                None => Err(de::Error::invalid_value(
                    de::Unexpected::Str(s),
                    &"a boolean",
                )),
            },
            _ => self.deserialize_any(visitor),
        }
    }

    lenient_number! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            v @ (Value::Number(_) | Value::Bool(_)) => {
                visitor.visit_string(super::snapshot::as_text(&v))
            }
            other => Relaxed(other).deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Relaxed(other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            // Spring binds `a: x,y` to a list as well as `a[0]`, `a[1]`.
            Value::String(s) => {
                let items: Vec<Value> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_owned()))
                    .collect();
                Relaxed(Value::Array(items)).deserialize_any(visitor)
            }
            Value::Null => Relaxed(Value::Array(Vec::new())).deserialize_any(visitor),
            other => Relaxed(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        de::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    struct Pool {
        max_size: u16,
        enabled: bool,
        hosts: Vec<String>,
        tags: Vec<String>,
        timeout_ms: Option<u64>,
        name: String,
        servers: Vec<Server>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Server {
        host: String,
        port: u16,
    }

    #[test]
    fn nested_keys_bind_leniently() {
        let pairs = [
            ("max-size", Value::from("20")),
            ("enabled", Value::from("on")),
            ("hosts[1]", Value::from("b")),
            ("hosts[0]", Value::from("a")),
            ("tags", Value::from("x, y")),
            ("name", Value::from(42)),
            ("servers[0].host", Value::from("h1")),
            ("servers[0].port", Value::from(81)),
            ("servers[1].host", Value::from("h2")),
            ("servers[1].port", Value::from("82")),
            ("bad[x", Value::from(1)),
        ];
        let tree = nest(pairs.iter().map(|(k, v)| (*k, v)));
        let pool = Pool::deserialize(Relaxed(tree)).unwrap();
        assert_eq!(
            pool,
            Pool {
                max_size: 20,
                enabled: true,
                hosts: vec!["a".into(), "b".into()],
                tags: vec!["x".into(), "y".into()],
                timeout_ms: None,
                name: "42".into(),
                servers: vec![
                    Server {
                        host: "h1".into(),
                        port: 81
                    },
                    Server {
                        host: "h2".into(),
                        port: 82
                    },
                ],
            }
        );
        let bad = nest([("max-size", &Value::from("many"))].into_iter());
        assert!(Pool::deserialize(Relaxed(bad)).is_err());
    }
}
