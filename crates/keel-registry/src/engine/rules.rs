//! Eureka's overridden-status rules (`FirstMatchWinsCompositeRule`, reference §2.7).

use keel_eureka::InstanceStatus;

/// The status an instance gets, first match wins:
/// 1. a reported status other than UP or OUT_OF_SERVICE (DOWN, STARTING, UNKNOWN) stands;
/// 2. an override, if one exists;
/// 3. for a client's own call, an existing lease that is UP or OUT_OF_SERVICE keeps its status;
/// 4. otherwise the reported status.
pub(crate) fn effective_status(
    reported: InstanceStatus,
    overridden: Option<InstanceStatus>,
    existing: Option<InstanceStatus>,
    replicated: bool,
) -> InstanceStatus {
    use InstanceStatus::{OutOfService, Up};
    if !matches!(reported, Up | OutOfService) {
        return reported;
    }
    if let Some(o) = overridden.filter(|o| *o != InstanceStatus::Unknown) {
        return o;
    }
    if !replicated && let Some(e @ (Up | OutOfService)) = existing {
        return e;
    }
    reported
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceStatus::*;

    #[test]
    fn first_match_wins() {
        assert_eq!(effective_status(Down, Some(Up), None, false), Down);
        assert_eq!(
            effective_status(Up, Some(OutOfService), Some(Up), false),
            OutOfService
        );
        assert_eq!(
            effective_status(Up, None, Some(OutOfService), false),
            OutOfService
        );
        assert_eq!(effective_status(Up, None, Some(OutOfService), true), Up);
        assert_eq!(effective_status(Up, Some(Unknown), None, false), Up);
        assert_eq!(effective_status(Unknown, None, Some(Up), false), Unknown);
    }
}
