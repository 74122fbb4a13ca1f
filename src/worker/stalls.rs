//! What a worker cannot get past: dead letters that could not be sent, and the parts of its source (a
//! Kafka partition) held back by an event it can neither process nor dead-letter. The processor records
//! them; `/metrics` shows them (`tributary_worker_dead_letter_failures_total`,
//! `tributary_worker_stalled_partitions`) and `/readyz` fails while anything is stalled, naming it, so
//! the pod goes unready and the Consumer's Ready condition says workers are not ready.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

/// The stalls of one worker. Cheap to clone: clones share them.
#[derive(Clone, Debug, Default)]
pub struct Stalls {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    dead_letter_failures: AtomicU64,
    /// Stalled part (`topic/partition`) → why.
    stalled: Mutex<BTreeMap<String, String>>,
}

impl Stalls {
    /// Nothing stalled.
    pub fn new() -> Self {
        Self::default()
    }

    fn stalled(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.inner.stalled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A dead letter could not be sent, so `part` cannot move past its event.
    pub fn dead_letter_failed(&self, part: &str, reason: String) {
        self.inner.dead_letter_failures.fetch_add(1, Relaxed);
        self.stalled().insert(part.to_owned(), reason);
    }

    /// `part` moves again (its dead letter was sent, or it is read afresh).
    pub fn clear(&self, part: &str) {
        self.stalled().remove(part);
    }

    /// Dead letters that could not be sent so far (each failed send counts).
    pub fn dead_letter_failures_total(&self) -> u64 {
        self.inner.dead_letter_failures.load(Relaxed)
    }

    /// How many parts are stalled now.
    pub fn stalled_count(&self) -> usize {
        self.stalled().len()
    }

    /// Why the worker is not ready, if something is stalled: the first stalled part and its reason, and
    /// how many others there are.
    pub fn not_ready(&self) -> Option<String> {
        let stalled = self.stalled();
        let (part, reason) = stalled.iter().next()?;
        let others = match stalled.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        Some(format!("{part} is stalled: {reason}{others}"))
    }

    /// The series, in the Prometheus text format, with `labels` (`consumer="…",processor="…"`).
    pub fn render(&self, labels: &str) -> String {
        let mut out = String::new();
        let failures = "tributary_worker_dead_letter_failures_total";
        let _ = writeln!(
            out,
            "# HELP {failures} Dead letters that could not be sent (each failed send).\n# TYPE {failures} counter\n{failures}{{{labels}}} {}",
            self.dead_letter_failures_total()
        );
        let gauge = "tributary_worker_stalled_partitions";
        let _ = writeln!(
            out,
            "# HELP {gauge} Partitions held back by an event whose dead letter cannot be sent.\n# TYPE {gauge} gauge\n{gauge}{{{labels}}} {}",
            self.stalled_count()
        );
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_dead_letter_stalls_its_part_until_cleared() {
        let stalls = Stalls::new();
        assert_eq!(stalls.not_ready(), None);
        stalls.dead_letter_failed("telemetry/2", "the queue refused it".into());
        stalls.dead_letter_failed("telemetry/2", "the queue refused it".into());
        stalls.dead_letter_failed("telemetry/5", "no answer".into());
        assert_eq!(
            stalls.not_ready().unwrap(),
            "telemetry/2 is stalled: the queue refused it (and 1 more)"
        );
        let text = stalls.render("consumer=\"plant/devices\"");
        assert!(text.contains("tributary_worker_dead_letter_failures_total{consumer=\"plant/devices\"} 3"));
        assert!(text.contains("tributary_worker_stalled_partitions{consumer=\"plant/devices\"} 2"));
        stalls.clear("telemetry/2");
        stalls.clear("telemetry/5");
        assert_eq!(stalls.not_ready(), None);
        assert_eq!(stalls.dead_letter_failures_total(), 3, "the counter stays");
    }
}
