//! Immutable views of the registry: the full snapshot and the delta, each encoded at most once.

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
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
}

impl AppSnapshot {
    pub(crate) fn new(name: AppName, instances: Vec<Arc<Record>>) -> Self {
        Self {
            name,
            instances,
            json: OnceLock::new(),
            xml: OnceLock::new(),
        }
    }

    /// `{"application":{...}}` / `<application>…</application>`.
    pub fn encoded(&self, format: Format) -> Bytes {
        cached(&self.json, &self.xml, format, |out| {
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
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
}

impl Snapshot {
    pub(crate) fn new(version: u64, apps: Vec<Arc<AppSnapshot>>, counts: StatusCounts) -> Self {
        Self {
            version,
            apps,
            counts,
            json: OnceLock::new(),
            xml: OnceLock::new(),
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

    /// `GET /apps`: `versions__delta` is always 1 in a full fetch, as in Eureka.
    pub fn encoded(&self, format: Format) -> Bytes {
        cached(&self.json, &self.xml, format, |out| {
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
    json: OnceLock<Bytes>,
    xml: OnceLock<Bytes>,
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
            json: OnceLock::new(),
            xml: OnceLock::new(),
        }
    }

    /// `versions__delta` is the registry version, so an unchanged registry yields an
    /// identical delta and py-eureka-client skips merging it.
    pub fn encoded(&self, format: Format) -> Bytes {
        cached(&self.json, &self.xml, format, |out| {
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

fn cached(
    json: &OnceLock<Bytes>,
    xml: &OnceLock<Bytes>,
    format: Format,
    build: impl FnOnce(&mut Vec<u8>),
) -> Bytes {
    let cell = match format {
        Format::Json => json,
        Format::Xml => xml,
    };
    cell.get_or_init(|| {
        let mut out = Vec::new();
        build(&mut out);
        Bytes::from(out)
    })
    .clone()
}
