//! The served state: per label, the last good snapshot. Swapped whole by the refresher, read
//! lock-free by requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use keel_properties::ValidationError;

use crate::snapshot::{RefKind, Snapshot};

/// A commit that failed validation and is kept out.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub label: String,
    pub commit: String,
    pub errors: Vec<ValidationError>,
}

/// One branch or tag.
#[derive(Clone, Debug)]
pub struct LabelState {
    pub kind: RefKind,
    /// What requests get: the newest version that validated (or the only one there is).
    pub served: Arc<Snapshot>,
    /// The newest version seen, which may be rejected.
    pub latest: String,
    /// Set while `latest` is kept out.
    pub rejected: Option<Rejected>,
}

/// Everything requests read, swapped atomically after each refresh.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub labels: BTreeMap<String, LabelState>,
    /// Bumped on every swap.
    pub generation: u64,
    pub fetched_at: Option<SystemTime>,
    pub fetch_error: Option<String>,
}

impl State {
    /// A branch or tag by name, with Keel's `main`↔`master` fallback (the Python client always
    /// asks for `master`; new repositories only have `main`).
    pub fn label(&self, label: &str) -> Option<&LabelState> {
        if let Some(l) = self.labels.get(label) {
            return Some(l);
        }
        let fallback = match label {
            "master" => "main",
            "main" => "master",
            _ => return None,
        };
        self.labels.get(fallback)
    }

    /// A ref tip whose commit id starts with `hex` (a commit label that happens to be a tip).
    pub fn tip_by_commit(&self, hex: &str) -> Option<&Arc<Snapshot>> {
        if hex.len() < 7 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let hex = hex.to_ascii_lowercase();
        self.labels
            .values()
            .map(|l| &l.served)
            .find(|s| s.id.starts_with(&hex))
    }

    pub fn rejected(&self) -> Vec<Rejected> {
        self.labels
            .values()
            .filter_map(|l| l.rejected.clone())
            .collect()
    }
}
