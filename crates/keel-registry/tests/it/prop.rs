//! Property: for any sequence of register, renew, cancel and status operations, a client that
//! synced at some point and then applies `/apps/delta` (through the wire format) ends up with
//! the full registry, and the delta's hashcode matches both.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_eureka::{ActionType, Format, InstanceStatus, decode_applications};
use keel_registry::{Origin, Registry, RegistryConfig, TokioClock};
use proptest::prelude::*;

use crate::support::{EPOCH_MS, app, id, instance};

#[derive(Clone, Debug)]
enum Op {
    Register(u8, u8, InstanceStatus),
    Renew(u8, u8),
    Cancel(u8, u8),
    Override(u8, u8, InstanceStatus),
    DeleteOverride(u8, u8),
    /// The client fetches the full registry.
    Sync,
}

fn status() -> impl Strategy<Value = InstanceStatus> {
    prop::sample::select(InstanceStatus::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let key = (0u8..3, 0u8..4);
    prop_oneof![
        3 => (key.clone(), status()).prop_map(|((a, i), s)| Op::Register(a, i, s)),
        2 => key.clone().prop_map(|(a, i)| Op::Renew(a, i)),
        2 => key.clone().prop_map(|(a, i)| Op::Cancel(a, i)),
        2 => (key.clone(), status()).prop_map(|((a, i), s)| Op::Override(a, i, s)),
        1 => key.prop_map(|(a, i)| Op::DeleteOverride(a, i)),
        1 => Just(Op::Sync),
    ]
}

type Copy = BTreeMap<(String, String), String>;

fn full(registry: &Registry) -> Copy {
    let body = registry.snapshot().encoded(Format::Json);
    let apps = decode_applications(Format::Json, &body).unwrap();
    apps.applications
        .iter()
        .flat_map(|a| a.instances.iter())
        .map(|i| {
            (
                (i.app.to_string(), i.instance_id.to_string()),
                i.status.to_string(),
            )
        })
        .collect()
}

fn hash(copy: &Copy) -> String {
    let counts: keel_eureka::StatusCounts = copy
        .values()
        .map(|s| InstanceStatus::parse(s).unwrap())
        .collect();
    counts.hashcode()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let r = Registry::new(
            RegistryConfig::default(),
            Arc::new(TokioClock::new(EPOCH_MS)),
        );
        let mut client = full(&r);
        let names = |a: u8, i: u8| (app(&format!("app{a}")), id(&format!("i{i}")));
        for op in ops {
            match op {
                Op::Register(a, i, s) => {
                    let mut info = instance(&format!("app{a}"), &format!("i{i}"), 30, 90);
                    info.status = s;
                    r.register(info, Origin::Client);
                }
                Op::Renew(a, i) => {
                    let (a, i) = names(a, i);
                    r.renew(&a, &i, None, None, Origin::Client);
                }
                Op::Cancel(a, i) => {
                    let (a, i) = names(a, i);
                    r.cancel(&a, &i, Origin::Client);
                }
                Op::Override(a, i, s) => {
                    let (a, i) = names(a, i);
                    r.set_status_override(&a, &i, s, None, Origin::Client);
                }
                Op::DeleteOverride(a, i) => {
                    let (a, i) = names(a, i);
                    r.delete_status_override(&a, &i, None, None, Origin::Client);
                }
                Op::Sync => client = full(&r),
            }
        }
        let delta = decode_applications(Format::Xml, &r.delta().encoded(Format::Xml)).unwrap();
        for a in &delta.applications {
            for i in &a.instances {
                let key = (i.app.to_string(), i.instance_id.to_string());
                match i.action_type {
                    Some(ActionType::Deleted) => {
                        client.remove(&key);
                    }
                    _ => {
                        client.insert(key, i.status.to_string());
                    }
                }
            }
        }
        let expected = full(&r);
        prop_assert_eq!(&client, &expected);
        prop_assert_eq!(&delta.apps_hashcode, &hash(&expected));
        prop_assert_eq!(&delta.apps_hashcode, &r.snapshot().hashcode());
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn delta_and_hashcode_agree_with_the_full_registry(ops in prop::collection::vec(op(), 0..40)) {
        run(ops)?;
    }
}
