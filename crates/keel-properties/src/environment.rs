//! Spring Cloud Config's `Environment` document, serialised exactly as the server sends it.

use serde::Serialize;

use crate::source::PropertySource;

/// The body of `GET /{application}/{profiles}[/{label}]`.
///
/// Field order is Jackson's (creator properties first): `name, profiles, label, version, state,
/// propertySources`. The same body serves `application/json` and the
/// `application/vnd.spring-cloud.config-server.v2+json` media type (without value origins).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The requested `{application}`, with `(_)` turned into `/`.
    pub name: String,
    /// The requested profiles, split on commas.
    pub profiles: Vec<String>,
    /// The label served (git fills in the default label).
    pub label: Option<String>,
    /// The commit id (git) or configured version (native).
    pub version: Option<String>,
    /// Vault-style state; `null` for git.
    pub state: Option<String>,
    /// Sources in precedence order: index 0 wins.
    pub property_sources: Vec<PropertySource>,
}

impl Environment {
    /// Serialises the body as compact JSON.
    pub fn to_json(&self) -> String {
        // Invariant: every field serialises infallibly (strings, numbers, maps with string keys).
        serde_json::to_string(self).expect("Environment serialises")
    }

    /// Resolves `${key:default}` placeholders in `text` against this environment's sources
    /// (what Spring does for plain-text resources); unresolvable ones stay, a backslash before `${` escapes.
    pub fn resolve_placeholders(&self, text: &str) -> String {
        crate::placeholder::resolve(self, text)
    }

    /// The first value for `key`, searching sources in precedence order (what a client sees).
    pub fn get(&self, key: &str) -> Option<&crate::Value> {
        self.property_sources
            .iter()
            .find_map(|ps| ps.source.get(key))
    }
}
