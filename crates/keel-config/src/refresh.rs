//! Building the next served state: fetch, read new tips, validate, keep the last good version.
//!
//! Runs on a blocking thread, off the request path. Requests keep reading the previous state
//! until the new one is swapped in whole.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use keel_properties::Decryptor;

use crate::git::Mirror;
use crate::native;
use crate::snapshot::{RefKind, Snapshot};
use crate::store::{LabelState, Rejected, State};

/// Where versions come from.
#[derive(Debug, Clone)]
pub enum Origin {
    Git(Arc<Mirror>),
    Native(PathBuf),
}

/// One version before validation decides whether it is served.
struct Tip {
    name: String,
    kind: RefKind,
    id: String,
    build: Option<Box<dyn FnOnce() -> Result<Snapshot, String>>>,
}

/// Fetches (when `fetch`) and builds the state that follows `prev`.
pub fn next_state(
    origin: &Origin,
    prev: &State,
    decryptor: Option<&dyn Decryptor>,
    now: SystemTime,
    fetch: bool,
) -> State {
    let mut next = State {
        labels: Default::default(),
        generation: prev.generation + 1,
        fetched_at: prev.fetched_at,
        fetch_error: None,
    };
    let tips = match origin {
        Origin::Git(mirror) => {
            if fetch {
                match mirror.fetch() {
                    Ok(()) => next.fetched_at = Some(now),
                    Err(e) => {
                        tracing::warn!(uri = mirror.uri(), error = %e, "fetch failed; serving the local mirror");
                        next.fetch_error = Some(e.to_string());
                    }
                }
            }
            match mirror.tips() {
                Ok(tips) => tips
                    .into_iter()
                    .map(|t| {
                        let m = Arc::clone(mirror);
                        let commit = t.commit;
                        Tip {
                            name: t.name,
                            kind: t.kind,
                            id: commit.to_string(),
                            build: Some(Box::new(move || {
                                let files = m.files(commit).map_err(|e| e.to_string())?;
                                Ok(Snapshot::new(
                                    commit.to_string(),
                                    Some(commit.to_string()),
                                    files,
                                ))
                            })),
                        }
                    })
                    .collect(),
                Err(e) => {
                    next.fetch_error = Some(e.to_string());
                    Vec::new()
                }
            }
        }
        Origin::Native(dir) => match native::read_dir(dir) {
            Ok(files) => {
                next.fetched_at = Some(now);
                let id = native::digest(&files);
                vec![Tip {
                    name: "main".into(),
                    kind: RefKind::Branch,
                    id: id.clone(),
                    build: Some(Box::new(move || Ok(Snapshot::new(id, None, files)))),
                }]
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read native config directory");
                next.fetch_error = Some(format!("read {}: {e}", dir.display()));
                Vec::new()
            }
        },
    };
    if tips.is_empty() && next.fetch_error.is_some() {
        // Keep serving what we had rather than nothing.
        next.labels = prev.labels.clone();
        return next;
    }

    let mut built: HashMap<String, Result<Arc<Snapshot>, String>> = HashMap::new();
    for mut tip in tips {
        // A branch and a tag with the same name: the branch wins, as in `git checkout`.
        if next
            .labels
            .get(&tip.name)
            .is_some_and(|l| l.kind == RefKind::Branch)
        {
            continue;
        }
        let old = prev.labels.get(&tip.name);
        if let Some(old) = old.filter(|o| o.latest == tip.id) {
            next.labels.insert(tip.name, old.clone());
            continue;
        }
        let snapshot = built
            .entry(tip.id.clone())
            .or_insert_with(|| {
                let build = tip.build.take().expect("each tip is built at most once");
                build().map(Arc::new)
            })
            .clone();
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(label = %tip.name, commit = %tip.id, error = %e, "cannot read version");
                if let Some(old) = old {
                    next.labels.insert(tip.name, old.clone());
                }
                continue;
            }
        };
        let errors = snapshot.validate(decryptor);
        let state = if errors.is_empty() {
            LabelState {
                kind: tip.kind,
                served: snapshot,
                latest: tip.id,
                rejected: None,
            }
        } else {
            for e in &errors {
                tracing::warn!(label = %tip.name, commit = %tip.id, file = %e.file, error = %e.message, "invalid configuration kept out");
            }
            let rejected = Rejected {
                label: tip.name.clone(),
                commit: tip.id.clone(),
                errors,
            };
            match old {
                // Last-known-good: the previous version keeps being served.
                Some(old) => LabelState {
                    kind: tip.kind,
                    served: Arc::clone(&old.served),
                    latest: tip.id,
                    rejected: Some(rejected),
                },
                // Nothing better to serve; requests that need a broken file get 503.
                None => LabelState {
                    kind: tip.kind,
                    served: snapshot,
                    latest: tip.id,
                    rejected: Some(rejected),
                },
            }
        };
        next.labels.insert(tip.name, state);
    }
    next
}
