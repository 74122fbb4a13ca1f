//! The journey of one message, pure: the traces that hold it, each as its spans in causal order (a span
//! after its parent, siblings by start time) with when each started after the first and how long it took.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::spans::Span;

/// The attribute of the `POST /orders` span that names the order.
pub const ORDER_ID: &str = "order.id";

/// One hop of a journey.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    /// The service (a Consumer's name) that recorded it.
    pub service: String,
    /// The span's name.
    pub name: String,
    /// How many hops it is below the first.
    pub depth: usize,
    /// Milliseconds after the journey's first span started.
    pub offset_ms: f64,
    /// Milliseconds it took.
    pub duration_ms: f64,
    /// Its error, when it ended in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its span id.
    pub span_id: String,
}

/// One trace of the message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Journey {
    /// The trace id.
    pub trace_id: String,
    /// Its hops in causal order.
    pub hops: Vec<Hop>,
}

/// Whether `key` is a trace id (32 hex digits) rather than an order id.
pub fn is_trace_id(key: &str) -> bool {
    key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The journeys of `key` (an order id, or a trace id) in `spans`, the earliest first.
pub fn find(spans: &[Span], key: &str) -> Vec<Journey> {
    let traces: BTreeSet<&str> = if is_trace_id(key) {
        BTreeSet::from([key])
    } else {
        spans
            .iter()
            .filter(|s| s.attributes.get(ORDER_ID).is_some_and(|v| v == key))
            .map(|s| s.trace_id.as_str())
            .collect()
    };
    let mut journeys: Vec<Journey> = traces
        .into_iter()
        .map(|trace| journey(trace, spans.iter().filter(|s| s.trace_id == trace).collect()))
        .filter(|j| !j.hops.is_empty())
        .collect();
    journeys.sort_by(|a, b| a.hops[0].offset_ms.total_cmp(&b.hops[0].offset_ms));
    journeys
}

/// The spans of one trace (the same span exported twice counts once) in causal order.
fn journey(trace_id: &str, spans: Vec<&Span>) -> Journey {
    let mut by_id: BTreeMap<&str, &Span> = BTreeMap::new();
    for span in spans {
        by_id.entry(span.span_id.as_str()).or_insert(span);
    }
    let first = by_id.values().map(|s| s.start).min().unwrap_or(0);
    let mut children: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    let mut roots = Vec::new();
    for span in by_id.values() {
        if span.parent_id.is_empty() || !by_id.contains_key(span.parent_id.as_str()) {
            roots.push(*span);
        } else {
            children.entry(span.parent_id.as_str()).or_default().push(span);
        }
    }
    let mut hops = Vec::new();
    let mut stack: Vec<(&Span, usize)> = sorted(roots).into_iter().rev().map(|s| (s, 0)).collect();
    while let Some((span, depth)) = stack.pop() {
        hops.push(Hop {
            service: span.service.clone(),
            name: span.name.clone(),
            depth,
            offset_ms: millis(span.start.saturating_sub(first)),
            duration_ms: millis(span.end.saturating_sub(span.start)),
            error: span.error.clone(),
            span_id: span.span_id.clone(),
        });
        let below = sorted(children.remove(span.span_id.as_str()).unwrap_or_default());
        stack.extend(below.into_iter().rev().map(|s| (s, depth + 1)));
    }
    Journey {
        trace_id: trace_id.to_owned(),
        hops,
    }
}

fn sorted(mut spans: Vec<&Span>) -> Vec<&Span> {
    spans.sort_by_key(|s| (s.start, s.span_id.clone()));
    spans
}

#[allow(clippy::cast_precision_loss)] // nanoseconds of one journey: far below 2^52
fn millis(nanos: u64) -> f64 {
    (nanos as f64 / 1e4).round() / 100.0
}

/// The journeys as text: a header per trace, then one line per hop, indented by depth.
pub fn render(key: &str, journeys: &[Journey]) -> String {
    let mut out = String::new();
    for journey in journeys {
        let total = journey
            .hops
            .iter()
            .map(|h| h.offset_ms + h.duration_ms)
            .fold(0.0, f64::max);
        out.push_str(&format!(
            "{key}  trace {}  {} spans over {total:.1} ms\n  {:>10}  {:>9}  SERVICE: SPAN\n",
            journey.trace_id,
            journey.hops.len(),
            "START",
            "TOOK"
        ));
        for hop in &journey.hops {
            let error = match &hop.error {
                Some(message) if !message.is_empty() => format!("  ✗ {message}"),
                Some(_) => "  ✗ error".to_owned(),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {:>10}  {:>9}  {}{}: {}{error}\n",
                format!("+{:.1} ms", hop.offset_ms),
                format!("{:.1} ms", hop.duration_ms),
                "  ".repeat(hop.depth),
                hop.service,
                hop.name
            ));
        }
    }
    out
}
