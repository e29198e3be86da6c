//! `ConfigSnapshot`: one version of an application's merged configuration, typed reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::Value;

use super::bind;
use super::error::ConfigError;

/// Where a snapshot was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// A config server answered (its base URL).
    Server(String),
    /// Every server was down at start: the disk cache's copy.
    Cache(PathBuf),
}

/// One version of the merged configuration, immutable. Keys are Spring's flattened keys
/// (`a.b[0].c`); a key from a higher-precedence property source hides the same key below it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSnapshot {
    /// `Environment.name`: the application name(s) asked for.
    pub name: String,
    pub profiles: Vec<String>,
    pub label: Option<String>,
    /// The commit id (git backends); `None` where the server has no versions.
    pub version: Option<String>,
    /// Property-source names, highest precedence first.
    pub sources: Vec<String>,
    pub source: SnapshotSource,
    properties: BTreeMap<String, Value>,
    /// The Environment JSON as served, kept for the disk cache.
    pub(crate) body: String,
}

/// A value that is there but is not a `T`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key {key:?}: cannot read {value:?} as {target}: {reason}")]
pub struct GetError {
    pub key: String,
    pub value: String,
    pub target: &'static str,
    pub reason: String,
}

#[derive(Deserialize)]
struct Environment {
    #[serde(default)]
    name: String,
    #[serde(default)]
    profiles: Vec<String>,
    label: Option<String>,
    version: Option<String>,
    #[serde(default, rename = "propertySources")]
    property_sources: Vec<PropertySource>,
}

#[derive(Deserialize)]
struct PropertySource {
    name: String,
    #[serde(default)]
    source: serde_json::Map<String, Value>,
}

impl ConfigSnapshot {
    /// Reads Spring's Environment JSON. Values in the v2 shape (`{"value","origin"}`) are
    /// unwrapped, as Spring's client does.
    pub fn from_environment(body: &str, source: SnapshotSource) -> Result<Self, ConfigError> {
        let env: Environment = serde_json::from_str(body).map_err(|e| ConfigError::Decode {
            what: match &source {
                SnapshotSource::Server(url) => url.clone(),
                SnapshotSource::Cache(path) => path.display().to_string(),
            },
            reason: e.to_string(),
        })?;
        let mut properties = BTreeMap::new();
        // propertySources come highest precedence first: the first one to name a key wins.
        for ps in &env.property_sources {
            for (k, v) in &ps.source {
                properties
                    .entry(k.clone())
                    .or_insert_with(|| unwrap_origin(v).clone());
            }
        }
        Ok(Self {
            name: env.name,
            profiles: env.profiles,
            label: env.label,
            version: env.version,
            sources: env.property_sources.into_iter().map(|p| p.name).collect(),
            source,
            properties,
            body: body.to_owned(),
        })
    }

    /// The raw value of `key`, as the server typed it.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.properties.get(key)
    }

    /// The value of `key` as text (numbers and booleans in their JSON spelling).
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.value(key).map(as_text)
    }

    /// `key` parsed as `T` (`Ok(None)` when absent). Spring binds strings and YAML scalars the
    /// same way, so the value's text is parsed whatever its JSON type.
    pub fn get<T>(&self, key: &str) -> Result<Option<T>, GetError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(text) = self.get_str(key) else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|e: T::Err| GetError {
            key: key.to_owned(),
            value: text.clone(),
            target: std::any::type_name::<T>(),
            reason: e.to_string(),
        })
    }

    /// Like [`ConfigSnapshot::get`], with `default` when the key is absent or unreadable.
    pub fn get_or<T>(&self, key: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(key).ok().flatten().unwrap_or(default)
    }

    /// Every key under `prefix` (`"server"` covers `server.port` and `server.ssl.enabled`),
    /// re-nested and deserialised into `T`, with Spring-like leniency: `"8080"` fills a `u16`,
    /// `on`/`yes` a `bool`, and `a[0]`, `a[1]` a `Vec`. An empty prefix binds everything.
    pub fn bind<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Result<T, ConfigError> {
        let tree = bind::nest(self.under(prefix));
        T::deserialize(bind::Relaxed(tree)).map_err(|e| ConfigError::Bind {
            prefix: prefix.to_owned(),
            reason: e.to_string(),
        })
    }

    /// `(key relative to prefix, value)` for every key under `prefix`.
    fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.properties.iter().filter_map(move |(k, v)| {
            if prefix.is_empty() {
                return Some((k.as_str(), v));
            }
            let rest = k.strip_prefix(prefix)?;
            if let Some(rest) = rest.strip_prefix('.') {
                Some((rest, v))
            } else if rest.starts_with('[') {
                Some((rest, v))
            } else {
                None
            }
        })
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.properties.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.properties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.properties.is_empty()
    }

    /// Whether `other` holds the same configuration (name, profiles, keys and values), whatever
    /// its version or where it came from.
    pub fn same_configuration(&self, other: &ConfigSnapshot) -> bool {
        self.properties == other.properties
            && self.name == other.name
            && self.profiles == other.profiles
    }
}

fn unwrap_origin(v: &Value) -> &Value {
    match v {
        Value::Object(m)
            if m.len() <= 2
                && m.contains_key("value")
                && (m.len() == 1 || m.contains_key("origin")) =>
        {
            &m["value"]
        }
        other => other,
    }
}

pub(crate) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> ConfigSnapshot {
        let body = r#"{"name":"orders","profiles":["dev"],"label":"main","version":"abc","state":null,
            "propertySources":[
              {"name":"orders-dev.yml","source":{"server.port":"9090","greeting":"hi","flag":"on",
                 "v2":{"value":7,"origin":"orders-dev.yml:3:5"}}},
              {"name":"application.yml","source":{"server.port":8080,"greeting":"hello","ratio":0.5}}]}"#;
        ConfigSnapshot::from_environment(body, SnapshotSource::Server("http://x".into())).unwrap()
    }

    #[test]
    fn precedence_and_typed_reads() {
        let s = snapshot();
        assert_eq!(s.get::<u16>("server.port").unwrap(), Some(9090));
        assert_eq!(s.get::<String>("greeting").unwrap().as_deref(), Some("hi"));
        assert_eq!(s.get::<f64>("ratio").unwrap(), Some(0.5));
        assert_eq!(s.get::<i64>("v2").unwrap(), Some(7));
        assert_eq!(s.get::<u8>("missing").unwrap(), None);
        let err = s.get::<u8>("greeting").unwrap_err();
        assert_eq!((err.key.as_str(), err.value.as_str()), ("greeting", "hi"));
        assert_eq!(s.get_or("missing", 3u8), 3);
        assert_eq!(s.sources, vec!["orders-dev.yml", "application.yml"]);
        assert_eq!(s.version.as_deref(), Some("abc"));
    }
}
