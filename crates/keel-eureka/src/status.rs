//! `InstanceStatus` and `ActionType`, the two enums Eureka puts on the wire as upper-case names.

use std::fmt;

/// An instance's status. Declared in the alphabetical order of the wire names, which is
/// the order `apps__hashcode` lists them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum InstanceStatus {
    Down,
    OutOfService,
    Starting,
    #[default]
    Unknown,
    Up,
}

impl InstanceStatus {
    /// Every status, in wire-name (alphabetical) order.
    pub const ALL: [InstanceStatus; 5] = [
        Self::Down,
        Self::OutOfService,
        Self::Starting,
        Self::Unknown,
        Self::Up,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "UP",
            Self::Down => "DOWN",
            Self::Starting => "STARTING",
            Self::OutOfService => "OUT_OF_SERVICE",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Parses a wire name case-insensitively; `None` if it is not a status.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// Eureka's `InstanceStatus.toEnum`: anything unrecognised reads as UNKNOWN.
    pub fn parse_lenient(s: &str) -> Self {
        Self::parse(s).unwrap_or(Self::Unknown)
    }

    /// Position in [`InstanceStatus::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a delta entry says happened to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionType {
    Added,
    Modified,
    Deleted,
}

impl ActionType {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Added, Self::Modified, Self::Deleted]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
