//! Strategies, availability filtering, zone preference, outlier ejection and slow start under a paused clock.

use std::collections::HashMap;
use std::time::Duration;

use keel_balance::{Balancer, BalancerConfig, InstanceSpec, RetryPolicy, Safety, Strategy};
use tokio::time::advance;

fn specs(n: usize) -> Vec<InstanceSpec<usize>> {
    (0..n)
        .map(|i| InstanceSpec::new(format!("i{i}"), i))
        .collect()
}

fn tally(b: &Balancer<usize>, picks: usize) -> HashMap<usize, usize> {
    let mut m = HashMap::new();
    for _ in 0..picks {
        let p = b.pick().expect("an instance");
        *m.entry(*p.endpoint()).or_default() += 1;
    }
    m
}

async fn serve(b: &Balancer<usize>, latency: impl Fn(usize) -> u64) {
    let p = b.pick().unwrap();
    advance(Duration::from_millis(latency(*p.endpoint()))).await;
    b.success(p);
}

#[tokio::test(start_paused = true)]
async fn round_robin_visits_everyone_in_turn() {
    let b = Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            ..Default::default()
        },
        specs(4),
    );
    let seq: Vec<usize> = (0..8).map(|_| *b.pick().unwrap().endpoint()).collect();
    for w in seq.windows(2) {
        assert_eq!((w[0] + 1) % 4, w[1], "{seq:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn random_and_weighted_spread_over_all() {
    for strategy in [Strategy::Random, Strategy::WeightedResponseTime] {
        let b = Balancer::new(
            BalancerConfig {
                strategy,
                ..Default::default()
            },
            specs(3),
        );
        let t = tally(&b, 600);
        assert_eq!(t.len(), 3, "{strategy:?}: {t:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn weighted_response_time_favours_fast_instances() {
    let b = Balancer::new(
        BalancerConfig {
            strategy: Strategy::WeightedResponseTime,
            ..Default::default()
        },
        specs(3),
    );
    for _ in 0..300 {
        serve(&b, |e| if e == 0 { 200 } else { 5 }).await;
    }
    let t = tally(&b, 3000);
    assert!(t.get(&0).copied().unwrap_or(0) < t[&1] / 2, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn p2c_avoids_the_slow_instance() {
    let b = Balancer::new(BalancerConfig::default(), specs(2));
    for _ in 0..50 {
        serve(&b, |e| if e == 0 { 100 } else { 1 }).await;
    }
    // With two instances P2C always compares both: the fast one wins every time.
    assert_eq!(tally(&b, 100).get(&0), None);
}

#[tokio::test(start_paused = true)]
async fn p2c_weighs_in_flight_requests() {
    let b = Balancer::new(BalancerConfig::default(), specs(2));
    let held: Vec<_> = (0..1).map(|_| b.pick().unwrap()).collect();
    let busy = *held[0].endpoint();
    let next = b.pick().unwrap();
    assert_ne!(*next.endpoint(), busy, "equal latency: the idle one wins");
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_eject_then_probation_then_longer_ejection() {
    // Round robin so the failing instance keeps being chosen; P2C would already avoid it after one failure.
    let b = Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            ..Default::default()
        },
        specs(4),
    );
    let target = b.instances()[0].clone();
    let fail_target = |b: &Balancer<usize>| loop {
        let p = b.pick().unwrap();
        if p.id() == target.id() {
            b.failure(p);
            return;
        }
    };
    for _ in 0..4 {
        fail_target(&b);
    }
    assert!(tally(&b, 200).contains_key(&0), "4 failures: still in");
    fail_target(&b);
    assert!(!tally(&b, 500).contains_key(&0), "5th failure ejects");
    assert_eq!(target.ejections(), 1);
    advance(Duration::from_secs(30)).await;
    // Back on probation (and slow-starting): one failure sends it out for 2 x 30 s.
    let p = loop {
        let p = b.pick_excluding(&[]).unwrap();
        if p.id() == target.id() {
            break p;
        }
    };
    b.failure(p);
    assert_eq!(target.ejections(), 2);
    advance(Duration::from_secs(59)).await;
    assert!(
        !tally(&b, 500).contains_key(&0),
        "second ejection lasts 60 s"
    );
    advance(Duration::from_secs(1)).await;
    let p = loop {
        let p = b.pick().unwrap();
        if p.id() == target.id() {
            break p;
        }
    };
    b.success(p);
    assert_eq!(
        target.ejections(),
        1,
        "a good probation call decays the multiplier"
    );
}

#[tokio::test(start_paused = true)]
async fn ejection_is_capped_and_never_empties_the_list() {
    let b = Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            ..Default::default()
        },
        specs(2),
    );
    for _ in 0..40 {
        let p = b.pick().unwrap();
        b.failure(p);
    }
    let ejected = b.instances().iter().filter(|i| i.ejections() > 0).count();
    assert_eq!(ejected, 1, "50 % of 2 is one");
    assert!(b.pick().is_some());

    let single = Balancer::new(BalancerConfig::default(), specs(1));
    for _ in 0..20 {
        let p = single.pick().unwrap();
        single.failure(p);
    }
    assert!(
        single.pick().is_some(),
        "the last instance is never ejected"
    );
}

#[tokio::test(start_paused = true)]
async fn availability_filter_skips_tripped_and_saturated() {
    let b = Balancer::new(
        BalancerConfig {
            strategy: Strategy::RoundRobin,
            max_pending_per_instance: Some(1),
            ..Default::default()
        },
        specs(3),
    );
    b.instances()[1].set_tripped(true);
    assert!(!tally(&b, 30).contains_key(&1));
    let held = b.pick().unwrap();
    let busy = *held.endpoint();
    let others: Vec<_> = (0..5).map(|_| *b.pick().unwrap().endpoint()).collect();
    assert!(others.iter().all(|e| *e != busy && *e != 1), "{others:?}");
}

#[tokio::test(start_paused = true)]
async fn zone_preference_with_fallback() {
    let list = vec![
        InstanceSpec::new("a", 0).zone("eu-1a"),
        InstanceSpec::new("b", 1).zone("eu-1b"),
        InstanceSpec::new("c", 2).zone("eu-1b"),
    ];
    let b = Balancer::new(
        BalancerConfig {
            local_zone: Some("eu-1a".into()),
            ..Default::default()
        },
        list,
    );
    assert_eq!(tally(&b, 50).keys().copied().collect::<Vec<_>>(), vec![0]);
    b.instances()[0].set_tripped(true);
    let t = tally(&b, 100);
    assert!(!t.contains_key(&0) && t.len() == 2, "{t:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_go_to_a_different_instance() {
    let b = Balancer::new(BalancerConfig::default(), specs(3));
    for _ in 0..50 {
        let first = b.pick().unwrap();
        let id = first.id().clone();
        b.failure(first);
        let second = b.pick_excluding(&[&id]).unwrap();
        assert_ne!(second.id(), &id);
        b.success(second);
    }
    let policy = RetryPolicy::default();
    assert!(policy.allows(1, Safety::of_method(&http::Method::GET)));
    assert!(!policy.allows(2, Safety::Idempotent));
    assert!(!policy.allows(1, Safety::of_method(&http::Method::POST)));
    assert!(policy.allows(1, Safety::MarkedSafe));
}

#[tokio::test(start_paused = true)]
async fn new_instances_slow_start_and_stats_survive_updates() {
    let b = Balancer::new(BalancerConfig::default(), specs(3));
    for _ in 0..30 {
        serve(&b, |_| 30).await;
    }
    let before = b.instances()[0].clone();
    b.update(specs(4));
    assert!(
        std::sync::Arc::ptr_eq(&before, &b.instances()[0]),
        "known ids keep their stats"
    );
    assert_eq!(
        tally(&b, 300).get(&3),
        None,
        "a brand-new instance gets no traffic against warm peers at first"
    );
    advance(Duration::from_secs(30)).await;
    // Served traffic, not bare picks: with static costs P2C never picks whichever instance is
    // costliest at that instant, which may be the new one if it happened to serve last.
    let mut served_by_new = 0;
    for _ in 0..300 {
        let p = b.pick().unwrap();
        if *p.endpoint() == 3 {
            served_by_new += 1;
        }
        advance(Duration::from_millis(30)).await;
        b.success(p);
    }
    assert!(served_by_new > 0, "after the ramp it takes traffic");
}

#[tokio::test(start_paused = true)]
async fn a_retry_falls_back_to_a_tried_instance_only_when_no_other_is_left() {
    let single = Balancer::new(BalancerConfig::default(), specs(1));
    let first = single.pick().unwrap();
    let id = first.id().clone();
    single.failure(first);
    let again = single
        .pick_excluding(&[&id])
        .expect("the only instance is tried again");
    assert_eq!(again.id(), &id);

    let b = Balancer::new(BalancerConfig::default(), specs(2));
    let ids: Vec<_> = b.instances().iter().map(|i| i.id().clone()).collect();
    assert_ne!(b.pick_excluding(&[&ids[0]]).unwrap().id(), &ids[0]);
    let both: Vec<_> = ids.iter().collect();
    assert!(
        b.pick_excluding(&both).is_some(),
        "all tried: one of them again"
    );
    b.instances()[0].set_tripped(true);
    assert_eq!(
        b.pick_excluding(&[&ids[1]]).unwrap().id(),
        &ids[1],
        "the untried one is unavailable: the tried one again"
    );
    b.instances()[1].set_tripped(true);
    assert!(b.pick_excluding(&[&ids[1]]).is_none(), "none available");
}

#[tokio::test(start_paused = true)]
async fn pick_at_and_success_at_time_the_call_from_the_callers_readings() {
    let b = Balancer::new(
        BalancerConfig {
            default_rtt: Duration::from_millis(1),
            ..Default::default()
        },
        specs(1),
    );
    let start = tokio::time::Instant::now();
    advance(Duration::from_millis(50)).await;
    // The call started at the caller's reading, not at the pick.
    let p = b.pick_at(start).unwrap();
    assert_eq!(p.instance().pending(), 1);
    b.success_at(p, start + Duration::from_millis(80));
    let i = &b.instances()[0];
    // A sample slower than the estimate replaces it (peak EWMA).
    assert_eq!(i.rtt_estimate(), Duration::from_millis(80));
    assert_eq!(i.pending(), 0);
}
