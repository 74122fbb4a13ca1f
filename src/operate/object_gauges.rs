//! Per-object gauges: what each object's last reconcile observed (Ready, queue depth, oldest message age,
//! Consumer backlog), for dashboards and alerts. One series per object and family, removed when the object
//! is deleted, so cardinality is bounded by the number of objects the controller watches.

use std::{
    collections::BTreeMap,
    fmt::{self, Write as _},
};

/// What a reconcile observed of one object, as its status says (no cloud call of its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectGauges {
    /// The Ready condition is `True`.
    pub ready: bool,
    /// Visible messages of a Queue or DeadLetter, when the cloud reported them.
    pub depth: Option<i64>,
    /// Age of the oldest message of a Queue or DeadLetter, when the cloud reports it.
    pub oldest_message_age_seconds: Option<i64>,
    /// A Consumer's backlog (queue depth plus in flight, or consumer lag).
    pub backlog: Option<i64>,
}

/// Kind, namespace and name of an object.
pub(super) type ObjectKey = (&'static str, String, String);

/// A metric family's name and help text.
type Family = (&'static str, &'static str);

const OBJECT_READY: Family = (
    "tributary_object_ready",
    "1 while the object's Ready condition is True, by kind, namespace and name.",
);
const QUEUE_DEPTH: Family = (
    "tributary_queue_depth",
    "Visible messages of a Queue or DeadLetter at its last reconcile.",
);
const QUEUE_OLDEST_AGE: Family = (
    "tributary_queue_oldest_message_age_seconds",
    "Age of the oldest message of a Queue or DeadLetter at its last reconcile, where the cloud reports it.",
);
const CONSUMER_BACKLOG: Family = (
    "tributary_consumer_backlog",
    "Messages waiting for a Consumer (depth plus in flight, or lag) at its last reconcile.",
);

/// The gauges of every object observed and not deleted since.
#[derive(Default)]
pub(super) struct Objects {
    gauges: BTreeMap<ObjectKey, ObjectGauges>,
}

impl Objects {
    pub(super) fn set(&mut self, key: ObjectKey, gauges: ObjectGauges) {
        self.gauges.insert(key, gauges);
    }

    pub(super) fn forget(&mut self, key: &ObjectKey) {
        self.gauges.remove(key);
    }

    /// Keeps only the objects of `kind` for which `keep(namespace, name)` holds.
    pub(super) fn retain(&mut self, kind: &str, keep: impl Fn(&str, &str) -> bool) {
        self.gauges
            .retain(|(k, namespace, name), _| *k != kind || keep(namespace, name));
    }

    pub(super) fn render(&self, out: &mut String) -> fmt::Result {
        let labels = |(kind, namespace, name): &ObjectKey| {
            format!(
                "{{kind=\"{kind}\",namespace=\"{}\",name=\"{}\"}}",
                escape(namespace),
                escape(name)
            )
        };
        header(out, OBJECT_READY)?;
        for (key, gauges) in &self.gauges {
            writeln!(
                out,
                "{}{} {}",
                OBJECT_READY.0,
                labels(key),
                u8::from(gauges.ready)
            )?;
        }
        header(out, QUEUE_DEPTH)?;
        for (key, depth) in self.each(|g| g.depth) {
            writeln!(out, "{}{} {depth}", QUEUE_DEPTH.0, labels(key))?;
        }
        header(out, QUEUE_OLDEST_AGE)?;
        for (key, age) in self.each(|g| g.oldest_message_age_seconds) {
            writeln!(out, "{}{} {age}", QUEUE_OLDEST_AGE.0, labels(key))?;
        }
        header(out, CONSUMER_BACKLOG)?;
        for ((_, namespace, name), backlog) in self.each(|g| g.backlog) {
            let (namespace, name) = (escape(namespace), escape(name));
            writeln!(
                out,
                "{}{{namespace=\"{namespace}\",name=\"{name}\"}} {backlog}",
                CONSUMER_BACKLOG.0
            )?;
        }
        Ok(())
    }

    /// The objects that have `value`, with it.
    fn each(&self, value: impl Fn(&ObjectGauges) -> Option<i64>) -> impl Iterator<Item = (&ObjectKey, i64)> {
        self.gauges
            .iter()
            .filter_map(move |(key, gauges)| value(gauges).map(|v| (key, v)))
    }
}

fn header(out: &mut String, (name, help): Family) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} gauge")
}

/// A label value escaped as the text format requires: backslash, double quote and line feed.
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}
