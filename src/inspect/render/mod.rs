//! The graph as text: a tree for terminals ([`text`]), and as JSON, Graphviz and Mermaid for tools and
//! docs ([`export`]). What a node's line says is shared here.

pub mod export;
pub mod text;

use super::graph::{Fact, Readiness, Value};

/// The output formats of `tributary tree`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A tree (in colour on a terminal).
    Tree,
    /// The nodes and edges as JSON.
    Json,
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (Markdown pages on GitHub render it).
    Mermaid,
}

/// The graph in `format` (`color` only applies to the tree).
pub fn render(graph: &super::graph::Graph, format: Format, color: bool) -> String {
    match format {
        Format::Tree => text::render(graph, color),
        Format::Json => export::json(graph),
        Format::Dot => export::dot(graph),
        Format::Mermaid => export::mermaid(graph),
    }
}

/// `✓ Ready`, `✗ NotReady: Reason: message`, …; nothing for a hop that is no object.
pub fn readiness_word(ready: &Readiness) -> Option<String> {
    match ready {
        Readiness::Ready => Some("✓ Ready".to_owned()),
        Readiness::NotReady { reason, message } if message.is_empty() => {
            Some(format!("✗ NotReady: {reason}"))
        }
        Readiness::NotReady { reason, message } => Some(format!("✗ NotReady: {reason}: {message}")),
        Readiness::Pending => Some("… Pending (no Ready condition yet)".to_owned()),
        Readiness::Missing => Some("✗ Missing (referenced, not found)".to_owned()),
        Readiness::NotAnObject => None,
    }
}

/// `depth 12 · oldest 3m05s · table orders`.
pub fn facts_line(facts: &[Fact]) -> String {
    facts
        .iter()
        .map(|fact| format!("{} {}", fact.label, value(&fact.value)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A value as shown: counts as they are, seconds as `45s`, `3m05s`, `2h10m`, `3d04h`.
pub fn value(value: &Value) -> String {
    match value {
        Value::Count(count) => count.to_string(),
        Value::Text(text) => text.clone(),
        Value::Seconds(seconds) => duration(*seconds),
    }
}

fn duration(seconds: i64) -> String {
    let (m, s) = (seconds / 60, seconds % 60);
    let (h, d) = (m / 60, m / 1440);
    match seconds {
        ..60 => format!("{seconds}s"),
        60..3600 => format!("{m}m{s:02}s"),
        3600..86400 => format!("{h}h{:02}m", m % 60),
        _ => format!("{d}d{:02}h", h % 24),
    }
}
