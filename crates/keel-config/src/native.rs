//! The native backend: a plain directory, read whole into memory on each refresh.
//!
//! Symlinks are recorded as refused and never followed, so nothing outside the directory is read.

use std::path::Path;

use crate::snapshot::FileSet;

const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Reads every regular file under `dir` (hidden entries such as `.git` skipped).
pub fn read_dir(dir: &Path) -> std::io::Result<FileSet> {
    let mut files = FileSet::default();
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = format!("{prefix}{name}");
            // file_type() does not follow symlinks.
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                files.refused.insert(rel);
            } else if kind.is_dir() {
                pending.push((entry.path(), format!("{rel}/")));
            } else if kind.is_file() {
                if entry.metadata()?.len() > MAX_FILE_BYTES {
                    files.refused.insert(rel);
                    continue;
                }
                files
                    .blobs
                    .insert(rel, bytes::Bytes::from(std::fs::read(entry.path())?));
            }
        }
    }
    Ok(files)
}

/// A digest of the file set, standing in for a commit id.
pub fn digest(files: &FileSet) -> String {
    use sha1::Digest as _;
    let mut hasher = sha1::Sha1::new();
    for (path, bytes) in &files.blobs {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hex::encode(hasher.finalize())
}
