//! `Record`: one immutable version of an instance, with its encodings cached on first use.

use std::sync::OnceLock;

use bytes::Bytes;
use keel_eureka::{Format, InstanceInfo, encode_instance_fragment};

/// One version of an instance as the registry serves it. A write replaces the record; it is
/// never mutated, so its JSON and XML fragments are encoded at most once and then spliced
/// into every document that lists it.
#[derive(Debug)]
pub struct Record {
    info: InstanceInfo,
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
}

impl Record {
    pub fn new(info: InstanceInfo) -> Self {
        Self {
            info,
            json: OnceLock::new(),
            xml: OnceLock::new(),
        }
    }

    pub fn info(&self) -> &InstanceInfo {
        &self.info
    }

    /// The bare instance object (JSON) or `<instance>` element (XML).
    pub fn fragment(&self, format: Format) -> &Bytes {
        let cell = match format {
            Format::Json => &self.json,
            Format::Xml => &self.xml,
        };
        cell.get_or_init(|| {
            let mut out = Vec::with_capacity(1024);
            encode_instance_fragment(format, &self.info, &mut out);
            // Exact size: `Bytes::from(Vec)` keeps the spare capacity, and a fragment lives
            // as long as its record (≈300 bytes per instance and format otherwise).
            Bytes::from(out.into_boxed_slice())
        })
    }
}
