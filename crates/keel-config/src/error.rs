//! Why a request could not be served, with the status Spring Cloud Config answers.

/// A request that cannot be answered with configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// Malformed name, profile, label or path (Spring: 400).
    #[error("{0}")]
    BadRequest(String),
    /// No branch, tag or commit by that name (Spring: `NoSuchLabelException`, 404).
    #[error("no such label: {0}")]
    NoSuchLabel(String),
    /// `accept-empty=false` and nothing matched (Spring: 404 "Application Not Found").
    #[error("application not found: {0}")]
    AppNotFound(String),
    /// A plain-text resource that does not exist (404).
    #[error("resource not found: {0}")]
    NotFound(String),
    /// The only version of a label has a file that does not parse. Spring answers 500 and
    /// breaks every application; Keel answers 503 for the requests that need that file.
    #[error("configuration is invalid: {0}")]
    Invalid(String),
    /// Reading the mirror failed.
    #[error("repository unavailable: {0}")]
    Unavailable(String),
}

impl ServeError {
    pub fn status(&self) -> u16 {
        match self {
            ServeError::BadRequest(_) => 400,
            ServeError::NoSuchLabel(_) | ServeError::AppNotFound(_) | ServeError::NotFound(_) => {
                404
            }
            ServeError::Invalid(_) | ServeError::Unavailable(_) => 503,
        }
    }
}

impl From<keel_properties::RequestError> for ServeError {
    fn from(e: keel_properties::RequestError) -> Self {
        ServeError::BadRequest(e.to_string())
    }
}
