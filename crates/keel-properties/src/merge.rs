//! The merged view of an Environment (`EnvironmentController.convertToProperties`), its re-nesting, and diffs.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Serialize, Serializer};

use crate::environment::Environment;
use crate::value::Value;

/// All keys of an Environment merged from lowest to highest precedence, sorted by key.
///
/// Indexed keys are grouped by the text before their first `[`: the highest source that has any
/// `prefix[…]` key supplies the whole list (Spring's list-replace rule). `spring.profiles` is
/// dropped.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct MergedConfig(pub BTreeMap<String, Value>);

impl MergedConfig {
    /// Merges an Environment's sources.
    pub fn of(env: &Environment) -> Self {
        let mut combined: BTreeMap<String, Value> = BTreeMap::new();
        let mut lists: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        for ps in env.property_sources.iter().rev() {
            for (key, value) in ps.source.iter() {
                match key.find('[') {
                    None => {
                        combined.insert(key.clone(), value.clone());
                    }
                    Some(i) => {
                        let prefix = format!("{}[", &key[..i]);
                        let filtered = ps
                            .source
                            .iter()
                            .filter(|(k, _)| k.starts_with(&prefix))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        lists.insert(key[..i].to_owned(), filtered);
                    }
                }
            }
        }
        for (_, filtered) in lists {
            combined.extend(filtered);
        }
        combined.remove("spring.profiles");
        MergedConfig(combined)
    }

    /// Keys added, removed and changed from `self` (old) to `new`.
    pub fn diff(&self, new: &MergedConfig) -> ConfigDiff {
        let mut diff = ConfigDiff::default();
        for (k, old_v) in &self.0 {
            match new.0.get(k) {
                None => {
                    diff.removed.insert(k.clone(), old_v.clone());
                }
                Some(new_v) if new_v != old_v => {
                    diff.changed.insert(
                        k.clone(),
                        Change {
                            old: old_v.clone(),
                            new: new_v.clone(),
                        },
                    );
                }
                Some(_) => {}
            }
        }
        for (k, new_v) in &new.0 {
            if !self.0.contains_key(k) {
                diff.added.insert(k.clone(), new_v.clone());
            }
        }
        diff
    }

    /// Re-nests the keys as `EnvironmentController.convertToMap` does (its `PropertyNavigator`),
    /// for the `.yml` and `.json` renderings. Fails on keys Spring rejects with 400
    /// (`a..b`, `a[x]`, `a[]`).
    pub fn nested(&self) -> Result<IndexMap<String, Nested>, InvalidKey> {
        let mut root = IndexMap::new();
        for (key, value) in &self.0 {
            Navigator::new(key).set_map_value(&mut root, Nested::Value(value.clone()))?;
        }
        Ok(root)
    }
}

/// How a configuration changed between two versions.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ConfigDiff {
    /// Keys only in the new version.
    pub added: BTreeMap<String, Value>,
    /// Keys only in the old version.
    pub removed: BTreeMap<String, Value>,
    /// Keys whose value changed.
    pub changed: BTreeMap<String, Change>,
}

impl ConfigDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// One changed value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Before.
    pub old: Value,
    /// After.
    pub new: Value,
}

/// A node of the re-nested configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Nested {
    /// A leaf value.
    Value(Value),
    /// A list slot no key filled (`a[2]` without `a[0]`, `a[1]`).
    Null,
    /// A nested map, in key order.
    Map(IndexMap<String, Nested>),
    /// A list.
    List(Vec<Nested>),
}

impl Serialize for Nested {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Nested::Value(v) => v.serialize(serializer),
            Nested::Null => serializer.serialize_none(),
            Nested::Map(m) => m.serialize(serializer),
            Nested::List(l) => l.serialize(serializer),
        }
    }
}

/// A merged key the re-nesting cannot place (Spring answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key: {0}")]
pub struct InvalidKey(pub String);

#[derive(Clone, Copy, PartialEq)]
enum NodeType {
    Leaf,
    Map,
    Array,
}

/// Port of Spring's `PropertyNavigator`, including its "compound key" quirk: when `a` is a
/// value and `a.b` also exists, `a.b` is stored as the key `a.b` next to `a`.
struct Navigator<'a> {
    key: &'a str,
    pos: usize,
    started: bool,
    value_type: NodeType,
    prefix: String,
}

impl<'a> Navigator<'a> {
    fn new(key: &'a str) -> Self {
        Self {
            key,
            pos: 0,
            started: false,
            value_type: NodeType::Map,
            prefix: String::new(),
        }
    }

    fn start(&self) -> usize {
        if self.started { self.pos + 1 } else { 0 }
    }

    fn invalid(&self) -> InvalidKey {
        InvalidKey(self.key.to_owned())
    }

    fn set_map_value(
        &mut self,
        map: &mut IndexMap<String, Nested>,
        value: Nested,
    ) -> Result<(), InvalidKey> {
        let key = self.next_key()?;
        match self.value_type {
            NodeType::Map => {
                match map.get(&key) {
                    Some(Nested::Map(_)) => {}
                    Some(Nested::Null) | None => {
                        map.insert(key.clone(), Nested::Map(IndexMap::new()));
                    }
                    Some(_) => {
                        self.prefix = format!("{key}.");
                        return self.set_map_value(map, value);
                    }
                }
                match map.get_mut(&key) {
                    Some(Nested::Map(inner)) => self.set_map_value(inner, value),
                    _ => Err(self.invalid()),
                }
            }
            NodeType::Array => {
                if !matches!(map.get(&key), Some(Nested::List(_))) {
                    map.insert(key.clone(), Nested::List(Vec::new()));
                }
                match map.get_mut(&key) {
                    Some(Nested::List(list)) => self.set_list_value(list, value),
                    _ => Err(self.invalid()),
                }
            }
            NodeType::Leaf => {
                map.insert(format!("{}{key}", self.prefix), value);
                Ok(())
            }
        }
    }

    fn set_list_value(&mut self, list: &mut Vec<Nested>, value: Nested) -> Result<(), InvalidKey> {
        let index = self.next_index()?;
        while list.len() <= index {
            list.push(Nested::Null);
        }
        match self.value_type {
            NodeType::Map => {
                if !matches!(list[index], Nested::Map(_)) {
                    list[index] = Nested::Map(IndexMap::new());
                }
                match &mut list[index] {
                    Nested::Map(inner) => self.set_map_value(inner, value),
                    _ => Err(self.invalid()),
                }
            }
            NodeType::Array => {
                if !matches!(list[index], Nested::List(_)) {
                    list[index] = Nested::List(Vec::new());
                }
                match &mut list[index] {
                    Nested::List(inner) => self.set_list_value(inner, value),
                    _ => Err(self.invalid()),
                }
            }
            NodeType::Leaf => {
                list[index] = value;
                Ok(())
            }
        }
    }

    fn next_key(&mut self) -> Result<String, InvalidKey> {
        let start = self.start();
        let bytes = self.key.as_bytes();
        let found = (start..bytes.len()).find(|&i| bytes[i] == b'.' || bytes[i] == b'[');
        match found {
            None => {
                self.pos = bytes.len();
                self.started = true;
                self.value_type = NodeType::Leaf;
            }
            Some(i) if i == start => return Err(self.invalid()),
            Some(i) => {
                self.value_type = if bytes[i] == b'.' {
                    NodeType::Map
                } else {
                    NodeType::Array
                };
                self.pos = i;
                self.started = true;
            }
        }
        Ok(self.key[start..self.pos.min(bytes.len())].to_owned())
    }

    fn next_index(&mut self) -> Result<usize, InvalidKey> {
        let start = self.start();
        let bytes = self.key.as_bytes();
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            if b == b']' {
                close = Some(i);
                break;
            }
            if !b.is_ascii_digit() {
                return Err(self.invalid());
            }
        }
        let close = close.filter(|&c| c > start).ok_or_else(|| self.invalid())?;
        let index: usize = self.key[start..close].parse().map_err(|_| self.invalid())?;
        self.pos = close + 1;
        self.value_type = match bytes.get(self.pos) {
            None => NodeType::Leaf,
            Some(b'.') => NodeType::Map,
            Some(b'[') => NodeType::Array,
            Some(_) => return Err(self.invalid()),
        };
        Ok(index)
    }
}
