//! The git backend: a bare mirror of the remote in a persistent basedir, read with gix.
//!
//! Every call here blocks (gix is synchronous); callers run it on `spawn_blocking`, never on a
//! request. Files are read from tree objects, never from a worktree, so a request can only ever
//! see blobs that are part of a commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::bstr::ByteSlice;

use crate::snapshot::{FileSet, RefKind};

/// Files larger than this are left out of snapshots (config files are small; this bounds memory).
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {action} {target}: {message}")]
    Git {
        action: &'static str,
        target: String,
        message: String,
    },
}

fn err(
    action: &'static str,
    target: impl std::fmt::Display,
) -> impl FnOnce(gix::Error) -> GitError {
    let target = target.to_string();
    move |e| GitError::Git {
        action,
        target,
        message: e.to_string(),
    }
}

/// A ref tip: `main` (branch) or `v1` (tag), and the commit it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefTip {
    pub name: String,
    pub kind: RefKind,
    pub commit: gix::ObjectId,
}

/// A bare mirror of `uri` at `path`.
/// Holds only paths: each operation opens the repository afresh on its own thread (gix
/// repositories are not `Sync` without the `parallel` feature, and opening costs little next to
/// a fetch).
pub struct Mirror {
    uri: String,
    path: PathBuf,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("uri", &self.uri)
            .field("path", &self.path)
            .finish()
    }
}

/// Where the mirror of `uri` lives under `basedir`: a stable name per URI, so switching
/// `--git-uri` never reuses another repository's objects.
pub fn mirror_path(basedir: &Path, uri: &str) -> PathBuf {
    use sha1::Digest as _;
    let stem = uri
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git");
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = sha1::Sha1::digest(uri.as_bytes());
    basedir.join(format!("{stem}-{}.git", hex::encode(&digest[..4])))
}

/// Turns a local path into a `file://` URL gix can fetch from; URLs pass through.
fn fetch_url(uri: &str) -> String {
    if uri.contains("://") {
        return uri.to_owned();
    }
    let path = Path::new(uri);
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    format!("file://{}", abs.display())
}

impl Mirror {
    /// Opens the mirror under `basedir`, creating an empty bare repository the first time.
    /// An existing mirror is reused as is (never wiped): it is the standby when the remote is down.
    pub fn open_or_init(basedir: &Path, uri: &str) -> Result<Self, GitError> {
        let path = mirror_path(basedir, uri);
        if path.join("HEAD").exists() {
            gix::open(&path).map_err(|e| GitError::Git {
                action: "open",
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        } else {
            std::fs::create_dir_all(&path).map_err(|e| GitError::Git {
                action: "create",
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
            gix::init_bare(&path).map_err(|e| GitError::Git {
                action: "init",
                target: path.display().to_string(),
                message: e.to_string(),
            })?;
        }
        Ok(Self {
            uri: uri.to_owned(),
            path,
        })
    }

    fn repo(&self) -> Result<gix::Repository, GitError> {
        gix::open(&self.path).map_err(|e| GitError::Git {
            action: "open",
            target: self.path.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Fetches every branch and tag of the remote into the mirror's own refs.
    pub fn fetch(&self) -> Result<(), GitError> {
        let repo = self.repo()?;
        let url = fetch_url(&self.uri);
        let remote = repo
            .remote_at(url.as_str())
            .map_err(err("remote", &self.uri))?
            .with_refspecs(
                ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                gix::remote::Direction::Fetch,
            )
            .map_err(err("refspec", &self.uri))?;
        let interrupt = AtomicBool::new(false);
        remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(err("connect", &self.uri))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(err("fetch", &self.uri))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(err("fetch", &self.uri))?;
        Ok(())
    }

    /// Branch and tag tips (annotated tags peeled to their commit).
    pub fn tips(&self) -> Result<Vec<RefTip>, GitError> {
        let repo = self.repo()?;
        let platform = repo.references().map_err(err("list refs", &self.uri))?;
        let mut out = Vec::new();
        for (prefix, kind) in [
            ("refs/heads/", RefKind::Branch),
            ("refs/tags/", RefKind::Tag),
        ] {
            let iter = platform
                .prefixed(prefix)
                .map_err(err("list refs", &self.uri))?;
            for reference in iter.flatten() {
                let name = reference.name().as_bstr().to_str_lossy().into_owned();
                let Some(short) = name.strip_prefix(prefix) else {
                    continue;
                };
                let mut reference = reference;
                let Ok(id) = reference.peel_to_id() else {
                    continue;
                };
                // Tags may point at trees or blobs; only commits can be served.
                let Ok(commit) = repo.find_commit(id.detach()) else {
                    continue;
                };
                out.push(RefTip {
                    name: short.to_owned(),
                    kind,
                    commit: commit.id,
                });
            }
        }
        Ok(out)
    }

    /// Resolves a full or abbreviated commit id (at least 7 hex digits) present in the mirror.
    pub fn find_commit(&self, hex: &str) -> Option<gix::ObjectId> {
        if hex.len() < 7 || hex.len() > 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let repo = self.repo().ok()?;
        let id = repo.rev_parse_single(hex).ok()?;
        let commit = repo.find_commit(id.detach()).ok()?;
        Some(commit.id)
    }

    /// Every blob of `commit`'s tree, by path. Symlinks and submodules are recorded as refused
    /// entries, so they are never followed (a symlink's target is only text in git).
    pub fn files(&self, commit: gix::ObjectId) -> Result<FileSet, GitError> {
        let repo = self.repo()?;
        let target = commit.to_string();
        let tree = repo
            .find_commit(commit)
            .map_err(err("read commit", &target))?
            .tree()
            .map_err(err("read tree", &target))?;
        let mut recorder = gix::traverse::tree::Recorder::default();
        tree.traverse()
            .breadthfirst(&mut recorder)
            .map_err(err("walk tree", &target))?;
        let mut files = FileSet::default();
        for entry in recorder.records {
            let path = entry.filepath.to_str_lossy().into_owned();
            if entry.mode.is_tree() {
                continue;
            }
            if !entry.mode.is_blob() {
                files.refused.insert(path);
                continue;
            }
            let Ok(header) = repo.find_header(entry.oid) else {
                continue;
            };
            if header.size() > MAX_FILE_BYTES {
                files.refused.insert(path);
                continue;
            }
            let blob = repo.find_blob(entry.oid).map_err(err("read blob", &path))?;
            files
                .blobs
                .insert(path, bytes::Bytes::from(blob.data.clone()));
        }
        Ok(files)
    }

    /// Commits reachable from `tip`, newest first, with the paths each changed against its first
    /// parent (all paths for a root commit). At most `limit` commits are walked.
    pub fn log(&self, tip: gix::ObjectId, limit: usize) -> Result<Vec<LogEntry>, GitError> {
        let repo = self.repo()?;
        let target = tip.to_string();
        let walk = repo
            .rev_walk([tip])
            .all()
            .map_err(err("walk history", &target))?;
        let mut out = Vec::new();
        for info in walk.take(limit) {
            let info = info.map_err(|e| GitError::Git {
                action: "walk history",
                target: target.clone(),
                message: e.to_string(),
            })?;
            let commit = repo
                .find_commit(info.id)
                .map_err(err("read commit", info.id))?;
            let blobs = blob_ids(&repo, info.id)?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let parent_blobs = match parent {
                Some(p) => blob_ids(&repo, p)?,
                None => Default::default(),
            };
            let mut changed: Vec<String> = blobs
                .iter()
                .filter(|(path, id)| parent_blobs.get(*path) != Some(*id))
                .map(|(path, _)| path.clone())
                .chain(
                    parent_blobs
                        .keys()
                        .filter(|p| !blobs.contains_key(*p))
                        .cloned(),
                )
                .collect();
            changed.sort();
            let author = commit.author().map_err(err("read author", info.id))?;
            let seconds = author.time().map(|t| t.seconds).unwrap_or(0);
            let message = commit
                .message_raw_sloppy()
                .to_str_lossy()
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            out.push(LogEntry {
                commit: info.id,
                author: author.name.to_str_lossy().into_owned(),
                seconds,
                message,
                changed,
            });
        }
        Ok(out)
    }
}

/// One commit in [`Mirror::log`].
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub commit: gix::ObjectId,
    pub author: String,
    /// Author time, seconds since the Unix epoch.
    pub seconds: i64,
    /// The first line of the message.
    pub message: String,
    /// Paths changed against the first parent.
    pub changed: Vec<String>,
}

fn blob_ids(
    repo: &gix::Repository,
    commit: gix::ObjectId,
) -> Result<std::collections::BTreeMap<String, gix::ObjectId>, GitError> {
    let target = commit.to_string();
    let tree = repo
        .find_commit(commit)
        .map_err(err("read commit", &target))?
        .tree()
        .map_err(err("read tree", &target))?;
    let mut recorder = gix::traverse::tree::Recorder::default();
    tree.traverse()
        .breadthfirst(&mut recorder)
        .map_err(err("walk tree", &target))?;
    Ok(recorder
        .records
        .into_iter()
        .filter(|e| !e.mode.is_tree())
        .map(|e| (e.filepath.to_str_lossy().into_owned(), e.oid))
        .collect())
}
