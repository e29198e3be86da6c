//! Eureka's XML dialect (XStream's shape): decoding request bodies and encoding responses.

mod dom;
pub(crate) mod encode;

use dom::Element;

use crate::error::DecodeError;
use crate::json::lenient::{parse_bool, parse_int};
use crate::model::{Application, Applications, InstanceInfo, Metadata};
use crate::wire::{
    ApplicationWire, ApplicationsWire, DataCenterWire, InstanceWire, LeaseWire, PortWire,
    is_metadata_marker,
};

/// Decodes `<instance>...</instance>`. Documents with a DTD or custom entities are refused.
pub fn decode_instance(body: &[u8]) -> Result<InstanceInfo, DecodeError> {
    let root = root(body, "instance")?;
    instance(root, "instance")?.into_model("instance")
}

/// Decodes `<application>...</application>`.
pub fn decode_application(body: &[u8]) -> Result<Application, DecodeError> {
    let root = root(body, "application")?;
    application(root, "application")?.into_model("application")
}

/// Decodes `<applications>...</applications>`: a full registry or a delta.
pub fn decode_applications(body: &[u8]) -> Result<Applications, DecodeError> {
    let root = root(body, "applications")?;
    let path = "applications";
    let mut wire = ApplicationsWire::default();
    for child in root.children {
        match child.name.as_str() {
            "versions__delta" => wire.versions_delta = int(&child, path)?,
            "apps__hashcode" => wire.apps_hashcode = Some(child.text),
            "application" => wire
                .application
                .push(application(child, "applications.application")?),
            _ => {}
        }
    }
    wire.into_model(path)
}

fn root(body: &[u8], expected: &str) -> Result<Element, DecodeError> {
    let root = dom::parse(body)?;
    if root.name != expected {
        return Err(DecodeError::Xml(format!(
            "expected root element <{expected}>, found <{}>",
            root.name
        )));
    }
    Ok(root)
}

fn int(el: &Element, path: &str) -> Result<Option<i64>, DecodeError> {
    parse_int(&el.text).ok_or_else(|| {
        DecodeError::invalid(
            path,
            &el.name,
            format!("expected an integer, found {:?}", el.text),
        )
    })
}

fn boolean(el: &Element, path: &str) -> Result<Option<bool>, DecodeError> {
    if el.text.trim().is_empty() {
        return Ok(None);
    }
    parse_bool(&el.text).map(Some).ok_or_else(|| {
        DecodeError::invalid(
            path,
            &el.name,
            format!("expected true or false, found {:?}", el.text),
        )
    })
}

fn application(el: Element, path: &str) -> Result<ApplicationWire, DecodeError> {
    let mut wire = ApplicationWire::default();
    for child in el.children {
        match child.name.as_str() {
            "name" => wire.name = Some(child.text),
            "instance" => wire
                .instance
                .push(instance(child, &crate::error::join(path, "instance"))?),
            _ => {}
        }
    }
    Ok(wire)
}

fn port(el: &Element, path: &str) -> Result<PortWire, DecodeError> {
    let enabled = match el.attr("enabled") {
        None => None,
        Some(v) => Some(parse_bool(v).ok_or_else(|| {
            DecodeError::invalid(
                path,
                &el.name,
                format!("enabled must be true or false, found {v:?}"),
            )
        })?),
    };
    Ok(PortWire {
        port: int(el, path)?,
        enabled,
    })
}

/// XStream's `XmlFriendlyNameCoder` writes `$` as `_-` and `_` as `__`; undo that.
fn metadata_key(name: &str) -> String {
    if !name.contains('_') {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('_', Some('_')) => {
                chars.next();
                out.push('_');
            }
            ('_', Some('-')) => {
                chars.next();
                out.push('$');
            }
            _ => out.push(c),
        }
    }
    out
}

fn metadata(el: Element) -> Metadata {
    el.children
        .into_iter()
        .map(|c| (metadata_key(&c.name), c.text))
        .filter(|(k, v)| !is_metadata_marker(k, v))
        .collect()
}

fn data_center(el: Element) -> DataCenterWire {
    let mut wire = DataCenterWire {
        class: el.attr("class").map(str::to_owned),
        ..DataCenterWire::default()
    };
    for child in el.children {
        match child.name.as_str() {
            "name" => wire.name = Some(child.text),
            "metadata" => {
                wire.metadata = Some(crate::json::lenient::MetadataWire(metadata(child)));
            }
            _ => {}
        }
    }
    wire
}

fn lease(el: Element, path: &str) -> Result<LeaseWire, DecodeError> {
    let path = &crate::error::join(path, "leaseInfo");
    let mut w = LeaseWire::default();
    for c in &el.children {
        let slot = match c.name.as_str() {
            "renewalIntervalInSecs" => &mut w.renewal_interval_in_secs,
            "durationInSecs" => &mut w.duration_in_secs,
            "registrationTimestamp" => &mut w.registration_timestamp,
            "lastRenewalTimestamp" => &mut w.last_renewal_timestamp,
            "renewalTimestamp" => &mut w.renewal_timestamp,
            "evictionTimestamp" => &mut w.eviction_timestamp,
            "serviceUpTimestamp" => &mut w.service_up_timestamp,
            _ => continue,
        };
        *slot = int(c, path)?;
    }
    Ok(w)
}

fn instance(el: Element, path: &str) -> Result<InstanceWire, DecodeError> {
    let mut w = InstanceWire::default();
    for c in el.children {
        match c.name.as_str() {
            "instanceId" => w.instance_id = Some(c.text),
            "hostName" => w.host_name = Some(c.text),
            "app" => w.app = Some(c.text),
            "appGroupName" => w.app_group_name = Some(c.text),
            "ipAddr" => w.ip_addr = Some(c.text),
            "status" => w.status = Some(c.text),
            "overriddenstatus" => w.overriddenstatus = Some(c.text),
            "overriddenStatus" => w.overridden_status = Some(c.text),
            "port" => w.port = Some(port(&c, path)?),
            "securePort" => w.secure_port = Some(port(&c, path)?),
            "countryId" => w.country_id = int(&c, path)?,
            "dataCenterInfo" => w.data_center_info = Some(data_center(c)),
            "leaseInfo" => w.lease_info = Some(lease(c, path)?),
            "metadata" => w.metadata = Some(crate::json::lenient::MetadataWire(metadata(c))),
            "homePageUrl" => w.home_page_url = Some(c.text),
            "statusPageUrl" => w.status_page_url = Some(c.text),
            "healthCheckUrl" => w.health_check_url = Some(c.text),
            "secureHealthCheckUrl" => w.secure_health_check_url = Some(c.text),
            "vipAddress" => w.vip_address = Some(c.text),
            "secureVipAddress" => w.secure_vip_address = Some(c.text),
            "isCoordinatingDiscoveryServer" => {
                w.is_coordinating_discovery_server = boolean(&c, path)?;
            }
            "lastUpdatedTimestamp" => w.last_updated_timestamp = int(&c, path)?,
            "lastDirtyTimestamp" => w.last_dirty_timestamp = int(&c, path)?,
            "actionType" => w.action_type = Some(c.text),
            "asgName" => w.asg_name = Some(c.text),
            _ => {}
        }
    }
    Ok(w)
}
