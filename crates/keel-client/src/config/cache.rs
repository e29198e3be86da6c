//! The disk cache: the last Environment JSON per (application, profile, label), one file each,
//! written atomically, read at start only when every server is down.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but letters, digits, `-`, `_` and `.` is encoded, so `@` separates the parts
/// unambiguously and no part can name a directory.
const FILE_PART: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

#[derive(Debug, Clone)]
pub(crate) struct DiskCache {
    path: PathBuf,
}

impl DiskCache {
    pub fn new(dir: &Path, application: &str, profile: &str, label: Option<&str>) -> Self {
        let part = |s: &str| {
            // `.` and `..` alone would still be path components once joined.
            let encoded = utf8_percent_encode(s, FILE_PART).to_string();
            encoded.replace('.', "%2E")
        };
        let name = format!(
            "{}@{}@{}.json",
            part(application),
            part(profile),
            label.map_or_else(|| "%40default".to_owned(), part)
        );
        Self {
            path: dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn load(&self) -> Option<String> {
        tokio::fs::read_to_string(&self.path).await.ok()
    }

    /// Writes a temporary file and renames it over the old one, so a crash never leaves a
    /// half-written cache.
    pub async fn store(&self, body: &str) {
        let result = async {
            if let Some(dir) = self.path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            let tmp = self.path.with_extension("json.tmp");
            tokio::fs::write(&tmp, body).await?;
            tokio::fs::rename(&tmp, &self.path).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the config cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_per_key_and_no_part_escapes_the_directory() {
        let dir = Path::new("/c");
        let a = DiskCache::new(dir, "orders", "dev,db", Some("release/1"));
        assert_eq!(a.path(), Path::new("/c/orders@dev%2Cdb@release%2F1.json"));
        let b = DiskCache::new(dir, "..", "default", None);
        assert_eq!(b.path(), Path::new("/c/%2E%2E@default@%40default.json"));
        let c = DiskCache::new(dir, "a@b", "c", None);
        assert_ne!(c.path(), DiskCache::new(dir, "a", "b@c", None).path());
    }
}
