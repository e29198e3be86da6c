//! Format-generic encoders, including writers that splice cached per-instance fragments.
//!
//! An *instance fragment* is one instance encoded on its own: the bare JSON object
//! `{"instanceId":...}` or the XML element `<instance>...</instance>`. Fragments are what
//! a registry caches per instance version; every larger document is built by splicing
//! them, so `GET /apps` costs one `memcpy` per instance. Eureka sets `actionType` on the
//! stored instance at each change and serves it in full fetches too, so the same fragment
//! serves `/apps` and `/apps/delta`.

use crate::format::Format;
use crate::json::encode as json;
use crate::model::{Application, Applications, InstanceInfo};
use crate::name::AppName;
use crate::xml::encode as xml;

/// Appends one instance fragment (no `{"instance":...}` wrapper in JSON).
pub fn encode_instance_fragment(format: Format, instance: &InstanceInfo, out: &mut Vec<u8>) {
    match format {
        Format::Json => json::instance(out, instance),
        Format::Xml => xml::instance(out, instance),
    }
}

/// Appends the response document for `GET /apps/{APP}/{ID}` and `GET /instances/{ID}`
/// built from a fragment: `{"instance":<fragment>}` in JSON, the fragment itself in XML.
pub fn write_instance_document(format: Format, fragment: &[u8], out: &mut Vec<u8>) {
    match format {
        Format::Json => {
            out.extend_from_slice(b"{\"instance\":");
            out.extend_from_slice(fragment);
            out.push(b'}');
        }
        Format::Xml => out.extend_from_slice(fragment),
    }
}

/// Appends the document for one instance (`{"instance":{...}}` or `<instance>...`).
pub fn encode_instance(format: Format, instance: &InstanceInfo, out: &mut Vec<u8>) {
    match format {
        Format::Json => {
            out.extend_from_slice(b"{\"instance\":");
            json::instance(out, instance);
            out.push(b'}');
        }
        Format::Xml => xml::instance(out, instance),
    }
}

/// Appends `{"application":{...}}` / `<application>...</application>`.
pub fn encode_application(format: Format, app: &Application, out: &mut Vec<u8>) {
    let mut w = ApplicationWriter::new(format, &app.name, out);
    for i in &app.instances {
        w.instance(i);
    }
    w.finish();
}

/// Appends `{"applications":{...}}` / `<applications>...</applications>`: a full registry
/// or a delta (instances carrying `action_type`).
pub fn encode_applications(format: Format, apps: &Applications, out: &mut Vec<u8>) {
    let mut w = ApplicationsWriter::new(format, apps.versions_delta, &apps.apps_hashcode, out);
    for app in &apps.applications {
        let mut scope = w.application(&app.name);
        for i in &app.instances {
            scope.instance(i);
        }
    }
    w.finish();
}

/// The part of an application element both writers share.
struct AppBody {
    format: Format,
    first_instance: bool,
}

impl AppBody {
    fn open(format: Format, name: &AppName, out: &mut Vec<u8>) -> Self {
        match format {
            Format::Json => {
                out.extend_from_slice(b"{\"name\":");
                json::string(out, name.as_str());
                out.extend_from_slice(b",\"instance\":[");
            }
            Format::Xml => {
                xml::open(out, "application");
                xml::text_el(out, "name", name.as_str());
            }
        }
        Self {
            format,
            first_instance: true,
        }
    }

    fn fragment(&mut self, fragment: &[u8], out: &mut Vec<u8>) {
        if self.format == Format::Json && !self.first_instance {
            out.push(b',');
        }
        self.first_instance = false;
        out.extend_from_slice(fragment);
    }

    fn instance(&mut self, instance: &InstanceInfo, out: &mut Vec<u8>) {
        if self.format == Format::Json && !self.first_instance {
            out.push(b',');
        }
        self.first_instance = false;
        encode_instance_fragment(self.format, instance, out);
    }

    fn close(self, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => out.extend_from_slice(b"]}"),
            Format::Xml => xml::close(out, "application"),
        }
    }
}

/// Streams `{"application":{"name":..,"instance":[..]}}` (or its XML) into a buffer,
/// instance by instance or fragment by fragment. Call [`ApplicationWriter::finish`] to
/// close the document; dropping the writer without it leaves the document open.
pub struct ApplicationWriter<'a> {
    out: &'a mut Vec<u8>,
    body: AppBody,
}

impl<'a> ApplicationWriter<'a> {
    pub fn new(format: Format, name: &AppName, out: &'a mut Vec<u8>) -> Self {
        if format == Format::Json {
            out.extend_from_slice(b"{\"application\":");
        }
        let body = AppBody::open(format, name, out);
        Self { out, body }
    }

    /// Splices a fragment from [`encode_instance_fragment`] in the same format.
    pub fn instance_fragment(&mut self, fragment: &[u8]) {
        self.body.fragment(fragment, self.out);
    }

    pub fn instance(&mut self, instance: &InstanceInfo) {
        self.body.instance(instance, self.out);
    }

    pub fn finish(self) {
        let format = self.body.format;
        self.body.close(self.out);
        if format == Format::Json {
            self.out.push(b'}');
        }
    }
}

/// Streams `{"applications":{"versions__delta":..,"apps__hashcode":..,"application":[..]}}`
/// (or its XML) into a buffer. Each [`ApplicationsWriter::application`] scope writes one
/// application and closes it when dropped.
///
/// ```
/// # use keel_eureka::*;
/// let app = AppName::parse("orders").unwrap();
/// let mut out = Vec::new();
/// let mut w = ApplicationsWriter::new(Format::Json, 1, "", &mut out);
/// w.application(&app); // an application with no instances
/// w.finish();
/// assert_eq!(out, br#"{"applications":{"versions__delta":"1","apps__hashcode":"","application":[{"name":"ORDERS","instance":[]}]}}"#);
/// ```
pub struct ApplicationsWriter<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    any_app: bool,
}

impl<'a> ApplicationsWriter<'a> {
    /// `versions_delta` is 1 for a full fetch; `apps_hashcode` is the *full* registry's
    /// hash even in a delta (see [`crate::StatusCounts`]).
    pub fn new(
        format: Format,
        versions_delta: i64,
        apps_hashcode: &str,
        out: &'a mut Vec<u8>,
    ) -> Self {
        match format {
            Format::Json => {
                // versions__delta is a string in Eureka's JSON.
                out.extend_from_slice(b"{\"applications\":{\"versions__delta\":\"");
                json::int(out, versions_delta);
                out.extend_from_slice(b"\",\"apps__hashcode\":");
                json::string(out, apps_hashcode);
                out.extend_from_slice(b",\"application\":[");
            }
            Format::Xml => {
                xml::open(out, "applications");
                xml::int_el(out, "versions__delta", versions_delta);
                xml::text_el(out, "apps__hashcode", apps_hashcode);
            }
        }
        Self {
            out,
            format,
            any_app: false,
        }
    }

    /// Opens the next application; it is closed when the returned scope is dropped.
    pub fn application(&mut self, name: &AppName) -> ApplicationScope<'_> {
        if self.format == Format::Json && self.any_app {
            self.out.push(b',');
        }
        self.any_app = true;
        let body = AppBody::open(self.format, name, self.out);
        ApplicationScope {
            out: self.out,
            body: Some(body),
        }
    }

    /// Closes the document.
    pub fn finish(self) {
        match self.format {
            Format::Json => self.out.extend_from_slice(b"]}}"),
            Format::Xml => xml::close(self.out, "applications"),
        }
    }
}

/// One application inside an [`ApplicationsWriter`]; closed on drop.
pub struct ApplicationScope<'w> {
    out: &'w mut Vec<u8>,
    body: Option<AppBody>,
}

impl ApplicationScope<'_> {
    /// Splices a fragment from [`encode_instance_fragment`] in the same format.
    pub fn instance_fragment(&mut self, fragment: &[u8]) {
        if let Some(body) = self.body.as_mut() {
            body.fragment(fragment, self.out);
        }
    }

    pub fn instance(&mut self, instance: &InstanceInfo) {
        if let Some(body) = self.body.as_mut() {
            body.instance(instance, self.out);
        }
    }
}

impl Drop for ApplicationScope<'_> {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            body.close(self.out);
        }
    }
}
