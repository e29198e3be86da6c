//! The dashboard's view of the config centre: merged configuration with the winning property
//! source per key, commit history, diffs, watchers and served versions per label.

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::transport::{SourceError, Transport};

/// One key of the merged configuration and the property source it comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedEntry {
    pub key: String,
    pub value: Value,
    /// The first (highest-precedence) property source that has the key.
    pub source: String,
    /// Lower-precedence sources that also set the key (shadowed).
    pub shadowed: Vec<String>,
}

/// An application's merged configuration at one label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedView {
    pub application: String,
    pub profiles: Vec<String>,
    pub label: Option<String>,
    pub version: Option<String>,
    /// Property source names, highest precedence first.
    pub sources: Vec<String>,
    pub entries: Vec<MergedEntry>,
}

impl MergedView {
    /// Folds a Spring `Environment` document: the first source holding a key wins.
    pub fn from_environment(env: &Value) -> Self {
        let mut entries: Vec<MergedEntry> = Vec::new();
        let mut sources = Vec::new();
        for ps in env["propertySources"].as_array().into_iter().flatten() {
            let name = ps["name"].as_str().unwrap_or("?").to_owned();
            for (key, value) in ps["source"].as_object().into_iter().flatten() {
                match entries.iter_mut().find(|e| &e.key == key) {
                    Some(e) => e.shadowed.push(name.clone()),
                    None => entries.push(MergedEntry {
                        key: key.clone(),
                        value: value.clone(),
                        source: name.clone(),
                        shadowed: Vec::new(),
                    }),
                }
            }
            sources.push(name);
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        MergedView {
            application: env["name"].as_str().unwrap_or_default().to_owned(),
            profiles: env["profiles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect(),
            label: env["label"].as_str().map(str::to_owned),
            version: env["version"].as_str().map(str::to_owned),
            sources,
            entries,
        }
    }
}

/// Where the dashboard and `keel ctl` read the config centre. History, diff, watchers and
/// status keep the config centre's JSON shapes (`/keel/v1/{history,diff,watchers,status}`).
pub trait ConfigView: Send + Sync {
    fn merged<'a>(
        &'a self,
        app: &'a str,
        profile: &'a str,
        label: Option<&'a str>,
    ) -> BoxFuture<'a, Result<MergedView, SourceError>>;
    fn history<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Value, SourceError>>;
    fn diff<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        app: &'a str,
        profile: &'a str,
    ) -> BoxFuture<'a, Result<Value, SourceError>>;
    fn watchers(&self) -> BoxFuture<'_, Result<Value, SourceError>>;
    fn status(&self) -> BoxFuture<'_, Result<Value, SourceError>>;
}

/// The config centre's HTTP API, over the network ([`Transport::http`]) or into the router of
/// the config centre in this process ([`Transport::local`]).
#[derive(Clone, Debug)]
pub struct ConfigClient {
    transport: Transport,
}

impl ConfigClient {
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    pub fn base(&self) -> &str {
        self.transport.base()
    }
}

/// Percent-encodes one path segment or query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'('
            | b')'
            | b',' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl ConfigView for ConfigClient {
    fn merged<'a>(
        &'a self,
        app: &'a str,
        profile: &'a str,
        label: Option<&'a str>,
    ) -> BoxFuture<'a, Result<MergedView, SourceError>> {
        Box::pin(async move {
            let mut path = format!("/{}/{}", encode(app), encode(profile));
            if let Some(label) = label {
                // Spring's convention for a `/` inside a label.
                path.push('/');
                path.push_str(&encode(&label.replace('/', "(_)")));
            }
            let env: Value = self.transport.get(&path).await?.json()?;
            Ok(MergedView::from_environment(&env))
        })
    }

    fn history<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<Value, SourceError>> {
        Box::pin(async move {
            self.transport
                .get(&format!("/keel/v1/history/{}", encode(app)))
                .await?
                .json()
        })
    }

    fn diff<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
        app: &'a str,
        profile: &'a str,
    ) -> BoxFuture<'a, Result<Value, SourceError>> {
        Box::pin(async move {
            let path = format!(
                "/keel/v1/diff/{}/{}?application={}&profile={}",
                encode(from),
                encode(to),
                encode(app),
                encode(profile)
            );
            self.transport.get(&path).await?.json()
        })
    }

    fn watchers(&self) -> BoxFuture<'_, Result<Value, SourceError>> {
        Box::pin(async move { self.transport.get("/keel/v1/watchers").await?.json() })
    }

    fn status(&self) -> BoxFuture<'_, Result<Value, SourceError>> {
        Box::pin(async move { self.transport.get("/keel/v1/status").await?.json() })
    }
}
