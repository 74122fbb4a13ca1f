//! The worker's metrics in the Prometheus text format: messages received, processed, failed attempts
//! and dead-lettered (by reason), messages in flight, processing latency, and the order endpoint's outbox
//! entries relayed and quarantined. Atomics only: they are
//! touched for every message, so no lock is taken on the hot path.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use super::health::Health;

/// Latency bucket bounds in seconds: a no-op processor (well under a millisecond) up to a slow write.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Why a message was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// It can never succeed (malformed, invalid).
    Rejected,
    /// It failed on every attempt.
    Exhausted,
}

/// The worker's counters, and its health (which counts the receive loops' restarts). Cheap to clone:
/// clones share them.
#[derive(Clone, Debug, Default)]
pub struct WorkerMetrics {
    inner: Arc<Counters>,
    health: Health,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    processed: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    exhausted: AtomicU64,
    filtered: AtomicU64,
    in_flight: AtomicU64,
    sink_writes: AtomicU64,
    outbox_relayed: AtomicU64,
    outbox_quarantined: AtomicU64,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    stalls: super::stalls::Stalls,
}

impl WorkerMetrics {
    /// Zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Zeroed counters, with `health` (its bounds) instead of the default.
    pub fn with_health(health: Health) -> Self {
        Self {
            inner: Arc::default(),
            health,
        }
    }

    /// The liveness and readiness state the runtime keeps and the endpoints serve.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// `n` messages were received.
    pub fn received(&self, n: usize) {
        self.inner.received.fetch_add(n as u64, Relaxed);
        self.inner.in_flight.fetch_add(n as u64, Relaxed);
    }

    /// A message left the worker's hands (acknowledged, postponed, dead-lettered or released).
    pub fn done(&self) {
        self.inner.in_flight.fetch_sub(1, Relaxed);
    }

    /// A message was processed successfully in `took`.
    pub fn processed(&self, took: Duration) {
        self.inner.processed.fetch_add(1, Relaxed);
        self.observe(took);
    }

    /// A message failed (to be retried, or dead-lettered).
    pub fn failed(&self, took: Duration) {
        self.inner.failed.fetch_add(1, Relaxed);
        self.observe(took);
    }

    /// A message was dead-lettered.
    pub fn dead_lettered(&self, reason: DeadLetterReason) {
        match reason {
            DeadLetterReason::Rejected => &self.inner.rejected,
            DeadLetterReason::Exhausted => &self.inner.exhausted,
        }
        .fetch_add(1, Relaxed);
    }

    /// A relay's filter did not match a message, which was dropped (it counts as processed too).
    pub fn filtered(&self) {
        self.inner.filtered.fetch_add(1, Relaxed);
    }

    /// A write to the sink was made (Cosmos DB upserts, so the writes per event can be measured).
    pub fn sink_write(&self) {
        self.inner.sink_writes.fetch_add(1, Relaxed);
    }

    /// An `OrderPlaced` left in the outbox was published by the relay.
    pub fn outbox_relayed(&self) {
        self.inner.outbox_relayed.fetch_add(1, Relaxed);
    }

    /// `n` outbox entries could not be read and were quarantined.
    pub fn outbox_quarantined(&self, n: usize) {
        self.inner.outbox_quarantined.fetch_add(n as u64, Relaxed);
    }

    /// Outbox entries quarantined so far.
    pub fn outbox_quarantined_total(&self) -> u64 {
        self.inner.outbox_quarantined.load(Relaxed)
    }

    /// Writes to the sink so far.
    pub fn sink_writes_total(&self) -> u64 {
        self.inner.sink_writes.load(Relaxed)
    }

    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.inner.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.inner.latency_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.inner.latency_micros.fetch_add(micros, Relaxed);
    }

    /// What the worker cannot get past (dead letters it cannot send), shown on `/metrics` and `/readyz`.
    pub fn stalls(&self) -> &super::stalls::Stalls {
        &self.inner.stalls
    }

    /// Messages processed successfully so far.
    pub fn processed_total(&self) -> u64 {
        self.inner.processed.load(Relaxed)
    }

    /// Messages dead-lettered so far, for either reason.
    pub fn dead_lettered_total(&self) -> u64 {
        self.inner.rejected.load(Relaxed) + self.inner.exhausted.load(Relaxed)
    }

    /// Processing attempts that failed so far.
    pub fn failed_total(&self) -> u64 {
        self.inner.failed.load(Relaxed)
    }

    /// Everything, in the Prometheus text format, labelled with the consumer and processor.
    pub fn render(&self, consumer: &str, processor: &str) -> String {
        let c = &self.inner;
        let labels = format!("consumer=\"{consumer}\",processor=\"{processor}\"");
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, extra: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{{labels}{extra}}} {value}");
        };
        counter(
            "tributary_worker_messages_received_total",
            "Messages received from the source.",
            "",
            c.received.load(Relaxed),
        );
        counter(
            "tributary_worker_messages_processed_total",
            "Messages processed successfully and acknowledged.",
            "",
            c.processed.load(Relaxed),
        );
        counter(
            "tributary_worker_messages_failed_total",
            "Processing attempts that failed (retried later, or dead-lettered).",
            "",
            c.failed.load(Relaxed),
        );
        counter(
            "tributary_worker_messages_filtered_total",
            "Messages a relay's filter did not match and dropped (counted as processed too).",
            "",
            c.filtered.load(Relaxed),
        );
        counter(
            "tributary_worker_sink_writes_total",
            "Writes made to the sink (Cosmos DB upserts of the device processor), retries included.",
            "",
            c.sink_writes.load(Relaxed),
        );
        counter(
            "tributary_outbox_relayed_total",
            "OrderPlaced events the outbox relay published (the request that recorded them could not).",
            "",
            c.outbox_relayed.load(Relaxed),
        );
        counter(
            "tributary_outbox_quarantined_total",
            "Outbox entries that could not be read and were moved aside (see docs/operating.md).",
            "",
            c.outbox_quarantined.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP tributary_worker_messages_dead_lettered_total Messages sent to the dead letter, by reason.\n# TYPE tributary_worker_messages_dead_lettered_total counter"
        );
        for (reason, value) in [("rejected", &c.rejected), ("exhausted", &c.exhausted)] {
            let _ = writeln!(
                out,
                "tributary_worker_messages_dead_lettered_total{{{labels},reason=\"{reason}\"}} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tributary_worker_messages_in_flight Messages received and not yet settled.\n# TYPE tributary_worker_messages_in_flight gauge\ntributary_worker_messages_in_flight{{{labels}}} {}",
            c.in_flight.load(Relaxed)
        );
        self.render_latency(&mut out, &labels);
        out.push_str(&self.health.render(&labels));
        out.push_str(&c.stalls.render(&labels));
        out
    }

    /// The processing-duration histogram, appended to `out`.
    fn render_latency(&self, out: &mut String, labels: &str) {
        let c = &self.inner;
        let name = "tributary_worker_processing_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time the processor took per message.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&c.latency_buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = c.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = c.latency_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latency_are_rendered() {
        let metrics = WorkerMetrics::new();
        metrics.received(3);
        metrics.processed(Duration::from_micros(300));
        metrics.failed(Duration::from_millis(30));
        metrics.dead_lettered(DeadLetterReason::Rejected);
        metrics.done();
        metrics.sink_write();
        metrics.outbox_quarantined(2);
        let text = metrics.render("shop/inventory", "inventory");
        let labels = "consumer=\"shop/inventory\",processor=\"inventory\"";
        for line in [
            format!("tributary_worker_messages_received_total{{{labels}}} 3"),
            format!("tributary_worker_messages_processed_total{{{labels}}} 1"),
            format!("tributary_worker_messages_failed_total{{{labels}}} 1"),
            format!("tributary_worker_messages_dead_lettered_total{{{labels},reason=\"rejected\"}} 1"),
            format!("tributary_worker_messages_in_flight{{{labels}}} 2"),
            format!("tributary_worker_sink_writes_total{{{labels}}} 1"),
            format!("tributary_outbox_quarantined_total{{{labels}}} 2"),
            format!("tributary_outbox_relayed_total{{{labels}}} 0"),
            format!("tributary_worker_processing_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1"),
            format!("tributary_worker_processing_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"),
            format!("tributary_worker_processing_duration_seconds_count{{{labels}}} 2"),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert_eq!(metrics.processed_total(), 1);
        assert_eq!(metrics.dead_lettered_total(), 1);
    }
}
