//! `Metadata`: an instance's string map, kept as a sorted vector sized to its entries.

use std::collections::BTreeMap;
use std::fmt;

/// Free-form string metadata, sorted by key so encodings are deterministic; a later
/// insert of a key replaces its value, as in a map.
///
/// A vector rather than a `BTreeMap`: instances carry a handful of entries, and a
/// `BTreeMap<String, String>` allocates a 540-byte node for its first one, which was a
/// third of the registry's memory per instance (≈50 MB with 100k instances).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Metadata(Vec<(String, String)>);

impl Metadata {
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn get(&self, key: &str) -> Option<&String> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Sets `key`, returning its previous value.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                // Exact growth: a registry holds one of these per instance for hours.
                self.0.reserve_exact(1);
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key).ok()?;
        let (_, v) = self.0.remove(i);
        Some(v)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &String)> + ExactSizeIterator {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Like `BTreeMap`'s: panics when the key is absent.
impl std::ops::Index<&str> for Metadata {
    type Output = String;
    fn index(&self, key: &str) -> &String {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no metadata entry {key:?}"),
        }
    }
}

impl FromIterator<(String, String)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut entries: Vec<(String, String)> = iter.into_iter().collect();
        // Stable, so among equal keys the last one stays last; keep it (map semantics).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for e in entries {
            match kept.last_mut() {
                Some(last) if last.0 == e.0 => *last = e,
                _ => kept.push(e),
            }
        }
        kept.shrink_to_fit();
        Self(kept)
    }
}

impl Extend<(String, String)> for Metadata {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<const N: usize> From<[(String, String); N]> for Metadata {
    fn from(entries: [(String, String); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for Metadata {
    fn from(map: BTreeMap<String, String>) -> Self {
        let mut entries: Vec<_> = map.into_iter().collect();
        entries.shrink_to_fit();
        Self(entries)
    }
}

impl From<Metadata> for BTreeMap<String, String> {
    fn from(m: Metadata) -> Self {
        m.0.into_iter().collect()
    }
}

impl IntoIterator for Metadata {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut m = Metadata::new();
        assert_eq!(m.insert(s("zone"), s("z1")), None);
        assert_eq!(m.insert(s("a"), s("1")), None);
        assert_eq!(m.insert(s("zone"), s("z2")), Some(s("z1")));
        assert_eq!(m.keys().collect::<Vec<_>>(), [&s("a"), &s("zone")]);
        assert_eq!(m.get("zone"), Some(&s("z2")));
        assert!(m.contains_key("a") && !m.contains_key("b"));
        assert_eq!(m.remove("a"), Some(s("1")));
        assert_eq!(m.len(), 1);
        assert_eq!(format!("{m:?}"), r#"{"zone": "z2"}"#);
    }

    #[test]
    fn collecting_keeps_the_last_value_of_a_key() {
        let m: Metadata = [(s("b"), s("1")), (s("a"), s("2")), (s("b"), s("3"))].into();
        let as_map: BTreeMap<String, String> = m.clone().into();
        assert_eq!(as_map, BTreeMap::from([(s("a"), s("2")), (s("b"), s("3"))]));
        assert_eq!(Metadata::from(as_map), m);
    }
}
