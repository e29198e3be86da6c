//! Hand-written JSON writer for Eureka documents: appends straight into a `Vec<u8>`.

use crate::model::{DataCenterInfo, InstanceInfo, LeaseInfo, Metadata, Port};
use crate::wire::EMPTY_MAP_CLASS;

/// Appends `s` as a JSON string literal.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a decimal integer.
pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends an integer as a JSON string (`"1700000000123"`), as Eureka writes `@Auto` fields.
fn int_string(out: &mut Vec<u8>, v: i64) {
    out.push(b'"');
    int(out, v);
    out.push(b'"');
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn opt_field(out: &mut Vec<u8>, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        key(out, k);
        string(out, v);
    }
}

fn port(out: &mut Vec<u8>, p: Port) {
    out.extend_from_slice(b"{\"$\":");
    int(out, i64::from(p.port));
    out.extend_from_slice(if p.enabled {
        b",\"@enabled\":\"true\"}"
    } else {
        b",\"@enabled\":\"false\"}"
    });
}

fn metadata(out: &mut Vec<u8>, m: &Metadata) {
    if m.is_empty() {
        // Java's legacy codec writes an empty map as this marker; its readers expect it.
        out.extend_from_slice(b"{\"@class\":\"");
        out.extend_from_slice(EMPTY_MAP_CLASS.as_bytes());
        out.extend_from_slice(b"\"}");
        return;
    }
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        string(out, v);
    }
    out.push(b'}');
}

fn data_center(out: &mut Vec<u8>, dc: &DataCenterInfo) {
    out.extend_from_slice(b"{\"@class\":");
    string(out, &dc.class);
    out.extend_from_slice(b",\"name\":");
    string(out, &dc.name);
    if !dc.metadata.is_empty() {
        out.extend_from_slice(b",\"metadata\":");
        metadata(out, &dc.metadata);
    }
    out.push(b'}');
}

fn lease(out: &mut Vec<u8>, l: &LeaseInfo) {
    out.extend_from_slice(b"{\"renewalIntervalInSecs\":");
    int(out, i64::from(l.renewal_interval_in_secs));
    out.extend_from_slice(b",\"durationInSecs\":");
    int(out, i64::from(l.duration_in_secs));
    out.extend_from_slice(b",\"registrationTimestamp\":");
    int(out, l.registration_timestamp);
    out.extend_from_slice(b",\"lastRenewalTimestamp\":");
    int(out, l.last_renewal_timestamp);
    out.extend_from_slice(b",\"evictionTimestamp\":");
    int(out, l.eviction_timestamp);
    out.extend_from_slice(b",\"serviceUpTimestamp\":");
    int(out, l.service_up_timestamp);
    out.push(b'}');
}

/// Appends the bare instance object `{...}` in the Java server's field order
/// (`EurekaJacksonCodec`): fixed fields, then the `@Auto` fields as strings.
pub(crate) fn instance(out: &mut Vec<u8>, i: &InstanceInfo) {
    out.extend_from_slice(b"{\"instanceId\":");
    string(out, i.instance_id.as_str());
    key(out, "hostName");
    string(out, &i.host_name);
    key(out, "app");
    string(out, i.app.as_str());
    key(out, "ipAddr");
    string(out, &i.ip_addr);
    key(out, "status");
    string(out, i.status.as_str());
    // camelCase in JSON, lower-case in XML (Netflix/eureka#1051).
    key(out, "overriddenStatus");
    string(out, i.overridden_status.as_str());
    key(out, "port");
    port(out, i.port);
    key(out, "securePort");
    port(out, i.secure_port);
    key(out, "countryId");
    int(out, i64::from(i.country_id));
    key(out, "dataCenterInfo");
    data_center(out, &i.data_center_info);
    key(out, "leaseInfo");
    lease(out, &i.lease_info);
    key(out, "metadata");
    metadata(out, &i.metadata);
    opt_field(out, "appGroupName", i.app_group_name.as_deref());
    opt_field(out, "homePageUrl", i.home_page_url.as_deref());
    opt_field(out, "statusPageUrl", i.status_page_url.as_deref());
    opt_field(out, "healthCheckUrl", i.health_check_url.as_deref());
    opt_field(
        out,
        "secureHealthCheckUrl",
        i.secure_health_check_url.as_deref(),
    );
    opt_field(out, "vipAddress", i.vip_address.as_deref());
    opt_field(out, "secureVipAddress", i.secure_vip_address.as_deref());
    key(out, "isCoordinatingDiscoveryServer");
    out.extend_from_slice(if i.is_coordinating_discovery_server {
        b"\"true\""
    } else {
        b"\"false\""
    });
    key(out, "lastUpdatedTimestamp");
    int_string(out, i.last_updated_timestamp);
    key(out, "lastDirtyTimestamp");
    int_string(out, i.last_dirty_timestamp);
    opt_field(out, "actionType", i.action_type.map(|a| a.as_str()));
    opt_field(out, "asgName", i.asg_name.as_deref());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        for s in ["plain", "q\"b\\s", "ctl\u{1}\u{1f}\n\r\t", "ünï€😀", ""] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn ints_format_like_std() {
        for v in [0, 7, -1, 1_700_000_000_123, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
