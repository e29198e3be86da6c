//! `DecodeError`: why a request body could not be read. Every variant is the client's fault (400).

use crate::name::NameError;

/// A body that is not a valid Eureka document. The message names what is wrong and
/// where (a JSON line/column, an XML byte offset, or a field path such as
/// `applications.application[2].instance[0].port`).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("malformed XML: {0}")]
    Xml(String),
    /// A `<!DOCTYPE>` (and so any entity declaration) or a reference to an entity other
    /// than the five predefined ones. Refused outright: nothing is ever expanded or fetched.
    #[error("XML refused: {0}")]
    XmlForbidden(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Name {
        path: String,
        #[source]
        source: NameError,
    },
}

impl DecodeError {
    pub(crate) fn invalid(path: &str, field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: join(path, field),
            message: message.into(),
        }
    }

    pub(crate) fn missing(path: &str, field: &str) -> Self {
        Self::invalid(path, field, "missing")
    }

    pub(crate) fn name(path: &str, field: &str, source: NameError) -> Self {
        Self::Name {
            path: join(path, field),
            source,
        }
    }

    /// The HTTP status a server should answer with: always 400 Bad Request.
    pub fn status_code(&self) -> u16 {
        400
    }
}

pub(crate) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}
