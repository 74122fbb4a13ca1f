//! Controller metrics in the Prometheus text format (0.0.4), kept in memory and rendered on scrape.
//!
//! A small hand-written registry rather than a metrics crate: the controller has a few fixed families,
//! label sets are few (kinds, a few dozen cloud operations, one per object for the per-object gauges of
//! [`object_gauges`](super::object_gauges)), and a mutex-guarded map is plenty at reconcile rates.
//! Counters and histograms are cumulative, as Prometheus expects.

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use super::object_gauges::{ObjectGauges, Objects, escape};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Histogram upper bounds in seconds: 5 ms (a cached lookup) up to 60 s (a cloud call that went through
/// the SDK's retries, or a 20 s long-poll receive).
const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Label pairs of one series, in the order they are rendered.
type Labels = Vec<(&'static str, String)>;

/// The controller's metrics. Cheap to clone: clones share the same series.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Families>>,
}

#[derive(Default)]
struct Families {
    reconciles: BTreeMap<Labels, u64>,
    reconcile_duration: BTreeMap<Labels, Histogram>,
    reconcile_errors: BTreeMap<Labels, u64>,
    cloud_calls: BTreeMap<Labels, u64>,
    cloud_call_duration: BTreeMap<Labels, Histogram>,
    leader: bool,
    objects: Objects,
}

#[derive(Default)]
struct Histogram {
    /// Per-bucket (non-cumulative) counts; the cumulative `le` counts are summed when rendering.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Observes `tributary_reconcile_duration_seconds` for its kind when dropped, so every exit path of a
/// reconcile (including `?` and panics) is timed.
#[must_use = "the reconcile is timed until this guard is dropped"]
pub struct ReconcileTimer {
    metrics: Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let seconds = self.start.elapsed().as_secs_f64();
        let labels = vec![("kind", self.kind.to_owned())];
        self.metrics
            .with(|f| f.reconcile_duration.entry(labels).or_default().observe(seconds));
    }
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `tributary_reconciles_total{kind}`; the returned guard observes
    /// `tributary_reconcile_duration_seconds{kind}` when dropped.
    pub fn reconcile_started(&self, kind: &'static str) -> ReconcileTimer {
        self.with(|f| *f.reconciles.entry(vec![("kind", kind.to_owned())]).or_default() += 1);
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            start: Instant::now(),
        }
    }

    /// Counts `tributary_reconcile_errors_total{kind, error_kind, reason}`: `error_kind` such as
    /// `transient` or `permanent`, `reason` the CamelCase condition reason.
    pub fn reconcile_failed(&self, kind: &'static str, error_kind: &str, reason: &str) {
        let labels = vec![
            ("kind", kind.to_owned()),
            ("error_kind", error_kind.to_owned()),
            ("reason", reason.to_owned()),
        ];
        self.with(|f| *f.reconcile_errors.entry(labels).or_default() += 1);
    }

    /// Counts `tributary_cloud_calls_total{service, operation, outcome}` (`outcome` is `ok` or an error
    /// class) and observes `tributary_cloud_call_duration_seconds{service, operation}`.
    pub fn cloud_call(&self, service: &str, operation: &str, outcome: &str, seconds: f64) {
        let labels = vec![
            ("service", service.to_owned()),
            ("operation", operation.to_owned()),
        ];
        let mut with_outcome = labels.clone();
        with_outcome.push(("outcome", outcome.to_owned()));
        self.with(|f| {
            *f.cloud_calls.entry(with_outcome).or_default() += 1;
            f.cloud_call_duration.entry(labels).or_default().observe(seconds);
        });
    }

    /// Sets the `tributary_leader` gauge: 1 while this replica holds the leader lease.
    pub fn set_leader(&self, leader: bool) {
        self.with(|f| f.leader = leader);
    }

    /// Sets the per-object gauges of `kind` `namespace`/`name` (`tributary_object_ready`, and where
    /// observed `tributary_queue_depth`, `tributary_queue_oldest_message_age_seconds`,
    /// `tributary_consumer_backlog`) to what its reconcile observed.
    pub fn observe_object(&self, kind: &'static str, namespace: &str, name: &str, gauges: ObjectGauges) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.with(|f| f.objects.set(key, gauges));
    }

    /// Removes the per-object series of `kind` `namespace`/`name` (the object is deleted).
    pub fn forget_object(&self, kind: &'static str, namespace: &str, name: &str) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.with(|f| f.objects.forget(&key));
    }

    /// Removes the per-object series of the objects of `kind` for which `exists(namespace, name)` is false
    /// (deleted while the watch was down).
    pub fn retain_objects(&self, kind: &str, exists: impl Fn(&str, &str) -> bool) {
        self.with(|f| f.objects.retain(kind, exists));
    }

    /// Everything above in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the fmt::Result only exists for the Write trait.
        let _ = self.with(|f| f.render(&mut out));
        out
    }

    fn with<T>(&self, update: impl FnOnce(&mut Families) -> T) -> T {
        // A panic while holding the lock leaves counters that are still valid numbers: keep serving them.
        let mut families = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        update(&mut families)
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A metric family's name and help text.
type Family = (&'static str, &'static str);

const RECONCILES: Family = ("tributary_reconciles_total", "Reconciles started, by kind.");
const RECONCILE_DURATION: Family = (
    "tributary_reconcile_duration_seconds",
    "Time a reconcile took, by kind.",
);
const RECONCILE_ERRORS: Family = (
    "tributary_reconcile_errors_total",
    "Failed reconciles, by kind, error kind and condition reason.",
);
const CLOUD_CALLS: Family = (
    "tributary_cloud_calls_total",
    "Cloud API calls, by service, operation and outcome.",
);
const CLOUD_CALL_DURATION: Family = (
    "tributary_cloud_call_duration_seconds",
    "Time a cloud API call took, including the SDK's retries.",
);
const LEADER: Family = ("tributary_leader", "1 while this replica holds the leader lease.");

impl Families {
    fn render(&self, out: &mut String) -> fmt::Result {
        counters(out, RECONCILES, &self.reconciles)?;
        histograms(out, RECONCILE_DURATION, &self.reconcile_duration)?;
        counters(out, RECONCILE_ERRORS, &self.reconcile_errors)?;
        counters(out, CLOUD_CALLS, &self.cloud_calls)?;
        histograms(out, CLOUD_CALL_DURATION, &self.cloud_call_duration)?;
        header(out, LEADER, "gauge")?;
        writeln!(out, "{} {}", LEADER.0, u8::from(self.leader))?;
        self.objects.render(out)
    }
}

fn header(out: &mut String, (name, help): Family, kind: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn counters(out: &mut String, family: Family, series: &BTreeMap<Labels, u64>) -> fmt::Result {
    header(out, family, "counter")?;
    let name = family.0;
    for (labels, value) in series {
        writeln!(out, "{name}{} {value}", label_set(labels, None))?;
    }
    Ok(())
}

fn histograms(out: &mut String, family: Family, series: &BTreeMap<Labels, Histogram>) -> fmt::Result {
    header(out, family, "histogram")?;
    let name = family.0;
    for (labels, histogram) in series {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
            cumulative += count;
            let le = bound.to_string();
            writeln!(out, "{name}_bucket{} {cumulative}", label_set(labels, Some(&le)))?;
        }
        writeln!(
            out,
            "{name}_bucket{} {}",
            label_set(labels, Some("+Inf")),
            histogram.count
        )?;
        writeln!(out, "{name}_sum{} {}", label_set(labels, None), histogram.sum)?;
        writeln!(out, "{name}_count{} {}", label_set(labels, None), histogram.count)?;
    }
    Ok(())
}

/// `{a="x",b="y"}` with the `le` label of a histogram bucket last; values escaped as the format requires.
fn label_set(labels: &Labels, le: Option<&str>) -> String {
    let pairs = labels
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(le.map(|le| ("le", le)));
    let rendered: Vec<String> = pairs
        .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
        .collect();
    if rendered.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", rendered.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_labels() {
        let metrics = Metrics::new();
        drop(metrics.reconcile_started("Topic"));
        metrics.reconcile_failed("Topic", "transient", "CloudUnavailable");
        metrics.cloud_call("SQS", "ListQueues", "ok", 0.02);
        metrics.set_leader(true);
        let text = metrics.render();
        for line in [
            "tributary_reconciles_total{kind=\"Topic\"} 1",
            "tributary_reconcile_duration_seconds_count{kind=\"Topic\"} 1",
            "tributary_reconcile_errors_total{kind=\"Topic\",error_kind=\"transient\",reason=\"CloudUnavailable\"} 1",
            "tributary_cloud_calls_total{service=\"SQS\",operation=\"ListQueues\",outcome=\"ok\"} 1",
            "tributary_cloud_call_duration_seconds_bucket{service=\"SQS\",operation=\"ListQueues\",le=\"0.025\"} 1",
            "tributary_cloud_call_duration_seconds_bucket{service=\"SQS\",operation=\"ListQueues\",le=\"0.01\"} 0",
            "tributary_cloud_call_duration_seconds_sum{service=\"SQS\",operation=\"ListQueues\"} 0.02",
            "# TYPE tributary_cloud_call_duration_seconds histogram",
            "tributary_leader 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_inf() {
        let metrics = Metrics::new();
        for seconds in [0.001, 0.3, 0.3, 45.0, 120.0] {
            metrics.cloud_call("SNS", "Publish", "ok", seconds);
        }
        let text = metrics.render();
        let bucket = |le: &str| {
            let prefix = format!(
                "tributary_cloud_call_duration_seconds_bucket{{service=\"SNS\",operation=\"Publish\",le=\"{le}\"}} "
            );
            let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
            line[prefix.len()..].parse::<u64>().unwrap()
        };
        assert_eq!(bucket("0.005"), 1);
        assert_eq!(bucket("0.25"), 1);
        assert_eq!(bucket("0.5"), 3);
        assert_eq!(bucket("30"), 3);
        assert_eq!(bucket("60"), 4);
        assert_eq!(bucket("+Inf"), 5);
        // Buckets span milliseconds to a minute, ascending: sensible for seconds.
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(BUCKETS[0] <= 0.01 && BUCKETS[BUCKETS.len() - 1] >= 30.0);
    }

    #[test]
    fn empty_metrics_still_declare_families_and_escape_labels() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(text.contains("# TYPE tributary_reconciles_total counter"));
        assert!(text.contains("tributary_leader 0"));
        metrics.reconcile_failed("Queue", "permanent", "Bad\"Reason\\\n");
        assert!(metrics.render().contains(r#"reason="Bad\"Reason\\\n""#));
    }

    fn observe_queue(metrics: &Metrics, kind: &'static str, name: &str, depth: i64) {
        let gauges = ObjectGauges {
            ready: depth < 100,
            depth: Some(depth),
            oldest_message_age_seconds: Some(depth * 2),
            backlog: None,
        };
        metrics.observe_object(kind, "orders", name, gauges);
    }

    #[test]
    fn object_gauges_render_one_series_per_object_and_only_what_was_observed() {
        let metrics = Metrics::new();
        observe_queue(&metrics, "Queue", "work", 7);
        observe_queue(&metrics, "DeadLetter", "dlq", 300);
        metrics.observe_object("Topic", "orders", "placed", ObjectGauges::default());
        let consumer = ObjectGauges {
            ready: true,
            backlog: Some(42),
            ..ObjectGauges::default()
        };
        metrics.observe_object("Consumer", "orders", "fulfil", consumer);
        let text = metrics.render();
        for line in [
            "# TYPE tributary_object_ready gauge",
            r#"tributary_object_ready{kind="Queue",namespace="orders",name="work"} 1"#,
            r#"tributary_object_ready{kind="DeadLetter",namespace="orders",name="dlq"} 0"#,
            r#"tributary_object_ready{kind="Topic",namespace="orders",name="placed"} 0"#,
            r#"tributary_object_ready{kind="Consumer",namespace="orders",name="fulfil"} 1"#,
            r#"tributary_queue_depth{kind="Queue",namespace="orders",name="work"} 7"#,
            r#"tributary_queue_depth{kind="DeadLetter",namespace="orders",name="dlq"} 300"#,
            r#"tributary_queue_oldest_message_age_seconds{kind="DeadLetter",namespace="orders",name="dlq"} 600"#,
            r#"tributary_consumer_backlog{namespace="orders",name="fulfil"} 42"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // A Topic has no depth and a Consumer no queue of its own: no series rather than a made-up 0.
        let depths = text
            .lines()
            .filter(|l| l.starts_with("tributary_queue_depth{"))
            .count();
        assert_eq!(depths, 2, "{text}");
        assert_eq!(text.matches("tributary_consumer_backlog{").count(), 1);
        // A later observation replaces the earlier one: still one series per object.
        observe_queue(&metrics, "Queue", "work", 150);
        let text = metrics.render();
        assert!(text.contains(r#"tributary_object_ready{kind="Queue",namespace="orders",name="work"} 0"#));
        assert_eq!(text.matches(r#"tributary_queue_depth{kind="Queue""#).count(), 1);
    }

    #[test]
    fn a_deleted_object_leaves_no_series() {
        let metrics = Metrics::new();
        observe_queue(&metrics, "Queue", "work", 1);
        observe_queue(&metrics, "Queue", "gone-while-down", 1);
        observe_queue(&metrics, "DeadLetter", "work", 1);
        metrics.forget_object("DeadLetter", "orders", "work");
        let text = metrics.render();
        assert!(!text.contains(r#"kind="DeadLetter""#), "{text}");
        assert!(text.contains(r#"tributary_queue_depth{kind="Queue",namespace="orders",name="work"} 1"#));
        // After a relist, only the objects still there keep their series; other kinds are untouched.
        observe_queue(&metrics, "DeadLetter", "kept", 1);
        metrics.retain_objects("Queue", |namespace, name| namespace == "orders" && name == "work");
        let text = metrics.render();
        assert!(!text.contains("gone-while-down"), "{text}");
        assert!(text.contains(r#"name="work"} 1"#) && text.contains(r#"name="kept"} 1"#));
        // The families stay declared when no object is left.
        metrics.forget_object("Queue", "orders", "work");
        metrics.forget_object("DeadLetter", "orders", "kept");
        let text = metrics.render();
        assert!(!text.contains("orders"), "{text}");
        assert!(text.contains("# TYPE tributary_consumer_backlog gauge"));
    }
}
