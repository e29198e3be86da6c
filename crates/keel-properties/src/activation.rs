//! Document activation: `spring.config.activate.on-profile` (and legacy `spring.profiles`) with Spring profile expressions.

use crate::source::Source;
use crate::value::Value;

const ON_PROFILE: &str = "spring.config.activate.on-profile";
const LEGACY_PROFILES: &str = "spring.profiles";
const ON_CLOUD_PLATFORM: &str = "spring.config.activate.on-cloud-platform";

/// When a document applies.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Activation {
    /// Profile expressions; the document applies when any matches. `None`: always.
    on_profile: Option<Vec<String>>,
    /// A cloud-platform condition: the config server runs on none, so the document never applies.
    on_cloud_platform: bool,
}

impl Activation {
    /// Reads the activation keys a flattened document carries (they stay in the source too).
    pub(crate) fn of(source: &Source) -> Self {
        let on_profile =
            expressions(source, ON_PROFILE).or_else(|| expressions(source, LEGACY_PROFILES));
        let on_cloud_platform = source.keys().any(|k| k == ON_CLOUD_PLATFORM);
        Self {
            on_profile,
            on_cloud_platform,
        }
    }

    /// Whether the document applies for the accepted profiles.
    pub(crate) fn is_active(&self, accepted: &[String]) -> bool {
        if self.on_cloud_platform {
            return false;
        }
        match &self.on_profile {
            None => true,
            Some(exprs) => exprs.iter().any(|e| matches_expression(e, accepted)),
        }
    }
}

/// A comma string (`dev, prod`) or an indexed list, bound as Boot binds `String[]`.
fn expressions(source: &Source, key: &str) -> Option<Vec<String>> {
    if let Some(v) = source.get(key) {
        let text = v.to_java_string();
        return Some(
            text.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    let prefix = format!("{key}[");
    let items: Vec<String> = source
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix) && k.ends_with(']'))
        .map(|(_, v): (_, &Value)| v.to_java_string().trim().to_owned())
        .collect();
    (!items.is_empty()).then_some(items)
}

/// Evaluates a Spring profile expression (`dev`, `!dev`, `a & b`, `a | (b & !c)`).
/// A malformed expression matches nothing.
pub(crate) fn matches_expression(expr: &str, accepted: &[String]) -> bool {
    let tokens = tokenize(expr);
    let mut parser = ExprParser {
        tokens: &tokens,
        pos: 0,
        accepted,
    };
    match parser.expr() {
        Some(v) if parser.pos == tokens.len() => v,
        _ => false,
    }
}

fn tokenize(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in expr.chars() {
        if matches!(c, '(' | ')' | '&' | '|' | '!') || c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct ExprParser<'a> {
    tokens: &'a [String],
    pos: usize,
    accepted: &'a [String],
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    /// `term (('&' term)* | ('|' term)*)`: Spring refuses to mix `&` and `|` without parentheses.
    fn expr(&mut self) -> Option<bool> {
        let mut value = self.term()?;
        let mut op: Option<&str> = None;
        while let Some(tok) = self.peek() {
            if tok != "&" && tok != "|" {
                break;
            }
            let tok = if tok == "&" { "&" } else { "|" };
            if op.is_some_and(|o| o != tok) {
                return None;
            }
            op = Some(tok);
            self.pos += 1;
            let rhs = self.term()?;
            value = if tok == "&" {
                value && rhs
            } else {
                value || rhs
            };
        }
        Some(value)
    }

    fn term(&mut self) -> Option<bool> {
        let tok = self.peek()?.to_owned();
        self.pos += 1;
        match tok.as_str() {
            "!" => self.term().map(|v| !v),
            "(" => {
                let v = self.expr()?;
                (self.peek() == Some(")")).then(|| {
                    self.pos += 1;
                    v
                })
            }
            ")" | "&" | "|" => None,
            name => Some(self.accepted.iter().any(|p| p == name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn expressions_follow_spring() {
        let a = acc(&["dev", "mysql"]);
        assert!(matches_expression("dev", &a));
        assert!(!matches_expression("prod", &a));
        assert!(matches_expression("!prod", &a));
        assert!(matches_expression("dev & mysql", &a));
        assert!(!matches_expression("dev & !mysql", &a));
        assert!(matches_expression("prod | dev", &a));
        assert!(matches_expression("(prod | dev) & mysql", &a));
        assert!(
            !matches_expression("prod | dev & mysql", &a),
            "mixing needs parentheses"
        );
    }

    #[test]
    fn activation_from_source() {
        let mut s = Source::new();
        s.insert(ON_PROFILE.into(), Value::from("prod, dev"));
        assert!(Activation::of(&s).is_active(&acc(&["dev"])));
        assert!(!Activation::of(&s).is_active(&acc(&["test"])));
        let mut legacy = Source::new();
        legacy.insert("spring.profiles[0]".into(), Value::from("cloud"));
        assert!(Activation::of(&legacy).is_active(&acc(&["cloud"])));
        assert!(Activation::of(&Source::new()).is_active(&[]));
    }
}
