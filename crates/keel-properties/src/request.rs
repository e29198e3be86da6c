//! Request newtypes (application names, profiles, label), parsed once at the edge with Spring's rules.

use crate::error::RequestError;

/// Comma-separated application names (`{application}`), with `(_)` turned into `/`.
/// A later name beats an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AppNames {
    raw: String,
    names: Vec<String>,
}

impl AppNames {
    /// Parses a `{name}` path segment.
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        check_segment("application", raw)?;
        let raw = raw.replace("(_)", "/");
        let names: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err(RequestError::EmptyApplication);
        }
        Ok(Self { raw, names })
    }

    /// The name as Spring echoes it in `Environment.name` (the whole comma list).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The individual names, in request order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Comma-separated profiles (`{profiles}`). An empty list means Spring's `default` profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profiles(Vec<String>);

impl Profiles {
    /// Parses a `{profiles}` segment with Spring's `validate-profiles` rule: letters, digits and
    /// `-_.+@`, starting and ending with a letter or digit.
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        let mut out = Vec::new();
        for p in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.+@".contains(c);
            let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            if !p.chars().all(ok_char) || !edge(p.chars().next()) || !edge(p.chars().last()) {
                return Err(RequestError::InvalidProfile(p.to_owned()));
            }
            out.push(p.to_owned());
        }
        Ok(Self(out))
    }

    /// Profiles as requested (what `Environment.profiles` shows).
    pub fn requested(&self) -> &[String] {
        &self.0
    }

    /// The profiles Boot accepts: the requested ones without duplicates, or `default`.
    pub fn accepted(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.0 {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        if out.is_empty() {
            out.push("default".to_owned());
        }
        out
    }

    /// The comma-joined form.
    pub fn joined(&self) -> String {
        self.0.join(",")
    }
}

/// A git label (branch, tag or commit), with `(_)` standing for `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Label(String);

impl Label {
    /// Parses a `{label}` segment: `(_)` becomes `/`; `..`, `#` and a leading `(_)` are refused.
    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        check_segment("label", raw)?;
        let label = raw.replace("(_)", "/");
        if label.is_empty() {
            return Err(RequestError::InvalidSegment {
                what: "label",
                value: raw.to_owned(),
            });
        }
        Ok(Self(label))
    }

    /// The label with `/` restored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_segment(what: &'static str, raw: &str) -> Result<(), RequestError> {
    if raw.contains("..") || raw.contains('#') || raw.starts_with("(_)") {
        return Err(RequestError::InvalidSegment {
            what,
            value: raw.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_restore_slashes() {
        assert_eq!(Label::parse("feature(_)x").unwrap().as_str(), "feature/x");
        assert!(Label::parse("..(_)etc").is_err());
        assert!(Label::parse("(_)etc").is_err());
        assert!(Label::parse("a#b").is_err());
    }

    #[test]
    fn profiles_validate_and_default() {
        assert_eq!(
            Profiles::parse("dev,mysql").unwrap().accepted(),
            vec!["dev", "mysql"]
        );
        assert_eq!(Profiles::parse("").unwrap().accepted(), vec!["default"]);
        assert!(Profiles::parse("-dev").is_err());
        assert!(Profiles::parse("a b").is_err());
        assert!(Profiles::parse("a.b+c@d_e-f").is_ok());
    }

    #[test]
    fn app_names_split() {
        let a = AppNames::parse("foo,bar").unwrap();
        assert_eq!(a.names(), ["foo", "bar"]);
        assert_eq!(a.as_str(), "foo,bar");
        assert!(AppNames::parse("a..b").is_err());
    }
}
