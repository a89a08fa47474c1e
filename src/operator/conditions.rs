//! The condition vocabulary of AmpWorker and AmpWorkerFleet: statuses and reasons as
//! types, turned into strings only where a `metav1.Condition` is built or read.

/// `metav1.Condition.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// A stored status; anything but `True`/`False` reads as `Unknown` (as kstatus does).
    pub fn parse(s: &str) -> Self {
        match s {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }
}

macro_rules! reasons {
    ($($name:ident),+ $(,)?) => {
        /// Every CamelCase reason the operator writes (documented in docs/operator.md).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($name),+
        }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$name),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name)),+
                }
            }

            /// One of ours, read back from a stored condition.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|r| r.as_str() == s)
            }
        }
    };
}

reasons!(
    // AmpWorker
    WorkerRegistered,
    NotRegistered,
    MetadataDbUnavailable,
    HeartbeatFresh,
    HeartbeatStale,
    WorkerStopped,
    NoExpectedVersion,
    VersionMatches,
    VersionMismatch,
    WorkerReady,
    // AmpWorkerFleet
    InvalidSelector,
    RolloutComplete,
    ProgressDeadlineExceeded,
    RolloutInProgress,
    WaitingForWorkers,
    WorkersUnavailable,
    WorkersCrashing,
    Progressing,
    // Amp's jobs (AmpWorker and AmpWorkerFleet)
    JobsPickedUp,
    JobNotPickedUp,
    JobsStranded,
    NoStrandedJobs,
    JobsUnknown,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_strangers_do_not_parse() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Reason::parse("SomethingElse"), None);
        assert_eq!(Reason::HeartbeatStale.as_str(), "HeartbeatStale");
    }

    #[test]
    fn statuses_read_like_kstatus() {
        for s in [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ] {
            assert_eq!(ConditionStatus::parse(s.as_str()), s);
        }
        assert_eq!(ConditionStatus::parse("true"), ConditionStatus::Unknown);
    }
}
