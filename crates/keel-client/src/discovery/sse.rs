//! A minimal Server-Sent Events parser (the WHATWG event-stream format) over byte chunks.

use bytes::{Buf, BytesMut};

/// One dispatched event. `event` is `message` when the stream names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Accumulates chunks and yields complete events. Comments (`:heartbeat`) yield nothing.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: BytesMut,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    /// The last line ended with CR at the end of a chunk: an LF opening the next is its pair.
    skip_lf: bool,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if the buffered bytes hold one.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.skip_lf && !self.buf.is_empty() {
                self.skip_lf = false;
                if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
            }
            let end = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r')?;
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            // A CR LF pair is one line ending, possibly split across chunks.
            let skip = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.skip_lf = true;
                    1
                }
                _ => 1,
            };
            self.buf.advance(end + skip);
            if let Some(event) = self.line(&line) {
                return Some(event);
            }
        }
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = self.data.take()?;
            return Some(SseEvent {
                event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                id: self.id.clone(),
                data,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = SseParser::default();
        p.push(b":heartbeat\n\nevent: snapshot\r");
        assert_eq!(p.next_event(), None);
        p.push(b"\nid: 7\ndata: {\"a\":\ndata: 1}\n");
        assert_eq!(p.next_event(), None);
        p.push(b"\nevent:delete\rid:8\rdata:x\r\r");
        assert_eq!(
            p.next_event(),
            Some(SseEvent {
                event: "snapshot".into(),
                id: Some("7".into()),
                data: "{\"a\":\n1}".into()
            })
        );
        let e = p.next_event().unwrap();
        assert_eq!(
            (e.event.as_str(), e.id.as_deref(), e.data.as_str()),
            ("delete", Some("8"), "x")
        );
        assert_eq!(p.next_event(), None);
        p.push(b"data: plain\n\n");
        let e = p.next_event().unwrap();
        assert_eq!((e.event.as_str(), e.id.as_deref()), ("message", Some("8")));
    }
}
