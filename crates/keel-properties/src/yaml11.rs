//! YAML 1.1 plain-scalar resolution as SnakeYAML's `Resolver` and `SafeConstructor` do it for Spring Boot.
//!
//! saphyr follows YAML 1.2 (where `yes`/`on` are strings and `010` is ten), so plain scalars are
//! loaded as raw text and typed here instead. Boot removes the timestamp resolver, so dates stay
//! strings.

use std::sync::LazyLock;

use regex::Regex;

/// What a scalar resolves to before it becomes a [`crate::Value`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// The `<<` merge key.
    Merge,
}

// The patterns are SnakeYAML 2.x's `Resolver` constants (BOOL has no y/n: SnakeYAML never had them).
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("static regex")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?0b_*[0-1][0-1_]*|[-+]?0_*[0-7][0-7_]*|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x_*[0-9a-fA-F][0-9a-fA-F_]*|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
    .expect("static regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)",
        r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ))
    .expect("static regex")
});
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]",
        r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
    ))
    .expect("static regex")
});

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// Resolves a plain (unquoted, untagged) scalar the way SnakeYAML's implicit resolvers do.
pub(crate) fn resolve_plain(text: &str) -> Scalar {
    if is_null(text) {
        return Scalar::Null;
    }
    if BOOL.is_match(text) {
        return Scalar::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        ));
    }
    // SnakeYAML registers INT before FLOAT, so `1_000` is an int and `1e3` a float.
    if INT.is_match(text) {
        if let Some(i) = construct_int(text) {
            return Scalar::Int(i);
        }
        return Scalar::Str(text.to_owned());
    }
    if FLOAT.is_match(text) {
        if let Some(f) = construct_float(text) {
            return Scalar::Float(f);
        }
        return Scalar::Str(text.to_owned());
    }
    if text == "<<" {
        return Scalar::Merge;
    }
    Scalar::Str(text.to_owned())
}

/// Resolves an explicitly tagged scalar (`!!str 1`, `!!int "3"`); `None` for tags SnakeYAML's
/// SafeConstructor cannot construct.
pub(crate) fn resolve_tagged(text: &str, suffix: &str) -> Option<Scalar> {
    match suffix {
        "str" => Some(Scalar::Str(text.to_owned())),
        "null" => Some(Scalar::Null),
        "bool" => BOOL.is_match(text).then(|| resolve_plain(text)),
        "int" => construct_int(text).map(Scalar::Int),
        "float" => construct_float(text).map(Scalar::Float),
        // Boot's resolver drops timestamps; an explicit tag still yields text for our purposes.
        "timestamp" => Some(Scalar::Str(text.to_owned())),
        _ => None,
    }
}

/// Whether a string would be read back as something other than a string by a YAML 1.1 reader
/// (SnakeYAML's emitter quotes such strings).
pub(crate) fn is_ambiguous_plain(text: &str) -> bool {
    is_null(text)
        || BOOL.is_match(text)
        || INT.is_match(text)
        || FLOAT.is_match(text)
        || TIMESTAMP.is_match(text)
        || text == "<<"
        || text == "="
}

fn split_sign(text: &str) -> (i128, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

fn construct_int(text: &str) -> Option<i128> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, body) = split_sign(&cleaned);
    let magnitude = if body == "0" {
        0
    } else if let Some(bin) = body.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = body.strip_prefix('0') {
        i128::from_str_radix(oct, 8).ok()?
    } else if body.contains(':') {
        sexagesimal(body)? as i128
    } else {
        body.parse::<i128>().ok()?
    };
    Some(sign * magnitude)
}

fn sexagesimal(body: &str) -> Option<f64> {
    let mut value = 0.0;
    let mut base = 1.0;
    for part in body.rsplit(':') {
        value += part.parse::<f64>().ok()? * base;
        base *= 60.0;
    }
    Some(value)
}

fn construct_float(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, body) = split_sign(&cleaned);
    let sign = sign as f64;
    match body.to_ascii_lowercase().as_str() {
        ".inf" => return Some(sign * f64::INFINITY),
        ".nan" => return Some(f64::NAN),
        _ => {}
    }
    if body.contains(':') {
        return sexagesimal(body).map(|v| sign * v);
    }
    body.parse::<f64>().ok().map(|v| sign * v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml11_booleans_are_snakeyaml_set() {
        for t in [
            "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
        ] {
            assert_eq!(resolve_plain(t), Scalar::Bool(true), "{t}");
        }
        for t in [
            "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
        ] {
            assert_eq!(resolve_plain(t), Scalar::Bool(false), "{t}");
        }
        // SnakeYAML does not resolve the single letters, nor mixed case.
        for t in ["y", "n", "Y", "N", "yEs", "oN"] {
            assert_eq!(resolve_plain(t), Scalar::Str(t.to_owned()), "{t}");
        }
    }

    #[test]
    fn yaml11_numbers() {
        assert_eq!(resolve_plain("010"), Scalar::Int(8));
        assert_eq!(resolve_plain("0x1F"), Scalar::Int(31));
        assert_eq!(resolve_plain("0b101"), Scalar::Int(5));
        assert_eq!(resolve_plain("1_000"), Scalar::Int(1000));
        assert_eq!(resolve_plain("-42"), Scalar::Int(-42));
        assert_eq!(resolve_plain("1:30"), Scalar::Int(90));
        assert_eq!(resolve_plain("1.5"), Scalar::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Scalar::Float(1000.0));
        assert_eq!(resolve_plain(".5"), Scalar::Float(0.5));
        assert_eq!(resolve_plain("-.inf"), Scalar::Float(f64::NEG_INFINITY));
        assert_eq!(resolve_plain("99999999999"), Scalar::Int(99_999_999_999));
        assert_eq!(resolve_plain("1.2.3"), Scalar::Str("1.2.3".into()));
        assert_eq!(resolve_plain("09"), Scalar::Str("09".into()));
    }

    #[test]
    fn nulls_and_timestamps() {
        for t in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_plain(t), Scalar::Null, "{t:?}");
        }
        assert_eq!(
            resolve_plain("2001-12-14"),
            Scalar::Str("2001-12-14".into())
        );
        assert!(is_ambiguous_plain("2001-12-14"));
        assert!(!is_ambiguous_plain("hello"));
    }
}
