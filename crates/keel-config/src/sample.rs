//! The sample configuration repository that `keel standalone` creates on first start.

use std::path::{Path, PathBuf};

/// The files of the first commit: shared defaults, a demo service and the gateway's routes.
const FILES: &[(&str, &str)] = &[
    ("application.yml", include_str!("sample/application.yml")),
    ("demo-service.yml", include_str!("sample/demo-service.yml")),
    (
        "demo-service-dev.yml",
        include_str!("sample/demo-service-dev.yml"),
    ),
    ("keel-gateway.yml", include_str!("sample/keel-gateway.yml")),
];

#[derive(Debug, thiserror::Error)]
#[error("create sample config repository {path}: {message}")]
pub struct SampleRepoError {
    path: PathBuf,
    message: String,
}

/// Creates a bare git repository with sample configuration at `path`, on branch `main`, unless
/// something already exists there. Existing repositories are never touched.
pub fn ensure_sample_repo(path: &Path) -> Result<PathBuf, SampleRepoError> {
    let fail = |message: String| SampleRepoError {
        path: path.to_owned(),
        message,
    };
    if path.exists() {
        return Ok(path.to_owned());
    }
    std::fs::create_dir_all(path).map_err(|e| fail(e.to_string()))?;
    let repo = gix::init_bare(path).map_err(|e| fail(e.to_string()))?;
    let mut tree = repo
        .edit_tree(gix::ObjectId::empty_tree(repo.object_hash()))
        .map_err(|e| fail(e.to_string()))?;
    for (name, content) in FILES {
        let blob = repo.write_blob(content).map_err(|e| fail(e.to_string()))?;
        tree.upsert(*name, gix::object::tree::EntryKind::Blob, blob)
            .map_err(|e| fail(e.to_string()))?;
    }
    let tree = tree.write().map_err(|e| fail(e.to_string()))?;
    let signature = gix::actor::Signature {
        name: "keel".into(),
        email: "keel@localhost".into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let mut time = gix::date::parse::TimeBuf::default();
    let sig = signature.to_ref(&mut time);
    repo.commit_as(
        sig,
        sig,
        "refs/heads/main",
        "Sample configuration created by keel standalone",
        tree,
        std::iter::empty::<gix::ObjectId>(),
    )
    .map_err(|e| fail(e.to_string()))?;
    std::fs::write(path.join("HEAD"), "ref: refs/heads/main\n").map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %path.display(), "created sample configuration repository");
    Ok(path.to_owned())
}
