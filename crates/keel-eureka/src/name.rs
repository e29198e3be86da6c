//! `AppName` and `InstanceId`: identifiers checked once, where they enter the system.

use std::fmt;
use std::sync::Arc;

/// Longest app name or instance id accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Why an app name or instance id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes long, the limit is {max}", max = MAX_NAME_BYTES)]
    TooLong { kind: &'static str, len: usize },
    #[error("{kind} contains a control character (U+{code:04X}) at byte {at}")]
    ControlChar {
        kind: &'static str,
        code: u32,
        at: usize,
    },
    #[error("{kind} must not contain '/' (found at byte {at})")]
    Slash { kind: &'static str, at: usize },
}

fn check(kind: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { kind, len: s.len() });
    }
    for (at, c) in s.char_indices() {
        if c.is_control() {
            return Err(NameError::ControlChar {
                kind,
                code: c as u32,
                at,
            });
        }
        if c == '/' {
            return Err(NameError::Slash { kind, at });
        }
    }
    Ok(())
}

/// An application name. Eureka treats app names case-insensitively and stores them
/// upper-cased (`ApplicationResource` upper-cases the path segment), so this type
/// upper-cases on parse and compares the stored form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(Arc<str>);

impl AppName {
    /// Checks and upper-cases `raw`: non-empty, at most 256 bytes, no control
    /// characters and no `/` (it is a path segment in every Eureka URL).
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check("app name", raw)?;
        let upper = raw.to_uppercase();
        // Upper-casing can lengthen some non-ASCII strings past the limit.
        if upper.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong {
                kind: "app name",
                len: upper.len(),
            });
        }
        Ok(Self(upper.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for AppName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An instance id such as `10.0.0.5:order-service:8080`. Case-sensitive, kept as sent.
/// Refused: empty, over 256 bytes, control characters, `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        check("instance id", raw)?;
        Ok(Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InstanceId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for InstanceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_upper_cased() {
        assert_eq!(
            AppName::parse("order-service").unwrap().as_str(),
            "ORDER-SERVICE"
        );
        assert_eq!(
            AppName::parse("Order").unwrap(),
            AppName::parse("ORDER").unwrap()
        );
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        assert_eq!(
            AppName::parse("").unwrap_err().to_string(),
            "app name must not be empty"
        );
        assert_eq!(
            AppName::parse("a/b").unwrap_err().to_string(),
            "app name must not contain '/' (found at byte 1)"
        );
        assert_eq!(
            InstanceId::parse("a\u{7}").unwrap_err().to_string(),
            "instance id contains a control character (U+0007) at byte 1"
        );
        let long = "x".repeat(257);
        assert_eq!(
            InstanceId::parse(&long).unwrap_err().to_string(),
            "instance id is 257 bytes long, the limit is 256"
        );
        assert!(InstanceId::parse(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn instance_ids_keep_their_case() {
        let id = InstanceId::parse("10.0.0.5:Order-Service:8080").unwrap();
        assert_eq!(id.as_str(), "10.0.0.5:Order-Service:8080");
    }
}
