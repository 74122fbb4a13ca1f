//! What the controller remembers of each Consumer between reconciles, in memory only: the last read of
//! its workers' counters (the start of the next rate window) and the recent replica asks (the spike
//! filter and the scale-down window). Losing it (a restart, a new leader) costs one read interval of
//! rates and one scale-down window, never a wrong count: a new leader starts both afresh.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use super::scaling::Ask;
use super::throughput::Read;

/// Entries not touched for this long (a deleted Consumer: it has no finalizer to say so) are dropped.
const FORGET_AFTER_SECONDS: i64 = 3_600;

/// One Consumer's memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remembered {
    /// The last read of its workers' counters.
    pub read: Option<Read>,
    /// Recent replica asks, oldest first.
    pub asks: Vec<Ask>,
    /// When it was last touched (Unix seconds).
    touched: i64,
}

/// Every Consumer's memory, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Memory {
    entries: Mutex<HashMap<String, Remembered>>,
}

impl Memory {
    /// What is remembered of `key` (nothing yet: the default).
    pub fn get(&self, key: &str) -> Remembered {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Remembers `entry` for `key` at `now` (Unix seconds), forgetting entries untouched for an hour.
    pub fn put(&self, key: &str, mut entry: Remembered, now: i64) {
        entry.touched = now;
        let mut entries = self.lock();
        entries.retain(|_, e| now - e.touched < FORGET_AFTER_SECONDS);
        entries.insert(key.to_owned(), entry);
    }

    /// Forgets `key` (the Consumer is being deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_until_untouched_for_an_hour() {
        let memory = Memory::default();
        let entry = Remembered {
            asks: vec![Ask { at: 1, replicas: 2 }],
            ..Remembered::default()
        };
        memory.put("a/x", entry.clone(), 0);
        assert_eq!(memory.get("a/x").asks, entry.asks);
        memory.put("a/y", Remembered::default(), FORGET_AFTER_SECONDS - 1);
        assert_eq!(memory.get("a/x").asks.len(), 1, "still within the hour");
        memory.put("a/y", Remembered::default(), FORGET_AFTER_SECONDS);
        assert!(memory.get("a/x").asks.is_empty(), "forgotten");
        memory.forget("a/y");
        assert_eq!(memory.get("a/y"), Remembered::default());
    }
}
