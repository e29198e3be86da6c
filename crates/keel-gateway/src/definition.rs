//! Route definitions in Spring Cloud Gateway's shape, read from YAML, `.properties`, flat keys or JSON.
//!
//! Every input is first flattened to Spring's relaxed keys (`spring.cloud.gateway.routes[0].uri`),
//! so a route file, a file flattened from git and an admin-API body all go through one parser.

mod flat;

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;

pub use flat::{flatten_json, flatten_properties, flatten_yaml};

/// A predicate or filter as declared: a name and its arguments in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spec {
    pub name: String,
    /// `(key, value)`; shortcut arguments get SCG's `_genkey_N` keys.
    #[serde(serialize_with = "args_as_map")]
    pub args: Vec<(String, String)>,
}

fn args_as_map<S: serde::Serializer>(args: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(args.len()))?;
    for (k, v) in args {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

thread_local! {
    /// What was looked up while [`Spec::reading`] runs.
    static READ: RefCell<Option<Lookups>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Lookups {
    names: Vec<String>,
    /// Shortcut arguments within reach of a lookup (`usize::MAX` once a list took them all).
    positional: usize,
}

/// What a compilation left unread (see [`Spec::reading`]).
#[derive(Debug)]
pub(crate) struct Unread<'s> {
    names: Vec<&'s str>,
    known: Vec<String>,
    /// Shortcut arguments given, when more than were read.
    extra: Option<(usize, usize)>,
}

impl Unread<'_> {
    /// Why the spec is refused: an argument nothing read would silently drop what the user asked for.
    pub(crate) fn refusal(&self) -> Option<String> {
        if let Some(k) = self.names.first() {
            let known = if self.known.is_empty() {
                "none".to_owned()
            } else {
                self.known.join(", ")
            };
            return Some(format!("unknown argument `{k}` (known: {known})"));
        }
        self.extra
            .map(|(given, read)| format!("takes {read} shortcut argument(s), not {given}"))
    }
}

impl Spec {
    /// Notes that argument `name` (and `name[i]`), or shortcut argument `pos`, was looked up (see
    /// [`reading`](Self::reading)); `pos` `usize::MAX` takes every shortcut argument.
    pub(crate) fn note_at(&self, name: &str, pos: usize) {
        self.lookup(name, Some(pos));
    }

    /// Notes a named-only lookup.
    pub(crate) fn note(&self, name: &str) {
        self.lookup(name, None);
    }

    fn lookup(&self, name: &str, pos: Option<usize>) {
        READ.with_borrow_mut(|r| {
            if let Some(r) = r {
                r.names.push(name.to_owned());
                if let Some(p) = pos {
                    r.positional = r.positional.max(p.saturating_add(1));
                }
            }
        });
    }

    /// Runs `compile`, and returns with its result what it left unread.
    pub(crate) fn reading<T>(&self, compile: impl FnOnce() -> T) -> (T, Unread<'_>) {
        let outer = READ.replace(Some(Lookups::default()));
        let result = compile();
        let read = READ.replace(outer).unwrap_or_default();
        let names = self
            .args
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !k.starts_with("_genkey_"))
            .filter(|k| {
                let base = k.split('[').next().unwrap_or(k);
                !read.names.iter().any(|r| r.eq_ignore_ascii_case(base))
            })
            .collect();
        let given = self
            .args
            .iter()
            .filter(|(k, _)| k.starts_with("_genkey_"))
            .count();
        let mut known = read.names;
        known.sort();
        known.dedup();
        let unread = Unread {
            names,
            known,
            extra: (given > read.positional).then_some((given, read.positional)),
        };
        (result, unread)
    }

    /// Parses the shortcut form `Name=a, b` (or a bare `Name`).
    pub fn shortcut(text: &str) -> Result<Spec, DefinitionError> {
        let (name, rest) = match text.split_once('=') {
            Some((n, r)) => (n.trim(), Some(r)),
            None => (text.trim(), None),
        };
        if name.is_empty() {
            return Err(DefinitionError::new(format!(
                "`{text}` has no name before `=`"
            )));
        }
        let args = rest
            .map(|r| {
                r.split(',')
                    .enumerate()
                    .map(|(i, a)| (format!("_genkey_{i}"), a.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Spec {
            name: name.to_owned(),
            args,
        })
    }

    /// The argument called `name`, or else the positional argument `pos` (shortcut form).
    pub fn arg(&self, name: &str, pos: usize) -> Option<&str> {
        self.note_at(name, pos);
        let named = self.args.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
        named
            .or_else(|| {
                self.args
                    .iter()
                    .filter(|(k, _)| k.starts_with("_genkey_"))
                    .nth(pos)
            })
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list argument: `name`, `name[i]`, comma-separated values, or all shortcut values.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.note_at(name, usize::MAX);
        let lower = name.to_ascii_lowercase();
        let mut out: Vec<&str> = Vec::new();
        for (k, v) in &self.args {
            let k = k.to_ascii_lowercase();
            if k == lower || k.starts_with(&format!("{lower}[")) {
                out.extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()));
            } else if k.starts_with("_genkey_") {
                out.push(v.as_str());
            }
        }
        out
    }
}

/// One declared route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDefinition {
    pub id: String,
    pub uri: String,
    pub predicates: Vec<Spec>,
    pub filters: Vec<Spec>,
    pub order: i32,
    pub metadata: BTreeMap<String, String>,
}

/// Discovery-route settings (`spring.cloud.gateway.discovery.locator.*`, `zuul.ignored-services`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoverySettings {
    pub enabled: bool,
    /// Service-id globs (`*` wildcard, case-insensitive); empty means every service.
    pub include: Vec<String>,
    /// Service-id globs never routed by discovery (explicit routes still work).
    pub ignore: Vec<String>,
}

impl Default for DiscoverySettings {
    fn default() -> Self {
        DiscoverySettings {
            enabled: true,
            include: Vec::new(),
            ignore: Vec::new(),
        }
    }
}

/// Everything a route document declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteDocument {
    pub routes: Vec<RouteDefinition>,
    pub default_filters: Vec<Spec>,
    /// `None` when the document says nothing about discovery.
    pub discovery: Option<DiscoverySettings>,
    /// `spring.cloud.gateway.globalcors.cors-configurations`: path pattern and its settings, in
    /// declaration order; `None` when the document says nothing about CORS.
    pub cors: Option<Vec<CorsDefinition>>,
}

/// One global CORS configuration as declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CorsDefinition {
    pub pattern: String,
    /// `(key, value)` as written (`allowedOrigins`, `allowed-origins[0]`…).
    pub settings: Vec<(String, String)>,
}

/// A definition that could not be read, with the key or route it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DefinitionError(String);

impl DefinitionError {
    pub fn new(msg: impl Into<String>) -> Self {
        DefinitionError(msg.into())
    }
}

const ROUTES: &str = "spring.cloud.gateway.routes[";
const DEFAULT_FILTERS: &str = "spring.cloud.gateway.default-filters[";
const LOCATOR: &str = "spring.cloud.gateway.discovery.locator.";
const GLOBALCORS: &str = "spring.cloud.gateway.globalcors.";

#[derive(Default)]
struct SpecBuilder {
    name: Option<String>,
    shortcut: Option<String>,
    args: Vec<(String, String)>,
}

impl SpecBuilder {
    fn build(self, what: &str) -> Result<Spec, DefinitionError> {
        match (self.shortcut, self.name) {
            (Some(s), None) if self.args.is_empty() => Spec::shortcut(&s),
            (None, Some(name)) => Ok(Spec {
                name,
                args: self.args,
            }),
            _ => Err(DefinitionError::new(format!(
                "{what}: give either `Name=args` or `name` with `args`"
            ))),
        }
    }
}

#[derive(Default)]
struct RouteBuilder {
    id: Option<String>,
    uri: Option<String>,
    order: Option<String>,
    predicates: BTreeMap<usize, SpecBuilder>,
    filters: BTreeMap<usize, SpecBuilder>,
    metadata: BTreeMap<String, String>,
}

/// Splits `12].rest` into `(12, "rest")` (rest without its leading `.`).
fn index(after_bracket: &str, key: &str) -> Result<(usize, String), DefinitionError> {
    let bad = || DefinitionError::new(format!("bad index in key `{key}`"));
    let (n, rest) = after_bracket.split_once(']').ok_or_else(bad)?;
    let n = n.parse().map_err(|_| bad())?;
    Ok((n, rest.strip_prefix('.').unwrap_or(rest).to_owned()))
}

fn spec_part(
    b: &mut BTreeMap<usize, SpecBuilder>,
    after: &str,
    key: &str,
    value: &str,
) -> Result<(), DefinitionError> {
    let (n, rest) = index(after, key)?;
    let spec = b.entry(n).or_default();
    if rest.is_empty() {
        spec.shortcut = Some(value.to_owned());
    } else if rest == "name" {
        spec.name = Some(value.to_owned());
    } else if let Some(arg) = rest.strip_prefix("args.") {
        spec.args.push((arg.to_owned(), value.to_owned()));
    } else {
        return Err(DefinitionError::new(format!("unknown key `{key}`")));
    }
    Ok(())
}

fn truthy(key: &str, v: &str) -> Result<bool, DefinitionError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(DefinitionError::new(format!(
            "`{key}` must be true or false, not `{v}`"
        ))),
    }
}

fn globs(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl RouteDocument {
    /// Builds a document from flat Spring keys; keys outside the gateway's namespaces are ignored.
    pub fn from_flat<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, DefinitionError> {
        let mut routes: BTreeMap<usize, RouteBuilder> = BTreeMap::new();
        let mut defaults: BTreeMap<usize, SpecBuilder> = BTreeMap::new();
        let mut discovery: Option<DiscoverySettings> = None;
        let mut cors: Option<Vec<CorsDefinition>> = None;
        for (key, value) in pairs {
            if let Some(after) = key.strip_prefix(ROUTES) {
                let (n, rest) = index(after, key)?;
                let r = routes.entry(n).or_default();
                match rest.as_str() {
                    "id" => r.id = Some(value.to_owned()),
                    "uri" => r.uri = Some(value.to_owned()),
                    "order" => r.order = Some(value.to_owned()),
                    _ => {
                        if let Some(a) = rest.strip_prefix("predicates[") {
                            spec_part(&mut r.predicates, a, key, value)?;
                        } else if let Some(a) = rest.strip_prefix("filters[") {
                            spec_part(&mut r.filters, a, key, value)?;
                        } else if let Some(m) = rest.strip_prefix("metadata.") {
                            r.metadata.insert(m.to_owned(), value.to_owned());
                        } else {
                            return Err(DefinitionError::new(format!("unknown route key `{key}`")));
                        }
                    }
                }
            } else if let Some(after) = key.strip_prefix(DEFAULT_FILTERS) {
                spec_part(&mut defaults, after, key, value)?;
            } else if let Some(k) = key.strip_prefix(LOCATOR) {
                let d = discovery.get_or_insert_with(DiscoverySettings::default);
                match k {
                    "enabled" => d.enabled = truthy(key, value)?,
                    "include" => d.include.extend(globs(value)),
                    "ignore" => d.ignore.extend(globs(value)),
                    _ if k.starts_with("include[") => d.include.extend(globs(value)),
                    _ if k.starts_with("ignore[") => d.ignore.extend(globs(value)),
                    // Spring's other locator keys (lower-case-service-id, url-expression…) are accepted and
                    // have fixed behaviour here: ids always match case-insensitively.
                    _ => {}
                }
            } else if let Some(k) = key.strip_prefix(GLOBALCORS) {
                let cors = cors.get_or_insert_with(Vec::new);
                let Some(rest) = k
                    .strip_prefix("cors-configurations.")
                    .or_else(|| k.strip_prefix("corsConfigurations."))
                else {
                    // `add-to-simple-url-handler-mapping`: global CORS always applies before routing here.
                    if k.eq_ignore_ascii_case("add-to-simple-url-handler-mapping")
                        || k.eq_ignore_ascii_case("addToSimpleUrlHandlerMapping")
                    {
                        truthy(key, value)?;
                        continue;
                    }
                    return Err(DefinitionError::new(format!("unknown key `{key}`")));
                };
                // `[/**].allowedOrigins` (the bracketed form keeps the pattern whole) or `/api.allowedOrigins`.
                let (pattern, setting) = match rest.strip_prefix('[') {
                    Some(r) => r.split_once("]."),
                    None => rest.split_once('.'),
                }
                .ok_or_else(|| DefinitionError::new(format!("bad CORS key `{key}`")))?;
                match cors.iter_mut().find(|c| c.pattern == pattern) {
                    Some(c) => c.settings.push((setting.to_owned(), value.to_owned())),
                    None => cors.push(CorsDefinition {
                        pattern: pattern.to_owned(),
                        settings: vec![(setting.to_owned(), value.to_owned())],
                    }),
                }
            } else if key == "zuul.ignored-services" || key.starts_with("zuul.ignored-services[") {
                discovery
                    .get_or_insert_with(DiscoverySettings::default)
                    .ignore
                    .extend(globs(value));
            }
        }
        let mut out = Vec::with_capacity(routes.len());
        let mut seen = std::collections::HashSet::new();
        for (n, r) in routes {
            let what = format!("spring.cloud.gateway.routes[{n}]");
            let id = r.id.unwrap_or_else(|| format!("route-{n}"));
            if !seen.insert(id.clone()) {
                return Err(DefinitionError::new(format!(
                    "{what}: duplicate route id `{id}`"
                )));
            }
            let uri = r.uri.ok_or_else(|| {
                DefinitionError::new(format!("{what} (`{id}`): `uri` is required"))
            })?;
            let order = match r.order {
                Some(o) => o.trim().parse().map_err(|_| {
                    DefinitionError::new(format!("{what}: order `{o}` is not an integer"))
                })?,
                None => 0,
            };
            let predicates = r
                .predicates
                .into_values()
                .map(|s| s.build(&format!("{what}.predicates")))
                .collect::<Result<_, _>>()?;
            let filters = r
                .filters
                .into_values()
                .map(|s| s.build(&format!("{what}.filters")))
                .collect::<Result<_, _>>()?;
            out.push(RouteDefinition {
                id,
                uri,
                predicates,
                filters,
                order,
                metadata: r.metadata,
            });
        }
        let default_filters = defaults
            .into_values()
            .map(|s| s.build("spring.cloud.gateway.default-filters"))
            .collect::<Result<_, _>>()?;
        Ok(RouteDocument {
            routes: out,
            default_filters,
            discovery,
            cors,
        })
    }

    /// Parses a route file: `.properties` files as properties, anything else as YAML (JSON included).
    pub fn parse(text: &str, properties: bool) -> Result<Self, DefinitionError> {
        let flat = if properties {
            flatten_properties(text)?
        } else {
            flatten_yaml(text)?
        };
        Self::from_flat(flat.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl RouteDefinition {
    /// A single route from an admin-API JSON body (SCG's actuator shape; shortcut strings allowed).
    pub fn from_json(id: &str, body: &serde_json::Value) -> Result<Self, DefinitionError> {
        let mut flat = Vec::new();
        flatten_json(body, "spring.cloud.gateway.routes[0]".to_owned(), &mut flat);
        flat.retain(|(k, _)| k != "spring.cloud.gateway.routes[0].id");
        flat.push((
            "spring.cloud.gateway.routes[0].id".to_owned(),
            id.to_owned(),
        ));
        let doc = RouteDocument::from_flat(flat.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        doc.routes
            .into_iter()
            .next()
            .ok_or_else(|| DefinitionError::new("empty route body"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_shortcut_and_expanded_forms_agree() {
        let short = r#"
spring:
  cloud:
    gateway:
      routes:
        - id: a
          uri: lb://users
          predicates:
            - Path=/a/**, /b/**
          filters:
            - StripPrefix=1
"#;
        let long = r#"
spring.cloud.gateway.routes:
  - id: a
    uri: lb://users
    predicates:
      - name: Path
        args:
          _genkey_0: /a/**
          _genkey_1: /b/**
    filters:
      - name: StripPrefix
        args: {_genkey_0: "1"}
"#;
        let props = "spring.cloud.gateway.routes[0].id=a\nspring.cloud.gateway.routes[0].uri=lb://users\n\
            spring.cloud.gateway.routes[0].predicates[0]=Path=/a/**, /b/**\n\
            spring.cloud.gateway.routes[0].filters[0]=StripPrefix=1\n";
        let a = RouteDocument::parse(short, false).unwrap();
        let b = RouteDocument::parse(long, false).unwrap();
        let c = RouteDocument::parse(props, true).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            a.routes[0].predicates[0].list("patterns"),
            vec!["/a/**", "/b/**"]
        );
    }

    #[test]
    fn errors_name_the_route() {
        let e = RouteDocument::parse("spring.cloud.gateway.routes[0].id=x\n", true).unwrap_err();
        assert!(e.to_string().contains("`uri` is required"), "{e}");
    }

    #[test]
    fn json_body() {
        let v = serde_json::json!({"uri": "http://127.0.0.1:1", "predicates": ["Path=/x/**"],
            "filters": [{"name": "SetStatus", "args": {"status": "418"}}], "order": 3});
        let r = RouteDefinition::from_json("j", &v).unwrap();
        assert_eq!(r.order, 3);
        assert_eq!(r.filters[0].arg("status", 0), Some("418"));
    }
}
