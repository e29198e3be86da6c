//! Hand-written XML writer for Eureka documents, in XStream's element names and order.
//!
//! No `<?xml ...?>` declaration: py-eureka-client feeds some responses to
//! `ElementTree.fromstring` as a `str`, which rejects a declaration naming an encoding.

use crate::json::encode::int;
use crate::model::{DataCenterInfo, InstanceInfo, LeaseInfo, Metadata, Port};
use crate::wire::EMPTY_MAP_CLASS;

/// Appends `s` escaped for text or attribute content. Characters XML 1.0 cannot carry
/// (most C0 controls, U+FFFE, U+FFFF) become U+FFFD so the document stays well-formed.
pub(crate) fn text(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            // A literal CR would be normalised to LF by the reader.
            b'\r' => b"&#13;",
            b'\t' | b'\n' => continue,
            0..=0x1f => "\u{FFFD}".as_bytes(),
            // U+FFFE / U+FFFF are EF BF BE / EF BF BF.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice("\u{FFFD}".as_bytes());
                start = i + 3;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    if start < bytes.len() {
        out.extend_from_slice(&bytes[start..]);
    }
}

pub(crate) fn open(out: &mut Vec<u8>, name: &str) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

pub(crate) fn close(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"</");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
}

pub(crate) fn text_el(out: &mut Vec<u8>, name: &str, value: &str) {
    open(out, name);
    text(out, value);
    close(out, name);
}

pub(crate) fn int_el(out: &mut Vec<u8>, name: &str, value: i64) {
    open(out, name);
    int(out, value);
    close(out, name);
}

fn opt_el(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        text_el(out, name, v);
    }
}

/// py-eureka-client indexes `attrib["enabled"]`, so the attribute is always written.
fn port(out: &mut Vec<u8>, name: &str, p: Port) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(if p.enabled {
        b" enabled=\"true\">"
    } else {
        b" enabled=\"false\">"
    });
    int(out, i64::from(p.port));
    close(out, name);
}

/// Whether a metadata key, once `$` is coded as `_-`, is an element name that Java
/// (XStream) and Python (ElementTree) both read back. No `:`: ElementTree rejects
/// unbound namespace prefixes.
fn is_safe_element_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || matches!(first, '_' | '$'))
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '$'))
}

/// XStream's name coding: `_` is written `__`, `$` is written `_-`.
fn metadata_key(out: &mut Vec<u8>, key: &str) {
    for c in key.chars() {
        match c {
            '_' => out.extend_from_slice(b"__"),
            '$' => out.extend_from_slice(b"_-"),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

fn metadata(out: &mut Vec<u8>, m: &Metadata) {
    if m.is_empty() {
        out.extend_from_slice(b"<metadata class=\"");
        out.extend_from_slice(EMPTY_MAP_CLASS.as_bytes());
        out.extend_from_slice(b"\"/>");
        return;
    }
    open(out, "metadata");
    for (k, v) in m {
        // Keys become element names; a key no XML name can carry is left out of the XML
        // rather than breaking the whole document (JSON keeps it).
        if !is_safe_element_name(k) {
            continue;
        }
        out.push(b'<');
        metadata_key(out, k);
        out.push(b'>');
        text(out, v);
        out.extend_from_slice(b"</");
        metadata_key(out, k);
        out.push(b'>');
    }
    close(out, "metadata");
}

fn data_center(out: &mut Vec<u8>, dc: &DataCenterInfo) {
    // py-eureka-client indexes `attrib["class"]`.
    out.extend_from_slice(b"<dataCenterInfo class=\"");
    text(out, &dc.class);
    out.extend_from_slice(b"\">");
    text_el(out, "name", &dc.name);
    if !dc.metadata.is_empty() {
        metadata(out, &dc.metadata);
    }
    close(out, "dataCenterInfo");
}

fn lease(out: &mut Vec<u8>, l: &LeaseInfo) {
    open(out, "leaseInfo");
    int_el(
        out,
        "renewalIntervalInSecs",
        i64::from(l.renewal_interval_in_secs),
    );
    int_el(out, "durationInSecs", i64::from(l.duration_in_secs));
    int_el(out, "registrationTimestamp", l.registration_timestamp);
    int_el(out, "lastRenewalTimestamp", l.last_renewal_timestamp);
    int_el(out, "evictionTimestamp", l.eviction_timestamp);
    int_el(out, "serviceUpTimestamp", l.service_up_timestamp);
    close(out, "leaseInfo");
}

/// Appends `<instance>...</instance>`.
pub(crate) fn instance(out: &mut Vec<u8>, i: &InstanceInfo) {
    open(out, "instance");
    text_el(out, "instanceId", i.instance_id.as_str());
    text_el(out, "hostName", &i.host_name);
    text_el(out, "app", i.app.as_str());
    text_el(out, "ipAddr", &i.ip_addr);
    text_el(out, "status", i.status.as_str());
    // Lower-case in XML; py-eureka-client looks for exactly this tag.
    text_el(out, "overriddenstatus", i.overridden_status.as_str());
    port(out, "port", i.port);
    port(out, "securePort", i.secure_port);
    int_el(out, "countryId", i64::from(i.country_id));
    data_center(out, &i.data_center_info);
    lease(out, &i.lease_info);
    metadata(out, &i.metadata);
    opt_el(out, "appGroupName", i.app_group_name.as_deref());
    opt_el(out, "homePageUrl", i.home_page_url.as_deref());
    opt_el(out, "statusPageUrl", i.status_page_url.as_deref());
    opt_el(out, "healthCheckUrl", i.health_check_url.as_deref());
    opt_el(
        out,
        "secureHealthCheckUrl",
        i.secure_health_check_url.as_deref(),
    );
    opt_el(out, "vipAddress", i.vip_address.as_deref());
    opt_el(out, "secureVipAddress", i.secure_vip_address.as_deref());
    text_el(
        out,
        "isCoordinatingDiscoveryServer",
        if i.is_coordinating_discovery_server {
            "true"
        } else {
            "false"
        },
    );
    // py-eureka-client does int(text) on these, so they are always written.
    int_el(out, "lastUpdatedTimestamp", i.last_updated_timestamp);
    int_el(out, "lastDirtyTimestamp", i.last_dirty_timestamp);
    opt_el(out, "actionType", i.action_type.map(|a| a.as_str()));
    opt_el(out, "asgName", i.asg_name.as_deref());
    close(out, "instance");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = Vec::new();
        text(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_is_escaped_and_kept_well_formed() {
        assert_eq!(esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(esc("tab\tnl\ncr\r"), "tab\tnl\ncr&#13;");
        assert_eq!(esc("nul\u{0}x"), "nul\u{FFFD}x");
        assert_eq!(
            esc("a\u{FFFE}b\u{FFFF}c\u{FFFD}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(esc("ünï€😀"), "ünï€😀");
    }

    #[test]
    fn metadata_names_use_xstream_coding() {
        let mut m = Metadata::new();
        m.insert("a_b".into(), "1".into());
        m.insert("x$y".into(), "2".into());
        m.insert("bad key".into(), "3".into());
        m.insert("9lives".into(), "4".into());
        m.insert("ns:key".into(), "5".into());
        let mut out = Vec::new();
        metadata(&mut out, &m);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<metadata><a__b>1</a__b><x_-y>2</x_-y></metadata>"
        );
    }
}
