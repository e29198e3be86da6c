//! Parses `.properties` files as Boot's `OriginTrackedPropertiesLoader` does (java.util.Properties syntax).
//!
//! Boot reads these files as ISO-8859-1, so bytes map one-to-one to chars and non-ASCII text must
//! use `\uXXXX` escapes (UTF-8 bytes come out as mojibake, exactly as Spring serves them).
//! On top of java.util.Properties, Boot splits documents at `#---`/`!---` lines and expands
//! `key[]=a,b` into `key[0]`, `key[1]`.

use crate::error::ParseError;
use crate::source::Source;
use crate::value::Value;

/// Parses a `.properties` file into its non-empty documents.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Source>, ParseError> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let lines = split_lines(&text);
    let mut docs = Vec::new();
    let mut doc = Source::new();
    let mut previous_was_comment = false;
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let line = lines[i];
        i += 1;
        let content = line.trim_start_matches(is_ws);
        if content.is_empty() {
            previous_was_comment = false;
            continue;
        }
        if content.starts_with('#') || content.starts_with('!') {
            if !previous_was_comment && is_document_separator(line) {
                if !doc.is_empty() {
                    docs.push(std::mem::take(&mut doc));
                }
            } else {
                previous_was_comment = true;
            }
            continue;
        }
        previous_was_comment = false;
        let mut logical = content.to_owned();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.get(i) {
                Some(next) => {
                    logical.push_str(next.trim_start_matches(is_ws));
                    i += 1;
                }
                None => break,
            }
        }
        parse_entry(&logical, line_no, &mut doc)?;
    }
    if !doc.is_empty() {
        docs.push(doc);
    }
    Ok(docs)
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// `#---` or `!---` at column 0, optionally followed by whitespace only.
fn is_document_separator(line: &str) -> bool {
    let rest = line
        .strip_prefix("#---")
        .or_else(|| line.strip_prefix("!---"));
    rest.is_some_and(|r| r.chars().all(is_ws))
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// A char after escape processing; escaped chars are never separators.
#[derive(Clone, Copy)]
struct Ch {
    c: char,
    escaped: bool,
}

fn unescape(logical: &str, line_no: usize) -> Result<Vec<Ch>, ParseError> {
    let mut out = Vec::with_capacity(logical.len());
    let mut chars = logical.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(Ch { c, escaped: false });
            continue;
        }
        let Some(next) = chars.next() else { break };
        let c = match next {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| ParseError::at(line_no, 1, "malformed \\uxxxx encoding"))?;
                // Lone surrogates cannot be a Rust char; Java would keep them, we substitute.
                char::from_u32(code).unwrap_or('\u{FFFD}')
            }
            other => other,
        };
        out.push(Ch { c, escaped: true });
    }
    Ok(out)
}

fn parse_entry(logical: &str, line_no: usize, doc: &mut Source) -> Result<(), ParseError> {
    let chars = unescape(logical, line_no)?;
    let mut key = String::new();
    let mut pos = 0;
    let mut previous_ws = false;
    while pos < chars.len() {
        let ch = chars[pos];
        if !ch.escaped && (ch.c == '=' || ch.c == ':') {
            pos += 1;
            break;
        }
        let ws = !ch.escaped && is_ws(ch.c);
        if !ws && previous_ws {
            break;
        }
        previous_ws = ws;
        key.push(ch.c);
        pos += 1;
    }
    // Boot trims the key as a Java String (everything <= ' ').
    let key = key.trim_matches(|c: char| c <= ' ').to_owned();
    let rest = &chars[pos..];
    if let Some(list_key) = key.strip_suffix("[]") {
        for (index, item) in split_list(rest).into_iter().enumerate() {
            doc.insert(format!("{list_key}[{index}]"), Value::String(item));
        }
    } else {
        doc.insert(key, Value::String(value_text(rest)));
    }
    Ok(())
}

fn value_text(chars: &[Ch]) -> String {
    let start = chars
        .iter()
        .position(|ch| ch.escaped || !is_ws(ch.c))
        .unwrap_or(chars.len());
    chars[start..].iter().map(|ch| ch.c).collect()
}

fn split_list(chars: &[Ch]) -> Vec<String> {
    chars
        .split(|ch| !ch.escaped && ch.c == ',')
        .map(value_text)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<(String, String)> {
        let docs = parse(text.as_bytes()).unwrap();
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs[0]
            .iter()
            .map(|(k, v)| (k.clone(), v.to_java_string()))
            .collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn separators() {
        assert_eq!(
            one("a=1\nb: 2\nc 3\nd   =   4\ne\t:x\nf\ng = = h\n"),
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", "4"),
                kv("e", "x"),
                kv("f", ""),
                kv("g", "= h")
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        assert_eq!(one("# c\n  ! also\n\n   a=1\n#b=2\n"), vec![kv("a", "1")]);
    }

    #[test]
    fn continuations() {
        assert_eq!(
            one("fruits = apple, \\\n    banana,\\\r\n  pear\nx=a\\\\\ny=2\n"),
            vec![
                kv("fruits", "apple, banana,pear"),
                kv("x", "a\\"),
                kv("y", "2")
            ]
        );
        // A continued line that looks like a comment is still value text.
        assert_eq!(
            one("a=1\\\n  # not a comment\n"),
            vec![kv("a", "1# not a comment")]
        );
    }

    #[test]
    fn escapes_and_unicode() {
        assert_eq!(
            one("k\\ ey\\=x = t\\tn\\nu\\u00e9\\q\nsp = trailing  \n"),
            vec![kv("k ey=x", "t\tn\nu\u{e9}q"), kv("sp", "trailing  ")]
        );
        assert!(parse(b"a=\\u12\n").is_err());
    }

    #[test]
    fn latin1_like_spring() {
        // UTF-8 "é" is two bytes; Boot reads ISO-8859-1 and serves "Ã©".
        assert_eq!(one("a=\u{e9}\n"), vec![kv("a", "\u{c3}\u{a9}")]);
    }

    #[test]
    fn duplicate_keys_keep_first_position_last_value() {
        assert_eq!(one("a=1\nb=2\na=3\n"), vec![kv("a", "3"), kv("b", "2")]);
    }

    #[test]
    fn documents_and_lists() {
        let docs = parse(b"a=1\n#---\nb=2\n!---\n\n#---\nc[]=x, y ,z\n").unwrap();
        assert_eq!(docs.len(), 3);
        let c: Vec<_> = docs[2]
            .iter()
            .map(|(k, v)| kv(k, &v.to_java_string()))
            .collect();
        assert_eq!(c, vec![kv("c[0]", "x"), kv("c[1]", "y "), kv("c[2]", "z")]);
        // A separator right after a comment line is just a comment.
        assert_eq!(parse(b"a=1\n# note\n#---\nb=2\n").unwrap().len(), 1);
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        assert_eq!(
            one("a=1\r\nb=2\rc=3"),
            vec![kv("a", "1"), kv("b", "2"), kv("c", "3")]
        );
    }
}
