//! The balancer: a lock-free snapshot of instances (arc-swap), strategy picks, outcome feedback and ejection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use crate::config::{BalancerConfig, Strategy};
use crate::instance::{Instance, InstanceId, InstanceSpec};

/// `warm_from` of instances that need no ramp (those in the initial list).
const WARM: u64 = 0;

/// Two different indices below `n` (at least 2), uniform, from one random draw: the high and low
/// halves of a 64-bit number each scaled to a range (Lemire's multiply-shift; the bias is below
/// `n / 2^32`, nothing next to peak-EWMA's noise).
#[inline]
fn two_distinct(n: usize) -> (usize, usize) {
    debug_assert!(n >= 2);
    let Ok(n32) = u32::try_from(n) else {
        let a = fastrand::usize(..n);
        let b = fastrand::usize(..n - 1);
        return (a, b + usize::from(b >= a));
    };
    let r = fastrand::u64(..);
    let a = ((r & 0xffff_ffff) * u64::from(n32)) >> 32;
    let b = ((r >> 32) * u64::from(n32 - 1)) >> 32;
    (a as usize, (b + u64::from(b >= a)) as usize)
}

/// `x as f64` for nanosecond counts: they fit in 63 bits (292 years), and a signed conversion is one
/// instruction where an unsigned one takes four.
#[inline]
fn as_f64(x: u64) -> f64 {
    (x as i64) as f64
}

/// The instance list as of one update, split by zone once so picks do no filtering work.
#[derive(Debug)]
struct Snapshot<T> {
    all: Vec<Arc<Instance<T>>>,
    local: Vec<Arc<Instance<T>>>,
}

/// A client-side load balancer over endpoints of type `T`. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Balancer<T> {
    config: BalancerConfig,
    origin: Instant,
    snapshot: ArcSwap<Snapshot<T>>,
    cursor: AtomicUsize,
    /// `config.decay` and `config.slow_start` in nanoseconds, converted once: `Duration::as_nanos` is a
    /// u128 and its conversion to f64 a library call, too slow for every pick.
    decay_ns: f64,
    slow_start_ns: u64,
}

/// A chosen instance. Report the result with [`Balancer::success`] or [`Balancer::failure`]; dropping it
/// unreported (a cancelled call) just ends the in-flight count.
#[derive(Debug)]
#[must_use = "report the outcome so latency and health are tracked"]
pub struct Pick<T> {
    instance: Arc<Instance<T>>,
    start: u64,
}

impl<T> Pick<T> {
    /// The chosen instance.
    pub fn instance(&self) -> &Arc<Instance<T>> {
        &self.instance
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> &T {
        &self.instance.endpoint
    }

    /// Its id (pass to [`Balancer::pick_excluding`] when retrying elsewhere).
    pub fn id(&self) -> &InstanceId {
        &self.instance.id
    }
}

impl<T> Drop for Pick<T> {
    fn drop(&mut self) {
        self.instance.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<T> Balancer<T> {
    /// A balancer over `instances`; these start warm (no slow start), later additions ramp up.
    pub fn new(config: BalancerConfig, instances: Vec<InstanceSpec<T>>) -> Self {
        let b = Balancer {
            origin: Instant::now(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                all: Vec::new(),
                local: Vec::new(),
            }),
            cursor: AtomicUsize::new(fastrand::usize(..1000)),
            decay_ns: config.decay.as_nanos() as f64,
            slow_start_ns: config.slow_start.as_nanos() as u64,
            config,
        };
        let default_rtt = b.config.default_rtt.as_nanos() as f64;
        let all = instances
            .into_iter()
            .map(|s| Arc::new(Instance::new(s, default_rtt, WARM)))
            .collect();
        b.install(all);
        b
    }

    /// Settings.
    pub fn config(&self) -> &BalancerConfig {
        &self.config
    }

    #[inline]
    fn nanos(&self) -> u64 {
        self.nanos_at(Instant::now())
    }

    #[inline]
    fn nanos_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn install(&self, all: Vec<Arc<Instance<T>>>) {
        let local = match &self.config.local_zone {
            Some(z) => all
                .iter()
                .filter(|i| i.zone.as_deref() == Some(z.as_str()))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        self.snapshot.store(Arc::new(Snapshot { all, local }));
    }

    /// Replaces the instance list. Instances whose id was already known keep their stats; new ones slow-start.
    pub fn update(&self, instances: Vec<InstanceSpec<T>>) {
        let old = self.snapshot.load();
        let now = self.nanos();
        let default_rtt = self.config.default_rtt.as_nanos() as f64;
        let all = instances
            .into_iter()
            .map(|s| match old.all.iter().find(|i| i.id == s.id) {
                Some(existing) if existing.zone == s.zone => Arc::clone(existing),
                _ => Arc::new(Instance::new(s, default_rtt, now.max(1))),
            })
            .collect();
        self.install(all);
    }

    /// All instances now.
    pub fn instances(&self) -> Vec<Arc<Instance<T>>> {
        self.snapshot.load().all.clone()
    }

    /// Picks an instance, or `None` when none is available. Reads the clock once, for the start of the
    /// call's latency sample; a caller that reads it anyway should use [`pick_at`](Self::pick_at).
    #[inline]
    pub fn pick(&self) -> Option<Pick<T>> {
        self.pick_excluding_at(&[], Instant::now())
    }

    /// [`pick`](Self::pick) with the clock already read: `now` is the start of the call (its latency
    /// sample runs from it) and the time at which ejections, slow start and idle decay are judged.
    /// Saves the clock read a caller that times its calls makes anyway.
    #[inline]
    pub fn pick_at(&self, now: Instant) -> Option<Pick<T>> {
        self.pick_excluding_at(&[], now)
    }

    /// Picks an instance for a retry: one not in `tried` while any such instance is available, else the
    /// best of the tried ones (with a single instance, a retry goes to it again). `None` only when no
    /// instance is available at all. Whether repeating a request is safe is the caller's call (idempotent
    /// or marked safe); compare [`Pick::id`] with `tried` to refuse a repeat.
    #[inline]
    pub fn pick_excluding(&self, tried: &[&InstanceId]) -> Option<Pick<T>> {
        self.pick_excluding_at(tried, Instant::now())
    }

    /// [`pick_excluding`](Self::pick_excluding) with the clock already read (see [`pick_at`](Self::pick_at)).
    pub fn pick_excluding_at(&self, tried: &[&InstanceId], now: Instant) -> Option<Pick<T>> {
        let snap = self.snapshot.load();
        let now = self.nanos_at(now);
        let choose = |tried: &[&InstanceId]| {
            let local = if snap.local.is_empty() {
                None
            } else {
                self.choose(&snap.local, now, tried)
            };
            local.or_else(|| self.choose(&snap.all, now, tried))
        };
        let chosen = match choose(tried) {
            Some(c) => c,
            None if !tried.is_empty() => choose(&[])?,
            None => return None,
        };
        chosen.pending.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            instance: Arc::clone(chosen),
            start: now,
        })
    }

    #[inline]
    fn available(&self, i: &Instance<T>, now: u64, tried: &[&InstanceId]) -> bool {
        !i.is_ejected(now)
            && !i.tripped.load(Ordering::Relaxed)
            && self
                .config
                .max_pending_per_instance
                .is_none_or(|m| i.pending.load(Ordering::Relaxed) < m)
            && !tried.contains(&&i.id)
    }

    /// Slow-start ramp in (0.1, 1].
    #[inline]
    fn warmth(&self, i: &Instance<T>, now: u64) -> f64 {
        let from = i.warm_from.load(Ordering::Relaxed);
        let ramp = self.slow_start_ns;
        let age = now.saturating_sub(from);
        if from == WARM || ramp == 0 || age >= ramp {
            1.0
        } else {
            (as_f64(age) / as_f64(ramp)).max(0.1)
        }
    }

    /// Peak-EWMA cost, decayed towards zero while idle so a once-slow instance is retried eventually.
    #[inline]
    fn cost(&self, i: &Instance<T>, now: u64) -> f64 {
        let rtt = f64::from_bits(i.ewma.load(Ordering::Relaxed));
        let idle = as_f64(now.saturating_sub(i.last_sample.load(Ordering::Relaxed)));
        let decay = self.decay_ns;
        // decay / (decay + idle) approximates exp(-idle / decay) without a libm call on the pick path.
        let rtt = rtt * decay / (decay + idle);
        rtt * f64::from(i.pending.load(Ordering::Relaxed) + 1) / self.warmth(i, now)
    }

    #[inline]
    fn choose<'s>(
        &self,
        list: &'s [Arc<Instance<T>>],
        now: u64,
        tried: &[&InstanceId],
    ) -> Option<&'s Arc<Instance<T>>> {
        let n = list.len();
        if n == 0 {
            return None;
        }
        match self.config.strategy {
            Strategy::PeakEwmaP2c => self.p2c(list, now, tried),
            Strategy::RoundRobin => {
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                self.scan(list, start, now, tried)
            }
            Strategy::Random => self.scan(list, fastrand::usize(..n), now, tried),
            Strategy::WeightedResponseTime => self.weighted(list, now, tried),
        }
    }

    /// First available from `start`, honouring slow start by letting cold instances pass with probability = warmth.
    fn scan<'s>(
        &self,
        list: &'s [Arc<Instance<T>>],
        start: usize,
        now: u64,
        tried: &[&InstanceId],
    ) -> Option<&'s Arc<Instance<T>>> {
        let n = list.len();
        let mut fallback = None;
        for k in 0..n {
            let i = &list[(start + k) % n];
            if !self.available(i, now, tried) {
                continue;
            }
            let w = self.warmth(i, now);
            if w >= 1.0 || fastrand::f64() < w {
                return Some(i);
            }
            fallback.get_or_insert(i);
        }
        fallback
    }

    #[inline]
    fn p2c<'s>(
        &self,
        list: &'s [Arc<Instance<T>>],
        now: u64,
        tried: &[&InstanceId],
    ) -> Option<&'s Arc<Instance<T>>> {
        let n = list.len();
        if n == 1 {
            return self.available(&list[0], now, tried).then(|| &list[0]);
        }
        let (a, b) = two_distinct(n);
        let (ia, ib) = (&list[a], &list[b]);
        match (
            self.available(ia, now, tried),
            self.available(ib, now, tried),
        ) {
            (true, true) => Some(if self.cheaper(ib, ia, now) { ib } else { ia }),
            (true, false) => Some(ia),
            (false, true) => Some(ib),
            // Both out: look for anyone still in, cheapest first.
            (false, false) => list
                .iter()
                .filter(|i| self.available(i, now, tried))
                .min_by(|x, y| self.cost(x, now).total_cmp(&self.cost(y, now))),
        }
    }

    /// `cost(x) < cost(y)` without dividing: both sides of [`cost`](Self::cost) are kept as
    /// numerator / denominator and compared crosswise (the decay constant cancels out).
    #[inline]
    fn cheaper(&self, x: &Instance<T>, y: &Instance<T>, now: u64) -> bool {
        let (nx, dx) = self.cost_ratio(x, now);
        let (ny, dy) = self.cost_ratio(y, now);
        nx * dy < ny * dx
    }

    /// [`cost`](Self::cost) divided by the decay time, as (numerator, denominator), both positive.
    #[inline]
    fn cost_ratio(&self, i: &Instance<T>, now: u64) -> (f64, f64) {
        let rtt = f64::from_bits(i.ewma.load(Ordering::Relaxed));
        let idle = as_f64(now.saturating_sub(i.last_sample.load(Ordering::Relaxed)));
        let load = f64::from(i.pending.load(Ordering::Relaxed) + 1);
        (rtt * load, (self.decay_ns + idle) * self.warmth(i, now))
    }

    fn weighted<'s>(
        &self,
        list: &'s [Arc<Instance<T>>],
        now: u64,
        tried: &[&InstanceId],
    ) -> Option<&'s Arc<Instance<T>>> {
        let rtt = |i: &Instance<T>| f64::from_bits(i.ewma.load(Ordering::Relaxed));
        let avail = || list.iter().filter(|i| self.available(i, now, tried));
        let total: f64 = avail().map(|i| rtt(i)).sum();
        let weight =
            |i: &Instance<T>| (total - rtt(i)).max(f64::MIN_POSITIVE) * self.warmth(i, now);
        let sum: f64 = avail().map(|i| weight(i)).sum();
        let mut r = fastrand::f64() * sum;
        let mut last = None;
        for i in avail() {
            r -= weight(i);
            last = Some(i);
            if r <= 0.0 {
                break;
            }
        }
        last
    }

    /// The call through `pick` succeeded.
    pub fn success(&self, pick: Pick<T>) {
        self.success_at(pick, Instant::now());
    }

    /// [`success`](Self::success) with the clock already read: `now` is when the call ended.
    pub fn success_at(&self, pick: Pick<T>, now: Instant) {
        let now = self.nanos_at(now);
        let i = &pick.instance;
        self.observe(i, now, now.saturating_sub(pick.start) as f64);
        i.consecutive_failures.store(0, Ordering::Relaxed);
        if i.probation.swap(false, Ordering::Relaxed) {
            let _ = i
                .ejections
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| {
                    Some(e.saturating_sub(1))
                });
        }
    }

    /// The call through `pick` failed (connection error, 5xx, timeout): penalise latency, maybe eject.
    pub fn failure(&self, pick: Pick<T>) {
        self.failure_at(pick, Instant::now());
    }

    /// [`failure`](Self::failure) with the clock already read: `now` is when the call ended.
    pub fn failure_at(&self, pick: Pick<T>, now: Instant) {
        let now = self.nanos_at(now);
        let i = &pick.instance;
        let rtt = (now.saturating_sub(pick.start) as f64)
            .max(self.config.failure_penalty.as_nanos() as f64);
        self.observe(i, now, rtt);
        let n = i.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let threshold = self.config.outlier.consecutive_failures;
        // On probation a single failure sends it back out, for longer.
        if threshold > 0 && (n >= threshold || i.probation.load(Ordering::Relaxed)) {
            self.try_eject(i, now);
        }
    }

    fn observe(&self, i: &Instance<T>, now: u64, rtt: f64) {
        let last = i.last_sample.swap(now, Ordering::Relaxed);
        let old = f64::from_bits(i.ewma.load(Ordering::Relaxed));
        let next = if rtt > old {
            // Peak: a slower sample replaces the estimate at once.
            rtt
        } else {
            let w = (-(now.saturating_sub(last) as f64) / self.decay_ns).exp();
            old * w + rtt * (1.0 - w)
        };
        i.ewma.store(next.to_bits(), Ordering::Relaxed);
    }

    fn try_eject(&self, i: &Instance<T>, now: u64) {
        if i.is_ejected(now) {
            return;
        }
        let snap = self.snapshot.load();
        let total = snap.all.len();
        let ejected = snap.all.iter().filter(|x| x.is_ejected(now)).count();
        let cap = total * self.config.outlier.max_ejection_percent as usize / 100;
        // Never eject past the cap, and never the last instance standing.
        if ejected + 1 > cap || ejected + 1 >= total {
            return;
        }
        let times = i.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let o = &self.config.outlier;
        let length = o
            .base_ejection
            .saturating_mul(times)
            .min(o.max_ejection)
            .as_nanos() as u64;
        let until = now + length;
        i.ejected_until.store(until, Ordering::Relaxed);
        i.warm_from.store(until, Ordering::Relaxed);
        i.probation.store(true, Ordering::Relaxed);
        i.consecutive_failures.store(0, Ordering::Relaxed);
        tracing::info!(instance = %i.id, ejected_for = ?Duration::from_nanos(length), times, "instance ejected");
    }
}
