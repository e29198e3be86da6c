//! Encoding a 10k-instance registry as JSON and XML, against `serde_json::to_vec` of an
//! equivalent serde-derived struct (the named peer: `serde_json::to_writer` into a
//! pre-sized buffer, i.e. `to_vec` without its buffer growth), measured in the same run.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use keel_eureka::*;
use serde::Serialize;

const APPS: usize = 100;
const PER_APP: usize = 100;

fn registry() -> Applications {
    let mut apps = Applications {
        versions_delta: 1,
        ..Applications::default()
    };
    for a in 0..APPS {
        let name = AppName::parse(&format!("service-{a}")).unwrap();
        let mut app = Application {
            name: name.clone(),
            instances: Vec::with_capacity(PER_APP),
        };
        for n in 0..PER_APP {
            let ip = format!("10.{}.{}.{}", a / 256, a % 256, n);
            let id = InstanceId::parse(&format!("{ip}:service-{a}:8080")).unwrap();
            let mut i = InstanceInfo::new(name.clone(), id, &ip, &ip);
            i.port = Port::new(8080, true);
            i.lease_info.registration_timestamp = 1_700_000_000_000;
            i.lease_info.last_renewal_timestamp = 1_700_000_090_000;
            i.lease_info.service_up_timestamp = 1_700_000_000_000;
            i.metadata.insert("management.port".into(), "8080".into());
            i.metadata.insert("zone".into(), "zone1".into());
            i.home_page_url = Some(format!("http://{ip}:8080/"));
            i.status_page_url = Some(format!("http://{ip}:8080/actuator/info"));
            i.health_check_url = Some(format!("http://{ip}:8080/actuator/health"));
            i.vip_address = Some(format!("service-{a}"));
            i.secure_vip_address = Some(format!("service-{a}"));
            i.last_updated_timestamp = 1_700_000_000_123;
            i.last_dirty_timestamp = 1_700_000_000_001;
            i.action_type = Some(ActionType::Added);
            app.instances.push(i);
        }
        apps.applications.push(app);
    }
    apps.apps_hashcode = apps.reconcile_hashcode();
    apps
}

// ---- the peer: the same document through serde derive + serde_json::to_vec ----

#[derive(Serialize)]
struct PeerDoc {
    applications: PeerApps,
}

#[derive(Serialize)]
struct PeerApps {
    #[serde(rename = "versions__delta")]
    versions_delta: String,
    #[serde(rename = "apps__hashcode")]
    apps_hashcode: String,
    application: Vec<PeerApp>,
}

#[derive(Serialize)]
struct PeerApp {
    name: String,
    instance: Vec<PeerInstance>,
}

#[derive(Serialize)]
struct PeerPort {
    #[serde(rename = "$")]
    port: u16,
    #[serde(rename = "@enabled")]
    enabled: String,
}

#[derive(Serialize)]
struct PeerDataCenter {
    #[serde(rename = "@class")]
    class: String,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerLease {
    renewal_interval_in_secs: u32,
    duration_in_secs: u32,
    registration_timestamp: i64,
    last_renewal_timestamp: i64,
    eviction_timestamp: i64,
    service_up_timestamp: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PeerInstance {
    instance_id: String,
    host_name: String,
    app: String,
    ip_addr: String,
    status: &'static str,
    overridden_status: &'static str,
    port: PeerPort,
    secure_port: PeerPort,
    country_id: i32,
    data_center_info: PeerDataCenter,
    lease_info: PeerLease,
    metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_page_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_page_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vip_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secure_vip_address: Option<String>,
    is_coordinating_discovery_server: String,
    last_updated_timestamp: String,
    last_dirty_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_type: Option<&'static str>,
}

fn peer_port(p: Port) -> PeerPort {
    PeerPort {
        port: p.port,
        enabled: p.enabled.to_string(),
    }
}

fn peer(apps: &Applications) -> PeerDoc {
    PeerDoc {
        applications: PeerApps {
            versions_delta: apps.versions_delta.to_string(),
            apps_hashcode: apps.apps_hashcode.clone(),
            application: apps
                .applications
                .iter()
                .map(|a| PeerApp {
                    name: a.name.to_string(),
                    instance: a
                        .instances
                        .iter()
                        .map(|i| PeerInstance {
                            instance_id: i.instance_id.to_string(),
                            host_name: i.host_name.clone(),
                            app: i.app.to_string(),
                            ip_addr: i.ip_addr.clone(),
                            status: i.status.as_str(),
                            overridden_status: i.overridden_status.as_str(),
                            port: peer_port(i.port),
                            secure_port: peer_port(i.secure_port),
                            country_id: i.country_id,
                            data_center_info: PeerDataCenter {
                                class: i.data_center_info.class.to_string(),
                                name: i.data_center_info.name.to_string(),
                            },
                            lease_info: PeerLease {
                                renewal_interval_in_secs: i.lease_info.renewal_interval_in_secs,
                                duration_in_secs: i.lease_info.duration_in_secs,
                                registration_timestamp: i.lease_info.registration_timestamp,
                                last_renewal_timestamp: i.lease_info.last_renewal_timestamp,
                                eviction_timestamp: i.lease_info.eviction_timestamp,
                                service_up_timestamp: i.lease_info.service_up_timestamp,
                            },
                            metadata: i.metadata.clone().into(),
                            home_page_url: i.home_page_url.clone(),
                            status_page_url: i.status_page_url.clone(),
                            health_check_url: i.health_check_url.clone(),
                            vip_address: i.vip_address.clone(),
                            secure_vip_address: i.secure_vip_address.clone(),
                            is_coordinating_discovery_server: i
                                .is_coordinating_discovery_server
                                .to_string(),
                            last_updated_timestamp: i.last_updated_timestamp.to_string(),
                            last_dirty_timestamp: i.last_dirty_timestamp.to_string(),
                            action_type: i.action_type.map(|a| a.as_str()),
                        })
                        .collect(),
                })
                .collect(),
        },
    }
}

/// Cached fragments, as the registry keeps them, spliced into a document.
fn splice(format: Format, apps: &Applications, fragments: &[Vec<Vec<u8>>], out: &mut Vec<u8>) {
    let mut w = ApplicationsWriter::new(format, apps.versions_delta, &apps.apps_hashcode, out);
    for (app, frags) in apps.applications.iter().zip(fragments) {
        let mut scope = w.application(&app.name);
        for f in frags {
            scope.instance_fragment(f);
        }
    }
    w.finish();
}

fn fragments(format: Format, apps: &Applications) -> Vec<Vec<Vec<u8>>> {
    apps.applications
        .iter()
        .map(|a| {
            a.instances
                .iter()
                .map(|i| {
                    let mut v = Vec::new();
                    encode_instance_fragment(format, i, &mut v);
                    v
                })
                .collect()
        })
        .collect()
}

fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut samples: Vec<Duration> = (0..31)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let apps = registry();
    let peer_doc = peer(&apps);
    let json_frags = fragments(Format::Json, &apps);
    let xml_frags = fragments(Format::Xml, &apps);

    // Same document: our JSON parses to the same value as the peer's.
    let mut ours = Vec::new();
    encode_applications(Format::Json, &apps, &mut ours);
    let theirs = serde_json::to_vec(&peer_doc).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&ours).unwrap(),
        serde_json::from_slice::<serde_json::Value>(&theirs).unwrap()
    );
    let capacity = ours.len() * 2;

    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("encode_10k_instances");
    g.throughput(Throughput::Elements((APPS * PER_APP) as u64));
    // Both sides write into a buffer pre-sized to the same capacity, so the ratio
    // compares encoding, not buffer growth.
    g.bench_function("peer_serde_json_to_writer", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(capacity);
            serde_json::to_writer(&mut out, black_box(&peer_doc)).unwrap();
            out
        })
    });
    for format in [Format::Json, Format::Xml] {
        g.bench_function(format!("keel_{format:?}"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(capacity);
                encode_applications(format, black_box(&apps), &mut out);
                out
            })
        });
    }
    g.bench_function("keel_Json_spliced_fragments", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(capacity);
            splice(Format::Json, black_box(&apps), &json_frags, &mut out);
            out
        })
    });
    g.finish();
    c.final_summary();

    let peer_t = median(|| {
        let mut out = Vec::with_capacity(capacity);
        serde_json::to_writer(&mut out, black_box(&peer_doc)).unwrap();
        black_box(out);
    });
    let run = |f: &dyn Fn(&mut Vec<u8>)| {
        median(|| {
            let mut out = Vec::with_capacity(capacity);
            f(&mut out);
            black_box(out);
        })
    };
    let json_t = run(&|o| encode_applications(Format::Json, &apps, o));
    let xml_t = run(&|o| encode_applications(Format::Xml, &apps, o));
    let json_splice_t = run(&|o| splice(Format::Json, &apps, &json_frags, o));
    let xml_splice_t = run(&|o| splice(Format::Xml, &apps, &xml_frags, o));
    let ratio = |t: Duration| peer_t.as_secs_f64() / t.as_secs_f64();
    println!(
        "\n10k instances, median of 31 (peer = serde_json::to_writer of a serde-derived mirror struct):"
    );
    println!(
        "  peer serde_json::to_writer   {peer_t:>10.2?}  ({} bytes)",
        theirs.len()
    );
    println!(
        "  keel JSON encode             {json_t:>10.2?}  {:.2}x peer  ({} bytes)",
        ratio(json_t),
        ours.len()
    );
    println!(
        "  keel XML encode              {xml_t:>10.2?}  {:.2}x peer",
        ratio(xml_t)
    );
    println!(
        "  keel JSON, cached fragments  {json_splice_t:>10.2?}  {:.2}x peer",
        ratio(json_splice_t)
    );
    println!(
        "  keel XML, cached fragments   {xml_splice_t:>10.2?}  {:.2}x peer",
        ratio(xml_splice_t)
    );
}
