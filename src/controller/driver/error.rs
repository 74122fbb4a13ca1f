//! Errors of a reconcile and how they are classified: every error names the object and what was being
//! done, and maps to the condition reason users see, to the metric label, and to what happens next
//! (wait for a spec change, requeue until a dependency is ready, or back off and retry).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::cloud::{self, ErrorKind};

/// Condition reasons the controllers write.
pub mod reasons {
    /// Ready=True: the cloud resource exists and matches the spec.
    pub const AVAILABLE: &str = "Available";
    /// Synced=True: the cloud resource matches the spec.
    pub const IN_SYNC: &str = "InSync";
    /// The spec cannot be reconciled as written (permanent).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The filter policy breaks a rule of the SNS filter-policy language (permanent).
    pub const INVALID_FILTER: &str = "InvalidFilter";
    /// A referenced Topic, Queue or DeadLetter does not exist or has no cloud identity yet (requeued).
    pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
    /// The cloud did not answer, throttled or failed on its side (retried with backoff).
    pub const CLOUD_UNAVAILABLE: &str = "CloudUnavailable";
    /// The cloud refused the request (permanent: invalid parameter, access denied).
    pub const CLOUD_REJECTED: &str = "CloudRejected";
    /// The spec asks for a change the cloud cannot make in place (permanent; nothing is replaced).
    pub const IMMUTABLE_CHANGE: &str = "ImmutableChange";
    /// A cloud resource with this name exists, is not ours, and `spec.adopt` is false (permanent).
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// A cloud resource with this name is tagged as another Tributary object's or another cluster's; it
    /// is never taken over (permanent).
    pub const OWNED_BY_ANOTHER: &str = "OwnedByAnother";
    /// The namespace's TenantPolicy does not allow what the spec asks (permanent until the spec or the
    /// policy changes).
    pub const FORBIDDEN: &str = "Forbidden";
    /// A child object (ConfigMap, ServiceAccount, Deployment, Service, Secret) of the desired name exists
    /// and is not controlled by this object; it is left alone (permanent).
    pub const CHILD_CONFLICT: &str = "ChildConflict";
    /// A Kubernetes API call failed (retried with backoff).
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The object's provider has no controller yet.
    pub const PROVIDER_NOT_IMPLEMENTED: &str = "ProviderNotImplemented";
}

/// What happens after an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Only a change of the object fixes it (the spec is wrong as written): write the condition and wait.
    Permanent,
    /// Fixed by a change outside the object that no watch sees (a foreign cloud resource deleted, a quota
    /// or permission raised, a conflicting child removed, a TenantPolicy edited): write the condition and
    /// look again after a delay that starts at the resync period (at most 30 s) and doubles up to it,
    /// as ACK and Azure Service Operator re-check their terminal conditions.
    Recheck,
    /// Something the object needs is not there yet: write the condition and look again soon.
    Dependency,
    /// Retry with exponential backoff.
    Transient,
}

impl Class {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Recheck => "recheck",
            Self::Dependency => "dependency",
            Self::Transient => "transient",
        }
    }
}

/// An error of a reconcile. `object` is `Kind namespace/name`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec cannot be reconciled as written.
    #[error("{object}: {message}")]
    InvalidSpec {
        /// The object.
        object: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The filter policy is invalid.
    #[error("{object}: {message}")]
    InvalidFilter {
        /// The object.
        object: String,
        /// The filter engine's message.
        message: String,
    },
    /// A referenced object is missing or not ready.
    #[error("{object}: {message}")]
    DependencyNotReady {
        /// The object.
        object: String,
        /// Which dependency, and what it lacks.
        message: String,
    },
    /// The spec asks for a change the cloud cannot make in place.
    #[error("{object}: {message}")]
    ImmutableChange {
        /// The object.
        object: String,
        /// Which attribute, and its observed and desired values.
        message: String,
    },
    /// The cloud resource exists and is not ours.
    #[error("{object}: {message}")]
    AlreadyExists {
        /// The object.
        object: String,
        /// Which resource, and how to take it over.
        message: String,
    },
    /// The cloud resource is tagged as another Tributary object's or another cluster's.
    #[error("{object}: {message}")]
    OwnedByAnother {
        /// The object.
        object: String,
        /// Which resource, and who owns it.
        message: String,
    },
    /// The namespace's TenantPolicy forbids what the spec asks.
    #[error("{object}: {message}")]
    Forbidden {
        /// The object.
        object: String,
        /// The field, its value and the policy.
        message: String,
    },
    /// A child object exists and is not controlled by this object.
    #[error("{object}: {message}")]
    ChildConflict {
        /// The object.
        object: String,
        /// The child, and who controls it.
        message: String,
    },
    /// A cloud call failed.
    #[error("{object}: {source}")]
    Cloud {
        /// The object.
        object: String,
        /// The classified cloud error (names the operation and resource); boxed, as it is large.
        source: Box<cloud::Error>,
    },
    /// A Kubernetes API call failed.
    #[error("{object}: {what}: {source}")]
    Kube {
        /// The object.
        object: String,
        /// What was being done.
        what: String,
        /// The cause; boxed, as it is large.
        source: Box<kube::Error>,
    },
}

impl Error {
    /// A cloud error in the context of `object`.
    pub fn cloud(object: &str, source: cloud::Error) -> Self {
        Self::Cloud {
            object: object.to_owned(),
            source: Box::new(source),
        }
    }

    /// A Kubernetes error in the context of `object` and of what was being done.
    pub fn kube(object: &str, what: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            object: object.to_owned(),
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSpec { .. } => reasons::INVALID_SPEC,
            Self::InvalidFilter { .. } => reasons::INVALID_FILTER,
            Self::DependencyNotReady { .. } => reasons::DEPENDENCY_NOT_READY,
            Self::ImmutableChange { .. } => reasons::IMMUTABLE_CHANGE,
            Self::AlreadyExists { .. } => reasons::ALREADY_EXISTS,
            Self::OwnedByAnother { .. } => reasons::OWNED_BY_ANOTHER,
            Self::Forbidden { .. } => reasons::FORBIDDEN,
            Self::ChildConflict { .. } => reasons::CHILD_CONFLICT,
            Self::Cloud { source, .. } => match source.kind() {
                ErrorKind::Permanent | ErrorKind::Unsupported => reasons::CLOUD_REJECTED,
                // NotFound here means a resource vanished between two calls: look again.
                ErrorKind::Transient | ErrorKind::NotFound => reasons::CLOUD_UNAVAILABLE,
            },
            Self::Kube { .. } => reasons::KUBERNETES_ERROR,
        }
    }

    /// What happens next.
    pub fn class(&self) -> Class {
        match self {
            Self::InvalidSpec { .. } | Self::InvalidFilter { .. } => Class::Permanent,
            // The cloud or the cluster can lift these without the object changing: the foreign resource
            // is deleted, the conflicting child removed, the policy or the cloud resource edited.
            Self::ImmutableChange { .. }
            | Self::AlreadyExists { .. }
            | Self::OwnedByAnother { .. }
            | Self::Forbidden { .. }
            | Self::ChildConflict { .. } => Class::Recheck,
            Self::DependencyNotReady { .. } => Class::Dependency,
            Self::Cloud { source, .. } => match source.kind() {
                // A refusal (access denied, a quota, an invalid parameter) may be lifted by IAM, a quota
                // increase or the cloud: look again, slowly. Unsupported (an emulator's gap) stays.
                ErrorKind::Permanent => Class::Recheck,
                ErrorKind::Unsupported => Class::Permanent,
                ErrorKind::Transient | ErrorKind::NotFound => Class::Transient,
            },
            Self::Kube { .. } => Class::Transient,
        }
    }

    /// The message for the condition: without the object prefix (the condition is on the object).
    pub fn condition_message(&self) -> String {
        match self {
            Self::InvalidSpec { message, .. }
            | Self::InvalidFilter { message, .. }
            | Self::DependencyNotReady { message, .. }
            | Self::ImmutableChange { message, .. }
            | Self::AlreadyExists { message, .. }
            | Self::OwnedByAnother { message, .. }
            | Self::Forbidden { message, .. }
            | Self::ChildConflict { message, .. } => message.clone(),
            Self::Cloud { source, .. } => source.to_string(),
            Self::Kube { what, source, .. } => format!("{what}: {source}"),
        }
    }
}

/// Per-object exponential backoff for transient failures: 1 s, doubling, at most 5 minutes; reset by a
/// successful reconcile.
///
/// An object deleted while failing never succeeds, so its entry would stay forever: entries not touched
/// for [`Self::FORGET_AFTER`] (longer than any delay handed out) are dropped, at most once a minute.
#[derive(Debug, Default)]
pub struct Backoff {
    state: Mutex<BackoffState>,
}

#[derive(Debug, Default)]
struct BackoffState {
    /// Consecutive failures (or waits) per object, and when the last one was recorded.
    failures: HashMap<String, (u32, Instant)>,
    /// When entries were last pruned.
    pruned: Option<Instant>,
}

impl BackoffState {
    /// Counts one more failure of `key` and returns the new count.
    fn record(&mut self, key: &str, now: Instant) -> u32 {
        if self
            .pruned
            .is_none_or(|at| now.duration_since(at) >= Backoff::PRUNE_EVERY)
        {
            self.failures
                .retain(|_, (_, last)| now.duration_since(*last) < Backoff::FORGET_AFTER);
            self.pruned = Some(now);
        }
        let entry = self.failures.entry(key.to_owned()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }
}

impl Backoff {
    /// The first delay.
    pub const INITIAL: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(300);
    /// How long an entry is kept after its last failure: twice the longest delay, so an object still
    /// failing always finds its count.
    pub const FORGET_AFTER: Duration = Duration::from_secs(600);
    /// The first delay of a re-check.
    pub const FIRST_RECHECK: Duration = Duration::from_secs(30);
    /// How often old entries are looked for.
    const PRUNE_EVERY: Duration = Duration::from_secs(60);

    fn lock(&self) -> std::sync::MutexGuard<'_, BackoffState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one more failure of `key` and returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        Self::delay(self.lock().record(key, Instant::now()))
    }

    /// Records one more wait of `key` for a dependency and returns how long to wait: `first`, doubling,
    /// at most eight times `first` (watches wake the object sooner; this only bounds a missed wake-up).
    pub fn waited(&self, key: &str, first: Duration) -> Duration {
        let count = self.lock().record(key, Instant::now());
        first.saturating_mul(1 << count.saturating_sub(1).min(3))
    }

    /// Records one more failed re-check of `key` (an error of [`Class::Recheck`]) and returns how long
    /// to wait: the resync period, at most 30 s, for the first, doubling up to the resync period. An
    /// object whose condition the cloud lifts is thus Ready again within one resync.
    pub fn rechecked(&self, key: &str, resync: Duration) -> Duration {
        let first = resync.min(Self::FIRST_RECHECK);
        let count = self.lock().record(key, Instant::now());
        first
            .saturating_mul(1 << count.saturating_sub(1).min(16))
            .min(resync.max(first))
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The delay after `failures` consecutive failures (1 s for the first).
    pub fn delay(failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        Self::INITIAL.saturating_mul(1 << exponent).min(Self::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Operation;

    fn service(kind: ErrorKind) -> cloud::Error {
        cloud::Error::Service {
            operation: Operation::new("sqs", "CreateQueue", "q"),
            kind,
            code: "Code".into(),
            message: "message".into(),
            status: Some(400),
        }
    }

    #[test]
    fn each_error_maps_to_its_reason_and_class() {
        let object = "Queue ns/q";
        let cases = [
            (
                Error::cloud(object, service(ErrorKind::Transient)),
                reasons::CLOUD_UNAVAILABLE,
                Class::Transient,
            ),
            (
                Error::cloud(object, service(ErrorKind::Permanent)),
                reasons::CLOUD_REJECTED,
                Class::Recheck,
            ),
            (
                Error::cloud(
                    object,
                    cloud::Error::Unreachable {
                        operation: Operation::new("sns", "CreateTopic", "t"),
                        detail: "connection refused".into(),
                    },
                ),
                reasons::CLOUD_UNAVAILABLE,
                Class::Transient,
            ),
            (
                Error::DependencyNotReady {
                    object: object.into(),
                    message: "m".into(),
                },
                reasons::DEPENDENCY_NOT_READY,
                Class::Dependency,
            ),
            (
                Error::ImmutableChange {
                    object: object.into(),
                    message: "m".into(),
                },
                reasons::IMMUTABLE_CHANGE,
                Class::Recheck,
            ),
            (
                Error::AlreadyExists {
                    object: object.into(),
                    message: "m".into(),
                },
                reasons::ALREADY_EXISTS,
                Class::Recheck,
            ),
            (
                Error::InvalidFilter {
                    object: object.into(),
                    message: "m".into(),
                },
                reasons::INVALID_FILTER,
                Class::Permanent,
            ),
        ];
        for (error, reason, class) in cases {
            assert_eq!((error.reason(), error.class()), (reason, class), "{error}");
        }
    }

    #[test]
    fn the_cloud_message_names_the_operation() {
        let error = Error::cloud("Queue ns/q", service(ErrorKind::Transient));
        assert!(error.condition_message().contains("CreateQueue"));
    }

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes_and_resets() {
        let backoff = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| backoff.failed("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff.failed("b"), Duration::from_secs(1), "per object");
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a"), Duration::from_secs(1));
    }

    #[test]
    fn entries_of_objects_that_stopped_failing_long_ago_are_dropped() {
        let mut state = BackoffState::default();
        let start = Instant::now();
        assert_eq!(state.record("gone", start), 1);
        assert_eq!(
            state.record("gone", start + Duration::from_secs(1)),
            2,
            "kept while failing"
        );
        let later = start + Backoff::FORGET_AFTER + Duration::from_secs(2);
        assert_eq!(state.record("other", later), 1);
        assert!(!state.failures.contains_key("gone"), "dropped");
        assert_eq!(state.record("other", later + Duration::from_secs(1)), 2);
    }

    #[test]
    fn rechecks_start_at_the_resync_period_up_to_thirty_seconds_and_double_up_to_it() {
        let rechecks = Backoff::default();
        let resync = Duration::from_secs(300);
        let delays: Vec<_> = (0..6)
            .map(|_| rechecks.rechecked("a", resync).as_secs())
            .collect();
        assert_eq!(delays, [30, 60, 120, 240, 300, 300]);
        let short = Duration::from_secs(2);
        assert_eq!(rechecks.rechecked("b", short), short);
        assert_eq!(
            rechecks.rechecked("b", short),
            short,
            "never beyond the resync period"
        );
    }

    #[test]
    fn dependency_waits_double_up_to_eight_times_the_first() {
        let waits = Backoff::default();
        let first = Duration::from_secs(10);
        let delays: Vec<_> = (0..6).map(|_| waits.waited("a", first).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 80, 80]);
        waits.succeeded("a");
        assert_eq!(waits.waited("a", first), first);
    }
}
