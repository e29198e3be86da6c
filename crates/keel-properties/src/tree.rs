//! A parsed snapshot of one commit's config files, and Spring's property-source ordering over it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::activation::Activation;
use crate::environment::Environment;
use crate::error::{EnvironmentError, ParseError};
use crate::naming::SourceNaming;
use crate::request::{AppNames, Label, Profiles};
use crate::source::{PropertySource, Source};
use crate::{flatten, properties, yaml};

/// Extensions Boot loads for one base name, in the order its resolver lists them; sources are
/// later taken in reverse, so `.properties` beats `.yml` beats `.yaml`. (`.xml` is not supported.)
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "properties"];

/// What to build an Environment for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvironmentQuery {
    /// `{application}` (comma list).
    pub applications: AppNames,
    /// `{profiles}` (comma list).
    pub profiles: Profiles,
    /// The label being served, after defaulting (`main`); echoed in the Environment and
    /// substituted for `{label}` in search paths.
    pub label: Option<Label>,
}

/// Where config files live in the tree and how sources are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLayout {
    /// Source naming for the backend.
    pub naming: SourceNaming,
    /// Extra search paths (the root is always searched first); may hold `{application}`,
    /// `{profile}`, `{label}` placeholders and Ant wildcards (`*`, `**`, `?`).
    pub search_paths: Vec<String>,
}

/// One document of a config file.
#[derive(Debug, Clone)]
pub(crate) struct ParsedDocument {
    pub(crate) source: Arc<Source>,
    activation: Activation,
}

#[derive(Debug, Clone)]
enum FileEntry {
    Parsed(Vec<ParsedDocument>),
    Invalid(ParseError),
}

/// The config files of one commit, parsed once. Cheap to query concurrently (`&self` only).
#[derive(Debug, Clone, Default)]
pub struct ConfigTree {
    files: BTreeMap<String, FileEntry>,
    dirs: BTreeSet<String>,
}

/// Whether a path names a file Boot loads as configuration.
pub fn is_config_file(path: &str) -> bool {
    EXTENSIONS
        .iter()
        .any(|ext| path.rsplit_once('.').is_some_and(|(_, e)| e == *ext))
}

impl ConfigTree {
    /// Parses the config files (`.yml`, `.yaml`, `.properties`) among `files` (path relative to
    /// the tree root → bytes). Other files only count for search-path directory existence.
    /// Files that fail to parse are kept as errors: see [`ConfigTree::parse_errors`].
    pub fn from_files<I, P, B>(files: I) -> Self
    where
        I: IntoIterator<Item = (P, B)>,
        P: AsRef<str>,
        B: AsRef<[u8]>,
    {
        let mut tree = ConfigTree::default();
        for (path, bytes) in files {
            let path = path
                .as_ref()
                .trim_start_matches("./")
                .trim_start_matches('/');
            let mut dir_end = 0;
            while let Some(i) = path[dir_end..].find('/') {
                dir_end += i + 1;
                tree.dirs.insert(path[..dir_end].to_owned());
            }
            if !is_config_file(path) {
                continue;
            }
            let entry = match parse_file(path, bytes.as_ref()) {
                Ok(docs) => FileEntry::Parsed(docs),
                Err(e) => FileEntry::Invalid(e.in_file(path)),
            };
            tree.files.insert(path.to_owned(), entry);
        }
        tree
    }

    /// Files that failed to parse.
    pub fn parse_errors(&self) -> impl Iterator<Item = &ParseError> {
        self.files.values().filter_map(|f| match f {
            FileEntry::Invalid(e) => Some(e),
            FileEntry::Parsed(_) => None,
        })
    }

    /// Every parsed document, with its file path (for validation).
    pub(crate) fn documents(&self) -> impl Iterator<Item = (&str, &ParsedDocument)> {
        self.files.iter().flat_map(|(path, f)| match f {
            FileEntry::Parsed(docs) => docs.iter().map(|d| (path.as_str(), d)).collect::<Vec<_>>(),
            FileEntry::Invalid(_) => Vec::new(),
        })
    }

    /// Builds the Environment Spring Cloud Config would serve (before decryption; `version`
    /// is left `None` for the caller to fill in).
    pub fn environment(
        &self,
        query: &EnvironmentQuery,
        layout: &RepoLayout,
    ) -> Result<Environment, EnvironmentError> {
        let accepted = query.profiles.accepted();
        let locations = self.locations(query, &layout.search_paths);
        let names = config_names(query.applications.as_str());

        let candidates = |profile: Option<&str>| -> Vec<(String, &str)> {
            let mut out: Vec<(String, &str)> = Vec::new();
            for loc in &locations {
                for name in &names {
                    for ext in EXTENSIONS {
                        let path = match profile {
                            Some(p) => format!("{loc}{name}-{p}.{ext}"),
                            None => format!("{loc}{name}.{ext}"),
                        };
                        if !out.iter().any(|(p, _)| *p == path) {
                            out.push((path, loc.as_str()));
                        }
                    }
                }
            }
            out
        };
        let plain = candidates(None);
        let mut specific: Vec<(String, &str)> = Vec::new();
        for p in &accepted {
            for c in candidates(Some(p)) {
                // Boot loads a resource once, in the first (non-profile) phase that names it.
                if !plain.iter().any(|(q, _)| *q == c.0) && !specific.iter().any(|(q, _)| *q == c.0)
                {
                    specific.push(c);
                }
            }
        }

        let mut sources = Vec::new();
        for (path, loc) in specific.iter().rev().chain(plain.iter().rev()) {
            let docs = match self.files.get(path) {
                None => continue,
                Some(FileEntry::Invalid(e)) => {
                    return Err(EnvironmentError::InvalidFile(e.clone()));
                }
                Some(FileEntry::Parsed(docs)) => docs,
            };
            for (index, doc) in docs.iter().enumerate().rev() {
                if !doc.activation.is_active(&accepted) {
                    continue;
                }
                let name = if docs.len() == 1 {
                    layout.naming.single(path)
                } else {
                    layout.naming.document(path, loc, index)
                };
                sources.push(PropertySource {
                    name,
                    source: Arc::clone(&doc.source),
                });
            }
        }

        Ok(Environment {
            name: query.applications.as_str().to_owned(),
            profiles: query.profiles.requested().to_vec(),
            label: query.label.as_ref().map(|l| l.as_str().to_owned()),
            version: None,
            state: None,
            property_sources: sources,
        })
    }

    /// Search locations as directory prefixes (`""` is the root), root first, expanded for every
    /// application × profile, keeping only directories that exist (`AbstractScmAccessor`).
    fn locations(&self, query: &EnvironmentQuery, search_paths: &[String]) -> Vec<String> {
        let profiles: Vec<String> = if query.profiles.requested().is_empty() {
            vec!["default".to_owned()]
        } else {
            query.profiles.requested().to_vec()
        };
        let mut out: Vec<String> = Vec::new();
        let patterns = std::iter::once("/").chain(search_paths.iter().map(String::as_str));
        for pattern in patterns {
            for profile in &profiles {
                for app in query.applications.names() {
                    let mut value = pattern
                        .replace("{application}", app)
                        .replace("{profile}", profile);
                    if let Some(label) = &query.label {
                        value = value.replace("{label}", label.as_str());
                    }
                    for dir in self.matching_dirs(&value) {
                        if !out.contains(&dir) {
                            out.push(dir);
                        }
                    }
                }
            }
        }
        out
    }

    fn matching_dirs(&self, pattern: &str) -> Vec<String> {
        let mut dir = pattern.trim_start_matches('/').to_owned();
        if !dir.is_empty() && !dir.ends_with('/') {
            dir.push('/');
        }
        if dir.split('/').any(|seg| seg == ".." || seg == ".") || dir.contains('{') {
            return Vec::new();
        }
        if dir.is_empty() {
            return vec![String::new()];
        }
        if dir.contains(['*', '?']) {
            let pat: Vec<&str> = dir.trim_end_matches('/').split('/').collect();
            return self
                .dirs
                .iter()
                .filter(|d| {
                    ant_match(
                        &pat,
                        &d.trim_end_matches('/').split('/').collect::<Vec<_>>(),
                    )
                })
                .cloned()
                .collect();
        }
        if self.dirs.contains(&dir) {
            vec![dir]
        } else {
            Vec::new()
        }
    }
}

/// `spring.config.name` as SCC sets it: `application,<name>` unless the name already starts
/// with `application`; duplicates collapse to their first position.
fn config_names(app: &str) -> Vec<String> {
    let config = if app.starts_with("application") {
        app.to_owned()
    } else {
        format!("application,{app}")
    };
    let mut out: Vec<String> = Vec::new();
    for n in config.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == n) {
            out.push(n.to_owned());
        }
    }
    out
}

fn parse_file(path: &str, bytes: &[u8]) -> Result<Vec<ParsedDocument>, ParseError> {
    let sources = if path.ends_with(".properties") {
        properties::parse(bytes)?
    } else {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ParseError::at(0, 0, format!("not valid UTF-8: {e}")))?;
        yaml::load(text)?
            .into_iter()
            .map(flatten::flatten_document)
            .collect()
    };
    Ok(sources
        .into_iter()
        .map(|source| ParsedDocument {
            activation: Activation::of(&source),
            source: Arc::new(source),
        })
        .collect())
}

/// Ant-style path matching by segments: `**` spans any number of segments, `*` and `?` stay in one.
fn ant_match(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|i| ant_match(rest, &path[i..])),
        Some((seg, rest)) => path.split_first().is_some_and(|(p, prest)| {
            segment_match(seg.as_bytes(), p.as_bytes()) && ant_match(rest, prest)
        }),
    }
}

fn segment_match(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| segment_match(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && segment_match(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && segment_match(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_follow_native_repository() {
        assert_eq!(config_names("foo"), ["application", "foo"]);
        assert_eq!(config_names("foo,bar"), ["application", "foo", "bar"]);
        assert_eq!(config_names("application"), ["application"]);
        assert_eq!(config_names("foo,application"), ["application", "foo"]);
    }

    #[test]
    fn ant_patterns() {
        let m = |p: &str, s: &str| {
            ant_match(
                &p.split('/').collect::<Vec<_>>(),
                &s.split('/').collect::<Vec<_>>(),
            )
        };
        assert!(m("foo*", "foobar"));
        assert!(!m("foo*", "foo/bar"));
        assert!(m("**", "a/b"));
        assert!(m("a/**/c", "a/c"));
        assert!(m("a/**/c", "a/x/y/c"));
        assert!(m("b?r", "bar"));
    }
}
