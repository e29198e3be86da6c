//! The engine under a paused clock: expiry at 1× duration, self-preservation, timestamp and
//! override rules. No real sleeps: tokio's paused time drives both deadlines and wall clock.

use std::sync::Arc;
use std::time::Duration;

use keel_eureka::{ActionType, InstanceStatus};
use keel_registry::{
    Change, Origin, Registry, RegistryConfig, RenewOutcome, SelfPreservationConfig, TokioClock,
    WatchStart,
};
use tokio::time::sleep;

use crate::support::{EPOCH_MS, app, gunzip, id, instance, statuses};

fn registry(config: RegistryConfig) -> Registry {
    Registry::new(config, Arc::new(TokioClock::new(EPOCH_MS)))
}

fn ids(registry: &Registry) -> Vec<String> {
    statuses(registry).into_iter().map(|(id, _)| id).collect()
}

/// Renews the given instances every second until the returned handle is aborted.
fn keep_renewing(registry: &Registry, names: Vec<String>) -> tokio::task::JoinHandle<()> {
    let registry = registry.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for n in &names {
                registry.renew(&app("svc"), &id(n), None, None, Origin::Client);
            }
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_at_one_times_its_duration() {
    let r = registry(RegistryConfig::default());
    r.register(instance("svc", "a", 1, 3), Origin::Client);
    sleep(Duration::from_millis(2_900)).await;
    assert_eq!(ids(&r), ["a"], "still inside its 3 s lease");
    // A renewal at 2.9 s moves the deadline to 5.9 s.
    assert!(matches!(
        r.renew(&app("svc"), &id("a"), None, None, Origin::Client),
        RenewOutcome::Renewed
    ));
    sleep(Duration::from_millis(2_900)).await;
    assert_eq!(ids(&r), ["a"]);
    sleep(Duration::from_millis(200)).await;
    assert!(ids(&r).is_empty(), "expired at last renewal + 1× duration");
    let delta = r.delta();
    let deleted = &delta.apps[0].1[0];
    assert_eq!(deleted.info().action_type, Some(ActionType::Deleted));
    assert_eq!(delta.hashcode, "");
}

#[tokio::test(start_paused = true)]
async fn each_lease_uses_its_own_duration() {
    let r = registry(RegistryConfig::default());
    r.register(instance("svc", "short", 1, 2), Origin::Client);
    r.register(instance("svc", "long", 30, 90), Origin::Client);
    sleep(Duration::from_millis(2_100)).await;
    assert_eq!(ids(&r), ["long"]);
    sleep(Duration::from_secs(87)).await;
    assert_eq!(ids(&r), ["long"]);
    sleep(Duration::from_secs(1)).await;
    assert!(ids(&r).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_small_registry_still_expires_a_crashed_instance() {
    let r = registry(RegistryConfig::default());
    for n in ["a", "b", "c"] {
        r.register(instance("svc", n, 1, 3), Origin::Client);
    }
    let renewer = keep_renewing(&r, vec!["a".into(), "b".into()]);
    sleep(Duration::from_secs(10)).await;
    assert_eq!(
        ids(&r),
        ["a", "b"],
        "c crashed; a third of 3 instances is below the floor"
    );
    assert!(!r.self_preservation().engaged);
    renewer.abort();
}

#[tokio::test(start_paused = true)]
async fn self_preservation_engages_when_renewals_collapse_and_recovers() {
    let config = RegistryConfig {
        self_preservation: SelfPreservationConfig {
            max_hold: Duration::from_secs(60),
            ..SelfPreservationConfig::default()
        },
        ..RegistryConfig::default()
    };
    let r = registry(config);
    let names: Vec<String> = (0..20).map(|i| format!("i{i:02}")).collect();
    for n in &names {
        r.register(instance("svc", n, 1, 3), Origin::Client);
    }
    let renewer = keep_renewing(&r, names.clone());
    sleep(Duration::from_secs(5)).await;
    assert!(!r.self_preservation().engaged);

    // The registry is cut off from every client: no renewals at all.
    renewer.abort();
    sleep(Duration::from_secs(10)).await;
    let status = r.self_preservation();
    assert!(status.engaged, "{status:?}");
    assert_eq!(ids(&r).len(), 20, "nothing expires while preserved");

    // The partition heals: renewals come back and preservation lets go by itself.
    let renewer = keep_renewing(&r, names.clone());
    sleep(Duration::from_secs(3)).await;
    assert!(!r.self_preservation().engaged);
    assert_eq!(ids(&r).len(), 20);
    renewer.abort();

    // Five of twenty (25 %) crash for good: preservation engages, but holds their leases
    // only for max_hold, then expires them and recovers.
    let renewer = keep_renewing(&r, names[5..].to_vec());
    sleep(Duration::from_secs(10)).await;
    assert!(r.self_preservation().engaged);
    assert_eq!(ids(&r).len(), 20);
    sleep(Duration::from_secs(60)).await;
    assert_eq!(ids(&r), names[5..].to_vec());
    assert!(!r.self_preservation().engaged);
    renewer.abort();
}

#[tokio::test(start_paused = true)]
async fn disabled_self_preservation_expires_everything() {
    let config = RegistryConfig {
        self_preservation: SelfPreservationConfig {
            enabled: false,
            ..SelfPreservationConfig::default()
        },
        ..RegistryConfig::default()
    };
    let r = registry(config);
    for i in 0..20 {
        r.register(instance("svc", &format!("i{i}"), 1, 3), Origin::Client);
    }
    sleep(Duration::from_secs(4)).await;
    assert!(ids(&r).is_empty());
    assert!(!r.self_preservation().engaged);
}

#[tokio::test(start_paused = true)]
async fn replicated_renewals_count_for_self_preservation() {
    let r = registry(RegistryConfig::default());
    let names: Vec<String> = (0..20).map(|i| format!("i{i:02}")).collect();
    for n in &names {
        r.register(instance("svc", n, 1, 3), Origin::Client);
    }
    let peer = {
        let r = r.clone();
        let names = names.clone();
        tokio::spawn(async move {
            loop {
                sleep(Duration::from_secs(1)).await;
                for n in &names {
                    r.renew(&app("svc"), &id(n), None, None, Origin::Replicated);
                }
            }
        })
    };
    sleep(Duration::from_secs(10)).await;
    assert!(!r.self_preservation().engaged);
    assert_eq!(ids(&r).len(), 20);
    peer.abort();
}

#[tokio::test(start_paused = true)]
async fn last_dirty_timestamp_rules() {
    let r = registry(RegistryConfig::default());
    let (a, i) = (app("svc"), id("x"));
    r.register(instance("svc", "x", 30, 90), Origin::Client); // lastDirtyTimestamp 1000
    let renew = |ts, origin| r.renew(&a, &i, Some(ts), None, origin);
    assert!(
        matches!(renew(2000, Origin::Client), RenewOutcome::NotFound),
        "newer than ours: re-register"
    );
    assert!(
        matches!(renew(500, Origin::Client), RenewOutcome::Renewed),
        "older, from a client"
    );
    match renew(500, Origin::Replicated) {
        RenewOutcome::Conflict(ours) => assert_eq!(ours.info().last_dirty_timestamp, 1000),
        other => panic!("expected 409, got {other:?}"),
    }
    assert!(matches!(
        renew(1000, Origin::Replicated),
        RenewOutcome::Renewed
    ));
    assert!(matches!(
        r.renew(&a, &i, None, None, Origin::Client),
        RenewOutcome::Renewed
    ));

    // A registration older than our copy does not overwrite it; a tie does.
    let mut stale = instance("svc", "x", 30, 90);
    stale.last_dirty_timestamp = 999;
    stale.host_name = "stale".into();
    r.register(stale, Origin::Replicated);
    assert_eq!(
        r.snapshot().instance(&a, &i).unwrap().info().host_name,
        "127.0.0.1"
    );
    let mut tie = instance("svc", "x", 30, 90);
    tie.host_name = "tie".into();
    r.register(tie, Origin::Replicated);
    assert_eq!(
        r.snapshot().instance(&a, &i).unwrap().info().host_name,
        "tie"
    );
}

#[tokio::test(start_paused = true)]
async fn status_overrides_follow_eurekas_rules() {
    let r = registry(RegistryConfig::default());
    let (a, i) = (app("svc"), id("x"));
    r.register(instance("svc", "x", 30, 90), Origin::Client);
    assert!(r.set_status_override(&a, &i, InstanceStatus::OutOfService, None, Origin::Client));
    assert_eq!(statuses(&r), [("x".into(), InstanceStatus::OutOfService)]);
    // Heartbeats and a re-registration reporting UP keep the override.
    assert!(matches!(
        r.renew(&a, &i, None, None, Origin::Client),
        RenewOutcome::Renewed
    ));
    r.register(instance("svc", "x", 30, 90), Origin::Client);
    let snap = r.snapshot();
    let info = snap.instance(&a, &i).unwrap().info();
    assert_eq!(
        (info.status, info.overridden_status),
        (InstanceStatus::OutOfService, InstanceStatus::OutOfService)
    );
    // A reported DOWN beats the override.
    let mut down = instance("svc", "x", 30, 90);
    down.status = InstanceStatus::Down;
    r.register(down, Origin::Client);
    assert_eq!(statuses(&r), [("x".into(), InstanceStatus::Down)]);
    r.register(instance("svc", "x", 30, 90), Origin::Client);

    // Removing the override leaves UNKNOWN; the next heartbeat gets 404 and re-registers UP.
    assert!(r.delete_status_override(&a, &i, None, None, Origin::Client));
    assert_eq!(statuses(&r), [("x".into(), InstanceStatus::Unknown)]);
    assert!(matches!(
        r.renew(&a, &i, None, None, Origin::Client),
        RenewOutcome::NotFound
    ));
    r.register(instance("svc", "x", 30, 90), Origin::Client);
    assert_eq!(statuses(&r), [("x".into(), InstanceStatus::Up)]);
    assert!(!r.set_status_override(&a, &id("nope"), InstanceStatus::Down, None, Origin::Client));
}

#[tokio::test(start_paused = true)]
async fn reads_reflect_every_write_and_watchers_see_cancels_at_once() {
    let r = registry(RegistryConfig::default());
    let watch = r.watch(None);
    let WatchStart::Snapshot(s) = watch.start else {
        panic!("expected a snapshot")
    };
    assert_eq!(s.version, 0);
    let mut events = watch.events;
    r.register(instance("svc", "x", 30, 90), Origin::Client);
    assert_eq!(r.snapshot().version, 1);
    assert_eq!(r.snapshot().hashcode(), "UP_1_");
    assert!(r.set_status_override(
        &app("svc"),
        &id("x"),
        InstanceStatus::Down,
        None,
        Origin::Client
    ));
    assert_eq!(r.snapshot().hashcode(), "DOWN_1_");
    assert!(r.cancel(&app("svc"), &id("x"), Origin::Client));
    assert_eq!(r.snapshot().hashcode(), "");
    let kinds: Vec<_> = (0..3)
        .map(|_| {
            let e = events.try_recv().expect("event already delivered");
            (
                e.version,
                matches!(e.change, Change::Delete(_)),
                e.change.record().info().status,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, false, InstanceStatus::Up),
            (2, false, InstanceStatus::Down),
            (3, true, InstanceStatus::Down)
        ]
    );
    // Resuming after version 1 replays exactly what came later.
    let resumed = r.watch(Some(1));
    let WatchStart::Replay(missed) = resumed.start else {
        panic!("expected a replay")
    };
    assert_eq!(missed.iter().map(|e| e.version).collect::<Vec<_>>(), [2, 3]);
}

/// Records what a replicator would be told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl keel_registry::WriteObserver for Recorder {
    fn on_local_write(&self, write: keel_registry::LocalWrite) {
        use keel_registry::LocalWrite::*;
        let s = match write {
            Register(r) => format!("register {}", r.info().instance_id),
            Heartbeat { id, status, .. } => format!("heartbeat {id} {status}"),
            Cancel { id, .. } => format!("cancel {id}"),
            StatusUpdate { id, status, .. } => format!("status {id} {status}"),
            DeleteStatusOverride { id, status, .. } => format!("delete-override {id} {status}"),
        };
        self.0.lock().unwrap().push(s);
    }
}

#[tokio::test(start_paused = true)]
async fn local_writes_reach_the_observer_and_replicated_ones_do_not() {
    use keel_eureka::{ReplicationAction, ReplicationItem};
    let r = registry(RegistryConfig::default());
    let recorder = Arc::new(Recorder::default());
    r.set_write_observer(recorder.clone());
    let (a, i) = (app("svc"), id("x"));
    r.register(instance("svc", "x", 1, 3), Origin::Client);
    r.renew(&a, &i, None, None, Origin::Client);
    r.set_status_override(&a, &i, InstanceStatus::OutOfService, None, Origin::Client);
    r.delete_status_override(&a, &i, Some(InstanceStatus::Up), None, Origin::Client);
    r.update_metadata(&a, &i, vec![("k".into(), "v".into())], Origin::Client);
    r.cancel(&a, &i, Origin::Client);

    // The same kinds of writes from a peer, through the batch entry point.
    let item = |action, info| ReplicationItem {
        app_name: app("svc"),
        id: id("y"),
        last_dirty_timestamp: Some(1000),
        overridden_status: None,
        status: Some(InstanceStatus::Up),
        instance_info: info,
        action,
    };
    let codes: Vec<u16> = [
        item(
            ReplicationAction::Register,
            Some(instance("svc", "y", 1, 3)),
        ),
        item(ReplicationAction::Heartbeat, None),
        item(ReplicationAction::StatusUpdate, None),
        item(ReplicationAction::DeleteStatusOverride, None),
        item(ReplicationAction::Cancel, None),
        item(ReplicationAction::Heartbeat, None),
    ]
    .into_iter()
    .map(|it| r.apply_replicated(it).status_code)
    .collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 404]);
    // An expiry is not a local write either.
    r.register(instance("svc", "z", 1, 3), Origin::Replicated);
    sleep(Duration::from_secs(4)).await;
    assert!(ids(&r).is_empty());
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "register x",
            "heartbeat x UP",
            "status x OUT_OF_SERVICE",
            "delete-override x UP",
            "register x",
            "cancel x",
        ]
    );
}

/// Each document's gzipped copy is built once per version: asking again returns the same bytes
/// (same buffer), and they decompress to the plain document.
#[tokio::test(start_paused = true)]
async fn gzipped_documents_are_built_once_per_version() {
    use keel_eureka::Format;
    let r = registry(RegistryConfig::default());
    r.register(instance("svc", "a", 1, 90), Origin::Client);
    for format in [Format::Json, Format::Xml] {
        let snapshot = r.snapshot();
        let gz = snapshot.encoded_gzip(format);
        assert_eq!(gz.as_ptr(), r.snapshot().encoded_gzip(format).as_ptr());
        assert_eq!(gunzip(&gz), snapshot.encoded(format));
        let app = snapshot.app(&app("svc")).unwrap();
        assert_eq!(
            app.encoded_gzip(format).as_ptr(),
            app.encoded_gzip(format).as_ptr()
        );
        assert_eq!(gunzip(&app.encoded_gzip(format)), app.encoded(format));
        let delta = r.delta();
        assert_eq!(
            delta.encoded_gzip(format).as_ptr(),
            r.delta().encoded_gzip(format).as_ptr()
        );
        assert_eq!(gunzip(&delta.encoded_gzip(format)), delta.encoded(format));
    }
    // A new version: a new document.
    let old = r.snapshot().encoded_gzip(Format::Json);
    r.register(instance("svc", "b", 1, 90), Origin::Client);
    let new = r.snapshot().encoded_gzip(Format::Json);
    assert_ne!(old.as_ptr(), new.as_ptr());
    assert_eq!(gunzip(&new), r.snapshot().encoded(Format::Json));
}
