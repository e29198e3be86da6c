//! Errors from parsing config files and building environments.

/// A config file that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct ParseError {
    /// The file's path inside the tree.
    pub path: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn at(line: usize, column: usize, message: impl Into<String>) -> Self {
        Self {
            path: String::new(),
            line,
            column,
            message: message.into(),
        }
    }

    pub(crate) fn in_file(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }
}

/// A problem found while validating a tree for last-known-good promotion.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[error("{file}: {message}")]
pub struct ValidationError {
    /// The file's path inside the tree.
    pub file: String,
    /// The property key involved, when the problem is one value (a `{cipher}` that fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong, with line and column when known.
    pub message: String,
}

/// Why an environment could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvironmentError {
    /// A file the request needs does not parse (Spring answers 500 here).
    #[error("could not construct environment: {0}")]
    InvalidFile(#[from] ParseError),
}

/// A request parameter that Spring rejects with 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// A profile outside `[A-Za-z0-9-_.+@]`, or not starting and ending with a letter or digit.
    #[error("invalid profile {0:?}")]
    InvalidProfile(String),
    /// An application name or label containing `..` or `#`, or starting with `(_)`.
    #[error("invalid {what} {value:?}")]
    InvalidSegment {
        /// `application` or `label`.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// An empty application name.
    #[error("empty application name")]
    EmptyApplication,
}
