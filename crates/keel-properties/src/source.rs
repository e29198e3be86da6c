//! Flattened property maps and the named property sources an Environment lists.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::ser::SerializeStruct as _;
use serde::{Serialize, Serializer};

use crate::value::Value;

/// One flattened document: keys in file order, as Boot's `LinkedHashMap`s keep them.
pub type Source = IndexMap<String, Value>;

/// A named property source in an [`crate::Environment`].
///
/// The map is shared (`Arc`) so that building an environment from a parsed tree copies no
/// values; decryption copies on write.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertySource {
    /// Spring's source name, e.g. `<uri>/application-dev.yml`.
    pub name: String,
    /// The flattened keys and values.
    pub source: Arc<Source>,
}

impl PropertySource {
    /// A property source with the given name and map.
    pub fn new(name: impl Into<String>, source: impl Into<Arc<Source>>) -> Self {
        Self {
            name: name.into(),
            source: source.into(),
        }
    }
}

impl Serialize for PropertySource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("PropertySource", 2)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("source", &*self.source)?;
        s.end()
    }
}
