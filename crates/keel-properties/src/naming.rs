//! Property-source names in Spring Cloud Config's format for git and native backends.

/// How property sources are named, which depends on the backend (clients parse these names:
/// the Spring client marks a source profile-specific when it matches `.*[-,]<profile>\b.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceNaming {
    /// Git backend: `<uri>/<path>`. Multi-document files leak Boot's resource description with
    /// the checkout directory, e.g. `<uri>/Config resource 'file [<dir>/application.yml' via
    /// location '' (document #0)` (`EnvironmentCleaner` strips the `]`s and the directory URI).
    Git {
        /// The repository URI as Spring normalises it (no trailing `/` unless host-only).
        uri: String,
        /// The absolute checkout directory shown in multi-document names, without trailing `/`.
        working_dir: String,
    },
    /// Native backend: `file:<dir>/<path>`; multi-document names keep Boot's description as is.
    Native {
        /// The absolute directory, without trailing `/`.
        dir: String,
    },
}

impl SourceNaming {
    /// Git naming; `uri` is normalised as `AbstractScmAccessor.setUri` does.
    pub fn git(uri: &str, working_dir: &str) -> Self {
        let mut uri = uri.trim_end_matches('/').to_owned();
        if let Some(i) = uri.find("://")
            && !uri[i + 3..].contains('/')
        {
            uri.push('/');
        }
        Self::Git {
            uri,
            working_dir: working_dir.trim_end_matches('/').to_owned(),
        }
    }

    /// Native (filesystem) naming.
    pub fn native(dir: &str) -> Self {
        Self::Native {
            dir: dir.trim_end_matches('/').to_owned(),
        }
    }

    /// Name of a single-document file at `path` (relative to the tree root).
    pub(crate) fn single(&self, path: &str) -> String {
        match self {
            Self::Git { uri, .. } => format!("{uri}/{path}"),
            Self::Native { dir } => format!("file:{dir}/{path}"),
        }
    }

    /// Name of document `index` of a multi-document file found through `location` (a directory
    /// relative to the root: `""` or `sub/`).
    pub(crate) fn document(&self, path: &str, location: &str, index: usize) -> String {
        match self {
            Self::Git { uri, working_dir } => format!(
                "{uri}/Config resource 'file [{working_dir}/{path}' via location '{location}' (document #{index})"
            ),
            Self::Native { dir } => format!(
                "Config resource 'file [{dir}/{path}]' via location 'file:{dir}/{location}' (document #{index})"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_names_match_spring() {
        let n = SourceNaming::git(
            "https://github.com/spring-cloud-samples/config-repo/",
            "/tmp/config-repo-1/",
        );
        assert_eq!(
            n.single("foo-db.properties"),
            "https://github.com/spring-cloud-samples/config-repo/foo-db.properties"
        );
        assert_eq!(
            n.document("application.yml", "", 0),
            "https://github.com/spring-cloud-samples/config-repo/Config resource 'file [/tmp/config-repo-1/application.yml' via location '' (document #0)"
        );
        assert_eq!(
            SourceNaming::git("https://host", "/x").single("a.yml"),
            "https://host//a.yml"
        );
    }
}
