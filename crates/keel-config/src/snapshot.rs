//! One version of the configuration, parsed once and shared immutably by every request.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use keel_properties::{ConfigTree, Decryptor, ValidationError};

/// Whether a label named a branch or a tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    Branch,
    Tag,
}

/// The files of one version, by path relative to the repository root.
#[derive(Clone, Debug, Default)]
pub struct FileSet {
    pub blobs: BTreeMap<String, Bytes>,
    /// Entries that are never served: symlinks, submodules, oversized blobs.
    pub refused: BTreeSet<String>,
}

/// A parsed version: its id, its files and its config tree.
#[derive(Debug)]
pub struct Snapshot {
    /// The commit id (git) or a content digest (native); the watch stream's event id.
    pub id: String,
    /// What `Environment.version` shows: the commit id for git, `null` for native.
    pub version: Option<String>,
    pub files: FileSet,
    pub tree: ConfigTree,
}

impl Snapshot {
    pub fn new(id: String, version: Option<String>, files: FileSet) -> Self {
        let tree =
            ConfigTree::from_files(files.blobs.iter().map(|(p, b)| (p.as_str(), b.as_ref())));
        Self {
            id,
            version,
            files,
            tree,
        }
    }

    /// Problems that keep this version from replacing the last good one.
    pub fn validate(&self, decryptor: Option<&dyn Decryptor>) -> Vec<ValidationError> {
        self.tree.validate(decryptor)
    }

    /// A file's bytes, or `None` when it is absent or refused (a symlink, say).
    pub fn file(&self, path: &str) -> Option<&Bytes> {
        if self.files.refused.contains(path) {
            return None;
        }
        self.files.blobs.get(path)
    }
}
