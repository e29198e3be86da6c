//! A small, safe XML element tree built with quick-xml: no DTDs, no custom entities.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::error::DecodeError;

/// Deepest nesting accepted; Eureka documents are at most 6 levels deep.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// Concatenated character data directly inside this element, entities resolved.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn xml_err(reader: &Reader<&[u8]>, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Xml(format!("at byte {}: {e}", reader.buffer_position()))
}

/// Parses `body` into its root element.
pub(crate) fn parse(body: &[u8]) -> Result<Element, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        DecodeError::Xml(format!(
            "body is not UTF-8 (invalid byte at {})",
            e.valid_up_to()
        ))
    })?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match event {
            Event::DocType(_) => {
                return Err(DecodeError::XmlForbidden(
                    "document type declarations (<!DOCTYPE ...>) and entity declarations are not allowed"
                        .to_owned(),
                ));
            }
            Event::Start(start) => {
                if root.is_some() {
                    return Err(xml_err(&reader, "content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(xml_err(
                        &reader,
                        format!("elements nested deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push(element(&reader, &start)?);
            }
            Event::Empty(start) => {
                let el = element(&reader, &start)?;
                close(&reader, &mut stack, &mut root, el)?;
            }
            Event::End(_) => {
                // quick-xml checks that end names match their start tags.
                let el = stack
                    .pop()
                    .ok_or_else(|| xml_err(&reader, "unexpected end tag"))?;
                close(&reader, &mut stack, &mut root, el)?;
            }
            Event::Text(t) => {
                let content = t.xml_content(XmlVersion::Implicit1_0);
                push_text(&reader, &mut stack, &content)?;
            }
            Event::CData(c) => {
                push_text(&reader, &mut stack, &c.into_inner())?;
            }
            Event::GeneralRef(r) => {
                let resolved = resolve_ref(&reader, &r)?;
                push_text(&reader, &mut stack, resolved.encode_utf8(&mut [0; 4]))?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_err(
            &reader,
            format!("unclosed element <{}>", stack[stack.len() - 1].name),
        ));
    }
    root.ok_or_else(|| DecodeError::Xml("empty document: no root element".to_owned()))
}

fn close(
    reader: &Reader<&[u8]>,
    stack: &mut [Element],
    root: &mut Option<Element>,
    el: Element,
) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err(xml_err(reader, "more than one root element")),
    }
    Ok(())
}

fn push_text(reader: &Reader<&[u8]>, stack: &mut [Element], s: &str) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(xml_err(reader, "text outside the root element")),
    }
}

fn resolve_ref(reader: &Reader<&[u8]>, r: &BytesRef<'_>) -> Result<char, DecodeError> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| xml_err(reader, e))? {
        return Ok(c);
    }
    Ok(match r.as_ref() {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        other => {
            return Err(DecodeError::XmlForbidden(format!(
                "entity reference &{other}; is not allowed (only the five predefined entities and character references are)"
            )));
        }
    })
}

fn element(reader: &Reader<&[u8]>, start: &BytesStart<'_>) -> Result<Element, DecodeError> {
    let name = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xml_err(reader, e))?;
        let key = attr.key.as_ref().to_owned();
        let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|e| match e {
            quick_xml::Error::Escape(esc) => DecodeError::XmlForbidden(format!(
                "in attribute {key} of <{name}>: {esc} (only the five predefined entities and character references are allowed)"
            )),
            other => xml_err(reader, other),
        })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}
