//! Immutable views of the registry: the full snapshot and the delta, each encoded at most once.

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use keel_eureka::{
    AppName, ApplicationWriter, ApplicationsWriter, Format, InstanceId, StatusCounts,
};

use super::record::Record;

/// One application's instances, sorted by id.
#[derive(Debug)]
pub struct AppSnapshot {
    pub name: AppName,
    pub instances: Vec<Arc<Record>>,
    encodings: Encodings,
}

impl AppSnapshot {
    pub(crate) fn new(name: AppName, instances: Vec<Arc<Record>>) -> Self {
        Self {
            name,
            instances,
            encodings: Encodings::default(),
        }
    }

    /// [`encoded`](Self::encoded), gzipped: built once per version, not per request (Eureka's
    /// `ResponseCache` keeps its gzipped payloads too).
    pub fn encoded_gzip(&self, format: Format) -> Bytes {
        self.encodings.gzip(format, || self.encoded(format))
    }

    /// `{"application":{...}}` / `<application>…</application>`.
    pub fn encoded(&self, format: Format) -> Bytes {
        self.encodings.plain(format, |out| {
            let mut size = DocumentSize::default();
            size.app(&self.name, self.instances.iter(), format);
            out.reserve_exact(size.bytes());
            let mut w = ApplicationWriter::new(format, &self.name, out);
            for r in &self.instances {
                w.instance_fragment(r.fragment(format));
            }
            w.finish();
        })
    }
}

/// The whole registry at one version. Reads reflect every write acknowledged before them:
/// a snapshot is republished before any read that follows a write.
#[derive(Debug)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by name; no application is empty.
    pub apps: Vec<Arc<AppSnapshot>>,
    pub counts: StatusCounts,
    encodings: Encodings,
}

impl Snapshot {
    pub(crate) fn new(version: u64, apps: Vec<Arc<AppSnapshot>>, counts: StatusCounts) -> Self {
        Self {
            version,
            apps,
            counts,
            encodings: Encodings::default(),
        }
    }

    /// `apps__hashcode` of this snapshot.
    pub fn hashcode(&self) -> String {
        self.counts.hashcode()
    }

    pub fn instance_count(&self) -> u64 {
        self.counts.total()
    }

    pub fn app(&self, name: &AppName) -> Option<&Arc<AppSnapshot>> {
        self.apps
            .binary_search_by(|a| a.name.cmp(name))
            .ok()
            .map(|i| &self.apps[i])
    }

    pub fn instance(&self, app: &AppName, id: &InstanceId) -> Option<&Arc<Record>> {
        let app = self.app(app)?;
        app.instances
            .binary_search_by(|r| r.info().instance_id.cmp(id))
            .ok()
            .map(|i| &app.instances[i])
    }

    /// The first instance with this id in any application (`GET /instances/{ID}`).
    pub fn find_instance(&self, id: &InstanceId) -> Option<&Arc<Record>> {
        self.apps.iter().find_map(|a| {
            a.instances
                .binary_search_by(|r| r.info().instance_id.cmp(id))
                .ok()
                .map(|i| &a.instances[i])
        })
    }

    pub fn instances(&self) -> impl Iterator<Item = &Arc<Record>> {
        self.apps.iter().flat_map(|a| a.instances.iter())
    }

    /// [`encoded`](Self::encoded), gzipped: built once per version, not per request (Eureka's
    /// `ResponseCache` keeps its gzipped payloads too).
    pub fn encoded_gzip(&self, format: Format) -> Bytes {
        self.encodings.gzip(format, || self.encoded(format))
    }

    /// `GET /apps`: `versions__delta` is always 1 in a full fetch, as in Eureka.
    pub fn encoded(&self, format: Format) -> Bytes {
        self.encodings.plain(format, |out| {
            encode_filtered(format, 1, &self.hashcode(), &self.apps, |_| true, out);
        })
    }

    /// An `applications` document with only the instances `keep` accepts (VIP queries, watch
    /// snapshots); its hashcode counts those instances only.
    pub fn encode_filtered(
        &self,
        format: Format,
        versions_delta: i64,
        keep: impl Fn(&Record) -> bool,
    ) -> Vec<u8> {
        let counts: StatusCounts = self
            .instances()
            .filter(|r| keep(r))
            .map(|r| r.info().status)
            .collect();
        let mut out = Vec::new();
        encode_filtered(
            format,
            versions_delta,
            &counts.hashcode(),
            &self.apps,
            keep,
            &mut out,
        );
        out
    }
}

fn encode_filtered(
    format: Format,
    versions_delta: i64,
    hashcode: &str,
    apps: &[Arc<AppSnapshot>],
    keep: impl Fn(&Record) -> bool,
    out: &mut Vec<u8>,
) {
    let mut size = DocumentSize::default();
    for app in apps {
        size.app(&app.name, app.instances.iter().filter(|r| keep(r)), format);
    }
    out.reserve_exact(size.bytes());
    let mut w = ApplicationsWriter::new(format, versions_delta, hashcode, out);
    for app in apps {
        let mut kept = app.instances.iter().filter(|r| keep(r)).peekable();
        if kept.peek().is_none() {
            continue;
        }
        let mut scope = w.application(&app.name);
        for r in kept {
            scope.instance_fragment(r.fragment(format));
        }
    }
    w.finish();
}

/// `GET /apps/delta`: every instance changed within the retention window (latest change per
/// instance), with the hashcode of the *full* registry at the same version.
#[derive(Debug)]
pub struct Delta {
    pub version: u64,
    pub hashcode: String,
    /// Grouped by application, sorted by name.
    pub apps: Vec<(AppName, Vec<Arc<Record>>)>,
    /// Monotonic ms after which the oldest entry leaves the window and the delta is rebuilt.
    pub(crate) valid_until: u64,
    encodings: Encodings,
}

impl Delta {
    pub(crate) fn new(
        version: u64,
        hashcode: String,
        apps: Vec<(AppName, Vec<Arc<Record>>)>,
        valid_until: u64,
    ) -> Self {
        Self {
            version,
            hashcode,
            apps,
            valid_until,
            encodings: Encodings::default(),
        }
    }

    /// [`encoded`](Self::encoded), gzipped: built once per version, not per request (Eureka's
    /// `ResponseCache` keeps its gzipped payloads too).
    pub fn encoded_gzip(&self, format: Format) -> Bytes {
        self.encodings.gzip(format, || self.encoded(format))
    }

    /// `versions__delta` is the registry version, so an unchanged registry yields an
    /// identical delta and py-eureka-client skips merging it.
    pub fn encoded(&self, format: Format) -> Bytes {
        self.encodings.plain(format, |out| {
            let version = i64::try_from(self.version).unwrap_or(i64::MAX);
            let mut size = DocumentSize::default();
            for (name, records) in &self.apps {
                size.app(name, records.iter(), format);
            }
            out.reserve_exact(size.bytes());
            let mut w = ApplicationsWriter::new(format, version, &self.hashcode, out);
            for (name, records) in &self.apps {
                let mut scope = w.application(name);
                for r in records {
                    scope.instance_fragment(r.fragment(format));
                }
            }
            w.finish();
        })
    }
}

/// An upper bound on the size of a document spliced from cached fragments (encoding any
/// fragment not cached yet), so the document is allocated once at about its final size.
/// Grown by doubling, a 74 MB `/apps` (100k instances) would be copied ~20 times on its
/// way and keep up to half its capacity unused for as long as it stays cached.
#[derive(Default)]
struct DocumentSize(usize);

impl DocumentSize {
    /// Room for the application wrapper and its name (escaped, at worst, as `\uXXXX`).
    const PER_APP: usize = 96;
    /// The `applications` wrapper: versions, hashcode, closing tags.
    const PER_DOCUMENT: usize = 512;

    fn app<'a>(
        &mut self,
        name: &AppName,
        records: impl Iterator<Item = &'a Arc<Record>>,
        format: Format,
    ) {
        let mut fragments = 0;
        for r in records {
            // One separator per instance (JSON's comma).
            fragments += r.fragment(format).len() + 1;
        }
        if fragments > 0 {
            self.0 += fragments + Self::PER_APP + 6 * name.as_str().len();
        }
    }

    fn bytes(&self) -> usize {
        self.0 + Self::PER_DOCUMENT
    }
}

/// A document's encodings, each built at most once: JSON and XML, plain and gzipped.
#[derive(Debug, Default)]
struct Encodings {
    plain: [OnceLock<Bytes>; 2],
    gzip: [OnceLock<Bytes>; 2],
}

impl Encodings {
    fn slot(format: Format) -> usize {
        match format {
            Format::Json => 0,
            Format::Xml => 1,
        }
    }

    fn plain(&self, format: Format, build: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        self.plain[Self::slot(format)]
            .get_or_init(|| {
                let mut out = Vec::new();
                build(&mut out);
                Bytes::from(out)
            })
            .clone()
    }

    fn gzip(&self, format: Format, plain: impl FnOnce() -> Bytes) -> Bytes {
        self.gzip[Self::slot(format)]
            .get_or_init(|| {
                let plain = plain();
                // Documents compress about 20:1 (instances repeat the same keys).
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(plain.len() / 8 + 64),
                    flate2::Compression::default(),
                );
                gz.write_all(&plain)
                    .expect("writing into a Vec cannot fail");
                Bytes::from(gz.finish().expect("writing into a Vec cannot fail"))
            })
            .clone()
    }
}
