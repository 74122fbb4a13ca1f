//! The containers' logs as the tests read them: JSON lines with the kubelet's timestamps.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// One line of a container's log: when the kubelet read it, and the JSON object the program wrote.
#[derive(Clone, Debug)]
pub(super) struct Line {
    pub(super) at: Timestamp,
    pub(super) entry: Value,
}

impl Line {
    /// The line's message: the Go processor's `msg`, the worker's `fields.message`.
    pub(super) fn message(&self) -> &str {
        self.entry["msg"]
            .as_str()
            .or_else(|| self.entry["fields"]["message"].as_str())
            .unwrap_or_default()
    }

    /// The event id the processor's line is about.
    pub(super) fn id(&self) -> &str {
        self.entry["id"].as_str().unwrap_or_default()
    }
}

/// The lines of a log read with `timestamps: true`; lines that are not JSON (none expected) are skipped.
pub(super) fn parse_log(text: &str) -> Vec<Line> {
    text.lines().filter_map(parse_line).collect()
}

pub(super) fn parse_line(line: &str) -> Option<Line> {
    let (at, rest) = line.split_once(' ')?;
    Some(Line {
        at: at.parse().ok()?,
        entry: serde_json::from_str(rest).ok()?,
    })
}

/// The ids of the lines saying `message`.
pub(super) fn ids(lines: &[Line], message: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.message() == message)
        .map(|l| l.id().to_owned())
        .collect()
}

/// The first line saying `message`.
pub(super) fn first<'a>(lines: &'a [Line], message: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.message() == message)
        .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

/// The lines of a followed log, as they come.
pub(super) type Followed = std::sync::Arc<std::sync::Mutex<Vec<Line>>>;

/// Seconds from `from` to `to`.
pub(super) fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

/// A timestamp cut to whole seconds, as the API's container and condition times are.
pub(super) fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap()
}

/// `ids` sorted, to compare as sets that keep duplicates.
pub(super) fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}
