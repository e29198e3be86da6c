//! Spring-style path and host patterns: literals, `*`, `?`, `{var}`, `{var:regex}`, `**` and `{*rest}`.

use regex::Regex;

/// Path segments matched without allocating; deeper paths fall back to a Vec.
const INLINE_SEGMENTS: usize = 16;

/// Variables captured by a match, in pattern order.
pub type Captures = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    /// A segment with wildcards or variables, compiled to an anchored regex.
    Glob {
        regex: Regex,
        vars: Vec<String>,
    },
    /// `**` (any number of segments) or `{*name}` (the rest, captured with its leading separator).
    Rest(Option<String>),
}

/// A compiled pattern over `/`-separated paths or `.`-separated host names.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    separator: char,
    segments: Vec<Segment>,
}

/// Why a pattern could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

impl Pattern {
    /// A path pattern such as `/users/{id}/**`.
    pub fn path(source: &str) -> Result<Self, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError {
                pattern: source.to_owned(),
                reason: "a path pattern must start with `/`".into(),
            });
        }
        Self::compile(source, '/')
    }

    /// A host pattern such as `**.example.org` or `{sub}.example.org` (case-insensitive).
    pub fn host(source: &str) -> Result<Self, PatternError> {
        Self::compile(&source.to_ascii_lowercase(), '.')
    }

    fn compile(source: &str, separator: char) -> Result<Self, PatternError> {
        let err = |reason: String| PatternError {
            pattern: source.to_owned(),
            reason,
        };
        let mut segments = Vec::new();
        for raw in source.split(separator).filter(|s| !s.is_empty()) {
            let seg = if raw == "**" {
                Segment::Rest(None)
            } else if let Some(name) = raw.strip_prefix("{*").and_then(|r| r.strip_suffix('}')) {
                Segment::Rest(Some(name.to_owned()))
            } else if raw.contains(['*', '?', '{']) {
                let (regex, vars) = glob_regex(raw, separator).map_err(err)?;
                Segment::Glob { regex, vars }
            } else {
                Segment::Literal(raw.to_owned())
            };
            segments.push(seg);
        }
        Ok(Pattern {
            source: source.to_owned(),
            separator,
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern captures variables (callers can skip collecting them otherwise).
    pub fn has_vars(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(s, Segment::Glob { vars, .. } if !vars.is_empty())
                || matches!(s, Segment::Rest(Some(_)))
        })
    }

    /// Whether `input` may match with its trailing separator taken strictly (Spring's
    /// `matchTrailingSlash=false`): it has none, or the pattern ends with one or with `**`/`{*rest}`.
    pub fn allows_trailing(&self, input: &str) -> bool {
        !(input.len() > 1 && input.ends_with(self.separator))
            || self.source.ends_with(self.separator)
            || matches!(self.segments.last(), Some(Segment::Rest(_)))
    }

    /// Matches `input` (a normalised path, or a lower-case host); one trailing separator is ignored.
    pub fn matches(&self, input: &str, captures: Option<&mut Captures>) -> bool {
        // `/**` (the usual catch-all) matches anything without looking at it.
        if let [Segment::Rest(None)] = self.segments.as_slice() {
            return true;
        }
        // Segments go on the stack for ordinary paths; only very deep ones allocate.
        let mut stack: [&str; INLINE_SEGMENTS] = [""; INLINE_SEGMENTS];
        let mut n = 0;
        let mut heap: Vec<&str> = Vec::new();
        for part in input.split(self.separator).filter(|s| !s.is_empty()) {
            if n < INLINE_SEGMENTS {
                stack[n] = part;
            } else {
                if heap.is_empty() {
                    heap.extend_from_slice(&stack);
                }
                heap.push(part);
            }
            n += 1;
        }
        let parts: &[&str] = if n <= INLINE_SEGMENTS {
            &stack[..n]
        } else {
            &heap
        };
        let mut scratch = Captures::new();
        let caps = match captures {
            Some(c) => c,
            None => &mut scratch,
        };
        let start = caps.len();
        let ok = self.match_from(0, parts, 0, caps);
        if !ok {
            caps.truncate(start);
        }
        ok
    }

    fn match_from(&self, si: usize, parts: &[&str], pi: usize, caps: &mut Captures) -> bool {
        let Some(seg) = self.segments.get(si) else {
            return pi == parts.len();
        };
        match seg {
            Segment::Literal(l) => {
                parts.get(pi).is_some_and(|p| p == l)
                    && self.match_from(si + 1, parts, pi + 1, caps)
            }
            Segment::Glob { regex, vars } => {
                let Some(p) = parts.get(pi) else { return false };
                let Some(m) = regex.captures(p) else {
                    return false;
                };
                let mark = caps.len();
                for v in vars {
                    if let Some(val) = m.name(v) {
                        caps.push((v.clone(), val.as_str().to_owned()));
                    }
                }
                if self.match_from(si + 1, parts, pi + 1, caps) {
                    return true;
                }
                caps.truncate(mark);
                false
            }
            Segment::Rest(name) => {
                // `**` may swallow zero or more segments; try the shortest tail first.
                for take in 0..=parts.len() - pi {
                    let mark = caps.len();
                    if let Some(n) = name {
                        let mut rest = String::new();
                        for p in &parts[pi..pi + take] {
                            rest.push(self.separator);
                            rest.push_str(p);
                        }
                        caps.push((n.clone(), rest));
                    }
                    if self.match_from(si + 1, parts, pi + take, caps) {
                        return true;
                    }
                    caps.truncate(mark);
                }
                false
            }
        }
    }
}

fn glob_regex(raw: &str, separator: char) -> Result<(Regex, Vec<String>), String> {
    let not_sep = if separator == '/' { "[^/]" } else { "[^.]" };
    let mut re = String::from("^");
    let mut vars = Vec::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                re.push_str(not_sep);
                re.push('*');
            }
            '?' => re.push_str(not_sep),
            '{' => {
                let mut body = String::new();
                let mut depth = 1;
                for c in chars.by_ref() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    body.push(c);
                }
                if depth != 0 {
                    return Err("unclosed `{`".into());
                }
                let (name, custom) = match body.split_once(':') {
                    Some((n, r)) => (n, Some(r)),
                    None => (body.as_str(), None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad variable name `{name}`"));
                }
                re.push_str(&format!("(?P<{name}>"));
                match custom {
                    Some(r) => re.push_str(r),
                    None => {
                        re.push_str(not_sep);
                        re.push('+');
                    }
                }
                re.push(')');
                vars.push(name.to_owned());
            }
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    let regex = Regex::new(&re).map_err(|e| e.to_string())?;
    Ok((regex, vars))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let p = Pattern::path("/users/**").unwrap();
        assert!(p.matches("/users", None));
        assert!(p.matches("/users/1/2", None));
        assert!(!p.matches("/usersx", None));
        let p = Pattern::path("/a/{id}/c").unwrap();
        let mut caps = Captures::new();
        assert!(p.matches("/a/42/c/", Some(&mut caps)));
        assert_eq!(caps, vec![("id".into(), "42".into())]);
        assert!(!p.matches("/a/42/d", None));
        let p = Pattern::path("/img/*.png").unwrap();
        assert!(p.matches("/img/x.png", None));
        assert!(!p.matches("/img/x.jpg", None));
        let p = Pattern::path("/**/admin/**").unwrap();
        assert!(p.matches("/x/y/admin/z", None));
        let p = Pattern::path("/api/{*rest}").unwrap();
        let mut caps = Captures::new();
        assert!(p.matches("/api/a/b", Some(&mut caps)));
        assert_eq!(caps[0].1, "/a/b");
        let p = Pattern::path("/v{n:\\d+}/x").unwrap();
        assert!(p.matches("/v2/x", None));
        assert!(!p.matches("/vx/x", None));
    }

    #[test]
    fn host_patterns() {
        let p = Pattern::host("**.Example.org").unwrap();
        assert!(p.matches("a.b.example.org", None));
        assert!(!p.matches("example.com", None));
        let p = Pattern::host("{sub}.example.org").unwrap();
        let mut caps = Captures::new();
        assert!(p.matches("api.example.org", Some(&mut caps)));
        assert_eq!(caps[0].1, "api");
    }
}
