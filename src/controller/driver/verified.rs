//! What was last verified in the cloud, per object: a fingerprint of the desired state (spec generation
//! and the dependencies' identities, hashed after the build step) with the status observed then.
//!
//! Objects are woken by their dependencies far more often than their cloud resources change (a Queue by
//! every Subscription and Topic that appears, a Subscription by its Queue's status). A reconcile whose
//! desired state was verified within the resync period reuses that observation instead of asking the
//! cloud again, and asks for the next full check exactly one resync period after the last one, so drift
//! is still found every resync. An error never records anything; a deleted object's entry is dropped.

use std::{
    any::Any,
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// The fingerprint of a desired state.
pub fn fingerprint(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

struct Entry {
    fingerprint: u64,
    at: Instant,
    status: Arc<dyn Any + Send + Sync>,
}

/// The last verification of each object (keyed by `Kind namespace/name`).
#[derive(Default)]
pub struct Verified {
    entries: Mutex<HashMap<String, Entry>>,
    /// When old entries were last dropped: at most once per resync period, not on every record (a
    /// scan of every entry per reconcile would be quadratic in a bulk apply).
    pruned: Mutex<Option<Instant>>,
}

/// A reusable observation: its status and how long until the next full check is due.
pub struct Hit<S> {
    /// The status observed at the last full check.
    pub status: S,
    /// Time left until one resync period after that check.
    pub next_check: Duration,
}

impl Verified {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status verified for `fingerprint` less than `resync` ago, if any.
    pub fn get<S: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        fingerprint: u64,
        resync: Duration,
    ) -> Option<Hit<S>> {
        let entries = self.lock();
        let entry = entries.get(key)?;
        let age = entry.at.elapsed();
        if entry.fingerprint != fingerprint || age >= resync {
            return None;
        }
        let status = entry.status.downcast_ref::<S>()?.clone();
        Some(Hit {
            status,
            next_check: resync - age,
        })
    }

    /// The status last recorded for `key`, whatever it was verified for and however long ago: the
    /// identity of a cloud resource (URL, ARN) made by a reconcile whose status write the watch has not
    /// brought back yet, so it is not looked up by name again.
    pub fn last<S: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<S> {
        self.lock().get(key)?.status.downcast_ref::<S>().cloned()
    }

    /// Records that `status` was observed for `fingerprint` now. Entries not renewed for two resync
    /// periods are dropped on the way, at most once per resync period (their objects are gone).
    pub fn record<S: Send + Sync + 'static>(&self, key: &str, fingerprint: u64, status: S, resync: Duration) {
        let mut entries = self.lock();
        {
            let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
            if pruned.is_none_or(|at| at.elapsed() >= resync) {
                entries.retain(|_, entry| entry.at.elapsed() < resync.saturating_mul(2));
                *pruned = Some(Instant::now());
            }
        }
        entries.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                at: Instant::now(),
                status: Arc::new(status),
            },
        );
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
        let hit = verified.get::<String>("Queue ns/q", 1, RESYNC).unwrap();
        assert_eq!(hit.status, "url");
        assert!(hit.next_check <= RESYNC && hit.next_check > RESYNC - Duration::from_secs(5));
        assert!(
            verified.get::<String>("Queue ns/q", 2, RESYNC).is_none(),
            "other desired state"
        );
        assert!(verified.get::<String>("Queue ns/other", 1, RESYNC).is_none());
        assert!(
            verified.get::<u32>("Queue ns/q", 1, RESYNC).is_none(),
            "other status type"
        );
        assert_eq!(verified.last::<String>("Queue ns/q").as_deref(), Some("url"));
        verified.forget("Queue ns/q");
        assert!(verified.last::<String>("Queue ns/q").is_none());
        assert!(verified.get::<String>("Queue ns/q", 1, RESYNC).is_none());
    }

    #[test]
    fn an_observation_older_than_the_resync_period_is_not_reused() {
        let verified = Verified::default();
        verified.record("k", 1, 7_u32, Duration::ZERO);
        assert!(verified.get::<u32>("k", 1, Duration::ZERO).is_none());
        assert_ne!(fingerprint(&("a", 1)), fingerprint(&("a", 2)));
    }
}
