//! A minimal SSE client over a raw socket (HTTP/1.1, chunked), for watch tests.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: String,
}

pub struct Stream {
    reader: BufReader<TcpStream>,
    text: String,
    pub status: u16,
}

impl Stream {
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(tcp);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).await.unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Stream {
            reader,
            text: String::new(),
            status,
        }
    }

    /// Reads one chunk; `false` at the end of the stream.
    async fn read_chunk(&mut self) -> bool {
        let mut size = String::new();
        if self.reader.read_line(&mut size).await.unwrap_or(0) == 0 {
            return false;
        }
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            return false;
        };
        if n == 0 {
            return false;
        }
        let mut buf = vec![0; n + 2];
        if self.reader.read_exact(&mut buf).await.is_err() {
            return false;
        }
        self.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        true
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(i) = self.text.find("\n\n") {
                let block: String = self.text.drain(..i + 2).collect();
                let mut e = Event::default();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        e.id = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !e.data.is_empty() {
                            e.data.push('\n');
                        }
                        e.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if e.event.is_empty() && e.data.is_empty() {
                    continue;
                }
                return Some(e);
            }
            if !self.read_chunk().await {
                return None;
            }
        }
    }

    /// The next event within a generous deadline; panics on timeout.
    pub async fn expect(&mut self, what: &str) -> Event {
        match tokio::time::timeout(Duration::from_secs(20), self.next()).await {
            Ok(Some(e)) => e,
            Ok(None) => panic!("stream ended while waiting for {what}"),
            Err(_) => panic!("no event within 20s while waiting for {what}"),
        }
    }
}
