//! `apps__hashcode`: Eureka's reconcile hash, a per-status instance count.

use crate::model::Applications;
use crate::status::InstanceStatus;

/// Instances per status. The registry keeps one up to date incrementally (add on
/// register, move on status change, remove on cancel) so the hash of the full registry is
/// available in O(1) when a delta is served; a delta's hash must be the full registry's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusCounts([u64; 5]);

impl StatusCounts {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, status: InstanceStatus) {
        self.0[status.index()] += 1;
    }

    /// Saturates at zero rather than panicking on an unbalanced remove.
    pub fn remove(&mut self, status: InstanceStatus) {
        let c = &mut self.0[status.index()];
        *c = c.saturating_sub(1);
    }

    pub fn get(&self, status: InstanceStatus) -> u64 {
        self.0[status.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `STATUS_count_` for every status with a non-zero count, statuses in alphabetical
    /// order (Java iterates a `TreeMap<String, _>`): `DOWN_1_OUT_OF_SERVICE_2_UP_7_`.
    /// An empty registry hashes to `""`.
    pub fn hashcode(&self) -> String {
        let mut s = String::new();
        self.write_hashcode(&mut s);
        s
    }

    pub fn write_hashcode(&self, out: &mut String) {
        for status in InstanceStatus::ALL {
            let n = self.get(status);
            if n > 0 {
                out.push_str(status.as_str());
                out.push('_');
                out.push_str(&n.to_string());
                out.push('_');
            }
        }
    }
}

impl FromIterator<InstanceStatus> for StatusCounts {
    fn from_iter<I: IntoIterator<Item = InstanceStatus>>(iter: I) -> Self {
        let mut c = Self::new();
        for s in iter {
            c.add(s);
        }
        c
    }
}

impl Applications {
    /// Counts every instance's (effective) `status`, as the Java client does over its
    /// whole local copy after applying a delta.
    pub fn status_counts(&self) -> StatusCounts {
        self.applications
            .iter()
            .flat_map(|a| a.instances.iter().map(|i| i.status))
            .collect()
    }

    /// The reconcile hash of these applications; see [`StatusCounts::hashcode`].
    pub fn reconcile_hashcode(&self) -> String {
        self.status_counts().hashcode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceStatus::*;

    #[test]
    fn statuses_are_sorted_and_zero_counts_skipped() {
        let c: StatusCounts = [
            Up,
            Down,
            Up,
            Up,
            OutOfService,
            Starting,
            OutOfService,
            Unknown,
        ]
        .into_iter()
        .collect();
        assert_eq!(
            c.hashcode(),
            "DOWN_1_OUT_OF_SERVICE_2_STARTING_1_UNKNOWN_1_UP_3_"
        );
        assert_eq!(StatusCounts::new().hashcode(), "");
        let up: StatusCounts = [Up, Up].into_iter().collect();
        assert_eq!(up.hashcode(), "UP_2_");
    }

    #[test]
    fn remove_moves_counts_back() {
        let mut c = StatusCounts::new();
        c.add(Up);
        c.add(Down);
        c.remove(Down);
        c.remove(Down);
        assert_eq!(c.hashcode(), "UP_1_");
        assert_eq!(c.total(), 1);
    }
}
