//! What was last verified in the cloud, per object: a fingerprint of the desired state (spec generation
//! and the dependencies' identities, hashed after the build step) with the status observed then.
//!
//! Objects are woken by their dependencies far more often than their cloud resources change (a Queue by
//! every Subscription and Topic that appears, a Subscription by its Queue's status). A reconcile whose
//! desired state was verified within the resync period reuses that observation instead of asking the
//! cloud again, and asks for the next full check exactly one resync period after the last one, so drift
//! is still found every resync. An error never records anything; a deleted object's entry is dropped.
//!
//! Full checks of one kind are also spaced at least its check spacing apart (see
//! `controller::CheckSpacing`): objects applied in bulk are verified at the rate they were created, and
//! due again together one resync later would spend a quota at that rate; each object's next check is
//! instead the later of one resync period after this one and one spacing after the kind's latest slot.

use std::{
    any::Any,
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::controller::CheckSpacing;

/// The fingerprint of a desired state.
pub fn fingerprint(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

struct Entry {
    fingerprint: u64,
    /// When the next full check is due.
    due: Instant,
    status: Arc<dyn Any + Send + Sync>,
}

/// The last verification of each object (keyed by `Kind namespace/name`).
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<String, Entry>>,
    /// When old entries were last dropped: at most once per resync period, not on every record (a
    /// scan of every entry per reconcile would be quadratic in a bulk apply).
    pruned: Mutex<Option<Instant>>,
    /// The least time between two full checks of one kind (the kind is the key's first word).
    spacing: CheckSpacing,
    /// The latest check slot given to each kind.
    slots: Mutex<HashMap<String, Instant>>,
}

/// A reusable observation: its status and how long until the next full check is due.
pub struct Hit<S> {
    /// The status observed at the last full check.
    pub status: S,
    /// Time left until the next full check is due.
    pub next_check: Duration,
}

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Full checks of each kind at least its `spacing` apart (a zero spacing: one resync period).
    pub fn spaced(spacing: CheckSpacing) -> Self {
        Self {
            spacing,
            ..Self::default()
        }
    }

    /// The status verified for `fingerprint` whose next full check is not due yet, if any.
    pub fn get<S: Clone + Send + Sync + 'static>(&self, key: &str, fingerprint: u64) -> Option<Hit<S>> {
        let entries = self.lock();
        let entry = entries.get(key)?;
        let now = Instant::now();
        if entry.fingerprint != fingerprint || now >= entry.due {
            return None;
        }
        let status = entry.status.downcast_ref::<S>()?.clone();
        Some(Hit {
            status,
            next_check: entry.due - now,
        })
    }

    /// How long until the next full check of `key` is due (none when nothing is recorded).
    pub fn next_check(&self, key: &str) -> Option<Duration> {
        let due = self.lock().get(key)?.due;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// The status last recorded for `key`, whatever it was verified for and however long ago: the
    /// identity of a cloud resource (URL, ARN) made by a reconcile whose status write the watch has not
    /// brought back yet, so it is not looked up by name again.
    pub fn last<S: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<S> {
        self.lock().get(key)?.status.downcast_ref::<S>().cloned()
    }

    /// Records that `status` was observed for `fingerprint` now; the next full check is due one resync
    /// period later, or one check spacing after the kind's latest slot if that is later. Entries not
    /// renewed for two resync periods are dropped on the way, at most once per resync period (their
    /// objects are gone).
    pub fn record<S: Send + Sync + 'static>(&self, key: &str, fingerprint: u64, status: S, resync: Duration) {
        let now = Instant::now();
        let due = self.slot(key, now + resync);
        let mut entries = self.lock();
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
            if pruned.is_none_or(|at| at.elapsed() >= resync) {
                entries.retain(|_, entry| now < entry.due + resync);
                *pruned = Some(now);
            }
        }
        entries.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                due,
                status: Arc::new(status),
            },
        );
    }

    /// The check slot of `key`: `earliest`, or one spacing after its kind's latest slot if later.
    fn slot(&self, key: &str, earliest: Instant) -> Instant {
        let kind = key.split(' ').next().unwrap_or_default();
        let spacing = self.spacing.of(kind);
        if spacing.is_zero() {
            return earliest;
        }
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let due = slots
            .get(kind)
            .map_or(earliest, |latest| earliest.max(*latest + spacing));
        slots.insert(kind.to_owned(), due);
        due
    }

    /// Forgets `key` (the object is being deleted, or its cloud resource was found gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);

    #[test]
    fn an_observation_is_reused_only_for_the_same_desired_state() {
        let verified = Verified::default();
        verified.record("Queue ns/q", 1, "url".to_owned(), RESYNC);
        let hit = verified.get::<String>("Queue ns/q", 1).unwrap();
        assert_eq!(hit.status, "url");
        assert!(hit.next_check <= RESYNC && hit.next_check > RESYNC - Duration::from_secs(5));
        assert!(
            verified.get::<String>("Queue ns/q", 2).is_none(),
            "other desired state"
        );
        assert!(verified.get::<String>("Queue ns/other", 1).is_none());
        assert!(
            verified.get::<u32>("Queue ns/q", 1).is_none(),
            "other status type"
        );
        assert_eq!(verified.last::<String>("Queue ns/q").as_deref(), Some("url"));
        verified.forget("Queue ns/q");
        assert!(verified.last::<String>("Queue ns/q").is_none());
        assert!(verified.get::<String>("Queue ns/q", 1).is_none());
    }

    #[test]
    fn an_observation_older_than_the_resync_period_is_not_reused() {
        let verified = Verified::default();
        verified.record("k", 1, 7_u32, Duration::ZERO);
        assert!(verified.get::<u32>("k", 1).is_none());
        assert_ne!(fingerprint(&("a", 1)), fingerprint(&("a", 2)));
    }

    #[test]
    fn checks_of_one_kind_are_spaced_at_least_their_spacing_apart() {
        let spacing = Duration::from_millis(100);
        let verified = Verified::spaced(CheckSpacing {
            queue: spacing,
            ..CheckSpacing::default()
        });
        // Ten queues verified at once (a bulk apply) are due one after the other, not together.
        for i in 0..10 {
            verified.record(&format!("Queue ns/q{i}"), 1, (), RESYNC);
        }
        let mut dues: Vec<Duration> = (0..10)
            .map(|i| verified.next_check(&format!("Queue ns/q{i}")).unwrap())
            .collect();
        dues.sort();
        assert!(
            dues[0] <= RESYNC && dues[0] > RESYNC - Duration::from_secs(5),
            "{dues:?}"
        );
        for pair in dues.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= spacing - Duration::from_millis(5), "{dues:?}");
        }
        assert!(
            verified.get::<()>("Queue ns/q9", 1).is_some(),
            "reused until its slot"
        );
        // Another kind has slots of its own; a kind without spacing is due one resync period later.
        verified.record("Topic ns/t", 1, (), RESYNC);
        let topic = verified.next_check("Topic ns/t").unwrap();
        assert!(topic <= RESYNC && topic > RESYNC - Duration::from_secs(5));
    }
}
