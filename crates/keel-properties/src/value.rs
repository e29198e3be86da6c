//! A flattened property value, typed as Spring Boot's YAML loader types it, and its Java text forms.

use std::fmt::Write as _;

use serde::{Serialize, Serializer};

/// One value in a flattened property source.
///
/// YAML scalars keep the type SnakeYAML gives them (YAML 1.1 rules); `.properties` values are
/// always [`Value::String`]. Spring serialises these with Jackson, so the JSON type follows the
/// variant: strings, numbers, booleans, and `[]`/`{}` for empty collections (Boot tracks empty
/// YAML collections as values instead of flattening them away).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also what YAML `null` and `~` become: Boot stores them as `""`).
    String(String),
    /// A YAML integer (Java `Integer`, `Long` or `BigInteger`).
    Integer(i128),
    /// A YAML float (Java `Double`).
    Float(f64),
    /// A YAML boolean, including YAML 1.1 `yes/no/on/off`.
    Boolean(bool),
    /// An empty YAML sequence (`[]`).
    EmptyList,
    /// An empty YAML mapping (`{}`).
    EmptyMap,
}

impl Value {
    /// The string this value holds, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The text Java's `String.valueOf` gives, which is what Spring writes in `.properties`
    /// output and what placeholder resolution substitutes.
    pub fn to_java_string(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => java_double(*f),
            Value::Boolean(b) => b.to_string(),
            Value::EmptyList => "[]".to_owned(),
            Value::EmptyMap => "{}".to_owned(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(s) => serializer.serialize_str(s),
            Value::Integer(i) => match i64::try_from(*i) {
                Ok(small) => serializer.serialize_i64(small),
                Err(_) => serializer.serialize_i128(*i),
            },
            Value::Float(f) if f.is_finite() => {
                // Jackson writes doubles with Java's Double.toString (`1.0E10`, not `10000000000.0`).
                match serde_json::value::RawValue::from_string(java_double(*f)) {
                    Ok(raw) => raw.serialize(serializer),
                    Err(_) => serializer.serialize_f64(*f),
                }
            }
            // Jackson's default WRITE_NAN_AS_STRINGS quotes NaN and the infinities.
            Value::Float(f) => serializer.serialize_str(&java_double(*f)),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::EmptyList => serializer.collect_seq(std::iter::empty::<()>()),
            Value::EmptyMap => serializer.collect_map(std::iter::empty::<((), ())>()),
        }
    }
}

/// Formats a double as Java's `Double.toString` does (JDK 19+, shortest repr): plain decimal
/// with at least one fraction digit for 1e-3 <= |d| < 1e7, `d.dddE<n>` otherwise.
pub fn java_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-5", "1e10".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if d < 0.0 {
        out.push('-');
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = (exp + 1) as usize;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        let _ = write!(out, "E{exp}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_matches_double_to_string() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(1.5), "1.5");
        assert_eq!(java_double(100.0), "100.0");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(1234567.5), "1234567.5");
        assert_eq!(java_double(1.25e10), "1.25E10");
        assert_eq!(java_double(-2.5), "-2.5");
        assert_eq!(java_double(0.1), "0.1");
        assert_eq!(java_double(f64::INFINITY), "Infinity");
    }

    #[test]
    fn json_types_follow_jackson() {
        let values = vec![
            Value::from("x"),
            Value::Integer(3),
            Value::Float(1e10),
            Value::Float(0.5),
            Value::Boolean(true),
            Value::EmptyList,
            Value::EmptyMap,
            Value::Float(f64::NAN),
        ];
        assert_eq!(
            serde_json::to_string(&values).unwrap(),
            r#"["x",3,1.0E10,0.5,true,[],{},"NaN"]"#
        );
    }
}
