//! `Format`: JSON or XML, and Eureka's rules for picking one from HTTP headers.

/// A wire format Eureka speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// Eureka answers JSON only when `Accept` *contains* `json`; otherwise (including
    /// no `Accept` at all) XML. py-eureka-client sends no Accept header and parses XML.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if contains_ignore_case(a, "json") => Self::Json,
            _ => Self::Xml,
        }
    }

    /// The format of a request body from its `Content-Type`, or `None` if the header
    /// names neither JSON nor XML (callers may then [`Format::sniff`]).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        if contains_ignore_case(content_type, "json") {
            Some(Self::Json)
        } else if contains_ignore_case(content_type, "xml") {
            Some(Self::Xml)
        } else {
            None
        }
    }

    /// Guesses from the first non-blank byte: `<` is XML, anything else JSON.
    pub fn sniff(body: &[u8]) -> Self {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Self::Xml,
            _ => Self::Json,
        }
    }

    /// The `Content-Type` to answer with.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Xml => "application/xml",
        }
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_json_only_when_it_says_json() {
        assert_eq!(Format::from_accept(None), Format::Xml);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Xml);
        assert_eq!(
            Format::from_accept(Some("application/JSON;q=0.9")),
            Format::Json
        );
    }

    #[test]
    fn content_type_and_sniffing() {
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(Format::from_content_type("text/xml"), Some(Format::Xml));
        assert_eq!(Format::from_content_type("application/octet-stream"), None);
        assert_eq!(Format::sniff(b"  <instance/>"), Format::Xml);
        assert_eq!(Format::sniff(b"{}"), Format::Json);
    }
}
