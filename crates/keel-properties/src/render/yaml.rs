//! A small YAML emitter producing what SnakeYAML's `new Yaml().dumpAsMap(map)` writes.
//!
//! Block style, indent 2, sequences at their parent key's column, empty collections as `[]`/`{}`,
//! long plain and single-quoted scalars folded at spaces past column 80, multi-line strings as
//! literal blocks, and strings a YAML 1.1 reader would type (`'true'`, `'8080'`) single-quoted.

use indexmap::IndexMap;

use crate::merge::Nested;
use crate::value::{Value, java_double};
use crate::yaml11;

const BEST_WIDTH: usize = 80;
const INDENT: usize = 2;

/// Dumps a top-level map.
pub(super) fn dump_map(map: &IndexMap<String, Nested>) -> String {
    let mut e = Emitter::default();
    if map.is_empty() {
        e.write("{}");
        e.newline();
    } else {
        e.map_entries(map, 0, false);
    }
    e.out
}

/// Dumps the lone `document` value (`dumpAs(value, SEQ|STR, BLOCK)`).
pub(super) fn dump_document(node: &Nested) -> String {
    let mut e = Emitter::default();
    match node {
        Nested::List(items) if !items.is_empty() => e.sequence(items, 0, false),
        Nested::Map(m) if !m.is_empty() => e.map_entries(m, 0, false),
        other => {
            e.scalar(other, 0, false);
            e.newline();
        }
    }
    e.out
}

#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        self.column += s.chars().count();
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn indent_to(&mut self, indent: usize) {
        if self.column < indent {
            let pad = " ".repeat(indent - self.column);
            self.write(&pad);
        }
    }

    fn map_entries(&mut self, map: &IndexMap<String, Nested>, indent: usize, inline_first: bool) {
        for (i, (key, value)) in map.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent_to(indent);
            }
            self.string(key, indent + INDENT, true);
            self.write(":");
            match value {
                Nested::Map(m) if !m.is_empty() => {
                    self.newline();
                    self.map_entries(m, indent + INDENT, false);
                }
                Nested::List(l) if !l.is_empty() => {
                    self.newline();
                    self.sequence(l, indent, false);
                }
                other => {
                    self.write(" ");
                    self.scalar(other, indent + INDENT, false);
                    self.newline();
                }
            }
        }
    }

    fn sequence(&mut self, items: &[Nested], indent: usize, inline_first: bool) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent_to(indent);
            }
            self.write("- ");
            match item {
                Nested::Map(m) if !m.is_empty() => self.map_entries(m, indent + INDENT, true),
                Nested::List(l) if !l.is_empty() => self.sequence(l, indent + INDENT, true),
                other => {
                    self.scalar(other, indent + INDENT, false);
                    self.newline();
                }
            }
        }
    }

    fn scalar(&mut self, node: &Nested, indent: usize, key: bool) {
        match node {
            Nested::Null => self.write("null"),
            Nested::Map(_) => self.write("{}"),
            Nested::List(_) => self.write("[]"),
            Nested::Value(v) => match v {
                Value::String(s) => self.string(s, indent, key),
                Value::Integer(i) => self.write(&i.to_string()),
                Value::Float(f) if f.is_nan() => self.write(".NaN"),
                Value::Float(f) if f.is_infinite() => {
                    self.write(if *f > 0.0 { ".inf" } else { "-.inf" })
                }
                Value::Float(f) => self.write(&java_double(*f)),
                Value::Boolean(b) => self.write(if *b { "true" } else { "false" }),
                Value::EmptyList => self.write("[]"),
                Value::EmptyMap => self.write("{}"),
            },
        }
    }

    fn string(&mut self, s: &str, indent: usize, key: bool) {
        match choose_style(s, key) {
            Style::Plain => self.folded(s, indent, None),
            Style::Single => {
                self.write("'");
                self.folded(&s.replace('\'', "''"), indent, Some('\''));
                self.write("'");
            }
            Style::Double => self.write(&double_quoted(s)),
            Style::Literal => self.literal(s, indent),
        }
    }

    /// Writes words, breaking a single space into a new line once past the best width
    /// (SnakeYAML's `writePlain`/`writeSingleQuoted` with `split=true`).
    fn folded(&mut self, s: &str, indent: usize, quote: Option<char>) {
        let bytes: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == ' ' {
                let run = bytes[i..].iter().take_while(|&&c| c == ' ').count();
                let at_edge = quote.is_some() && (i == 0 || i + run == bytes.len());
                if run == 1 && self.column > BEST_WIDTH && !at_edge {
                    self.newline();
                    self.indent_to(indent);
                } else {
                    self.write(&" ".repeat(run));
                }
                i += run;
            } else {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == ' ')
                    .map_or(bytes.len(), |p| i + p);
                let word: String = bytes[i..end].iter().collect();
                self.write(&word);
                i = end;
            }
        }
    }

    fn literal(&mut self, s: &str, indent: usize) {
        let mut header = String::from("|");
        if s.starts_with(' ') || s.starts_with('\n') {
            header.push_str(&INDENT.to_string());
        }
        let body = if !s.ends_with('\n') {
            header.push('-');
            s
        } else if s.len() == 1 || s[..s.len() - 1].ends_with('\n') {
            header.push('+');
            &s[..s.len() - 1]
        } else {
            &s[..s.len() - 1]
        };
        self.write(&header);
        for line in body.split('\n') {
            self.newline();
            if !line.is_empty() {
                self.indent_to(indent);
                self.write(line);
            }
        }
    }
}

/// SnakeYAML's `analyzeScalar` + `chooseScalarStyle`, for strings.
fn choose_style(s: &str, key: bool) -> Style {
    if s.is_empty() {
        return Style::Single;
    }
    let chars: Vec<char> = s.chars().collect();
    let special = chars.iter().any(|&c| !is_printable(c));
    let line_breaks = chars.iter().any(|&c| c == '\n' || c == '\r');
    let space_break = chars
        .windows(2)
        .any(|w| w[0] == ' ' && (w[1] == '\n' || w[1] == '\r'));
    let break_space = chars
        .windows(2)
        .any(|w| (w[0] == '\n' || w[0] == '\r') && w[1] == ' ');
    let leading_space = chars[0] == ' ' || chars[0] == '\n';
    let trailing_space = matches!(chars[chars.len() - 1], ' ' | '\n');

    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = chars
            .get(i + 1)
            .is_none_or(|n| matches!(n, ' ' | '\t' | '\n' | '\r'));
        let preceded_by_ws = i == 0 || matches!(chars[i - 1], ' ' | '\t' | '\n' | '\r');
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) || (matches!(c, '?' | ':' | '-') && followed_by_ws) {
                block_indicators = true;
            }
        } else if (c == ':' && followed_by_ws) || (c == '#' && preceded_by_ws) {
            block_indicators = true;
        }
    }

    let allow_plain = !(block_indicators
        || leading_space
        || trailing_space
        || line_breaks
        || special
        || space_break
        || break_space
        || yaml11::is_ambiguous_plain(s));
    if allow_plain && !(key && line_breaks) {
        return Style::Plain;
    }
    let allow_block = !(special
        || space_break
        || trailing_space && !s.ends_with('\n')
        || s.trim_end_matches('\n').ends_with(' '));
    if line_breaks && !key && allow_block {
        return Style::Literal;
    }
    let allow_single = !(special || space_break || break_space);
    if allow_single && !line_breaks {
        return Style::Single;
    }
    Style::Double
}

fn is_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{85}')
        || ('\u{20}'..='\u{7E}').contains(&c)
        || ('\u{A0}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c) && c != '\u{FEFF}'
        || ('\u{10000}'..='\u{10FFFF}').contains(&c)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{B}' => out.push_str("\\v"),
            '\u{C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1B}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{A0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !is_printable(c) && (c as u32) <= 0xFF => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c if !is_printable(c) && (c as u32) <= 0xFFFF => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c if !is_printable(c) => out.push_str(&format!("\\U{:08X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Nested {
        Nested::Value(Value::from(s))
    }

    #[test]
    fn styles() {
        assert_eq!(choose_style("hello world", false), Style::Plain);
        assert_eq!(choose_style("true", false), Style::Single);
        assert_eq!(choose_style("8080", false), Style::Single);
        assert_eq!(choose_style("", false), Style::Single);
        assert_eq!(choose_style("a: b", false), Style::Single);
        assert_eq!(choose_style("{cipher}abc", false), Style::Single);
        assert_eq!(choose_style("http://x:8080/y", false), Style::Plain);
        assert_eq!(choose_style("line1\nline2", false), Style::Literal);
        assert_eq!(choose_style("tab\u{1}", false), Style::Double);
        assert_eq!(choose_style("${a.b}", false), Style::Plain);
    }

    #[test]
    fn nested_layout() {
        let mut inner = IndexMap::new();
        inner.insert("b".to_owned(), v("x"));
        let mut item = IndexMap::new();
        item.insert("name".to_owned(), v("n"));
        item.insert("port".to_owned(), Nested::Value(Value::Integer(1)));
        let mut root = IndexMap::new();
        root.insert("a".to_owned(), Nested::Map(inner));
        root.insert(
            "l".to_owned(),
            Nested::List(vec![Nested::Map(item), v("s"), Nested::Null]),
        );
        root.insert("m".to_owned(), v("one\ntwo"));
        root.insert("e".to_owned(), Nested::Value(Value::EmptyList));
        assert_eq!(
            dump_map(&root),
            "a:\n  b: x\nl:\n- name: n\n  port: 1\n- s\n- null\nm: |-\n  one\n  two\ne: []\n"
        );
    }

    #[test]
    fn long_plain_scalars_fold_past_80_columns() {
        let long = "word ".repeat(25).trim_end().to_owned();
        let mut root = IndexMap::new();
        root.insert("k".to_owned(), v(&long));
        let out = dump_map(&root);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() == 2, "{out}");
        assert!(lines[1].starts_with("  word"), "{out}");
        assert!(lines[0].len() > 80 && lines[0].len() <= 86, "{out}");
    }
}
