//! The graph for tools and docs: JSON (the nodes with their facts, the edges by node id), Graphviz and
//! Mermaid (a box per node with its readiness and facts, coloured by readiness).

use serde_json::json;

use super::super::graph::{Graph, Node, Readiness};
use super::{facts_line, readiness_word};

/// `{"nodes": [...], "edges": [{"from": id, "to": id, "label"?}]}`.
pub fn json(graph: &Graph) -> String {
    let edges: Vec<serde_json::Value> = graph
        .edges
        .iter()
        .map(|edge| {
            let mut value = json!({
                "from": graph.nodes[edge.from].id,
                "to": graph.nodes[edge.to].id,
            });
            if let Some(label) = &edge.label {
                value["label"] = json!(label);
            }
            value
        })
        .collect();
    let document = json!({"nodes": graph.nodes, "edges": edges});
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// The lines of a node's box: `Kind/name`, readiness, facts.
fn lines(node: &Node) -> Vec<String> {
    let mut lines = vec![format!("{}/{}", node.kind.label(), node.name)];
    lines.extend(readiness_word(&node.ready));
    let facts = facts_line(&node.facts);
    if !facts.is_empty() {
        lines.push(facts);
    }
    lines
}

/// The colour of a node's border by readiness.
fn colour(ready: &Readiness) -> &'static str {
    match ready {
        Readiness::Ready => "#2e7d32",
        Readiness::Pending => "#b58900",
        Readiness::NotAnObject => "#607d8b",
        Readiness::NotReady { .. } | Readiness::Missing => "#c62828",
    }
}

/// A Graphviz digraph, left to right.
pub fn dot(graph: &Graph) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from(
        "digraph tributary {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n",
    );
    for node in &graph.nodes {
        let label = lines(node)
            .iter()
            .map(|l| l.replace('\\', "\\\\").replace('"', "\\\""))
            .collect::<Vec<_>>()
            .join("\\n");
        out.push_str(&format!(
            "  {} [label=\"{label}\", color=\"{}\"];\n",
            quote(&node.id),
            colour(&node.ready)
        ));
    }
    for edge in &graph.edges {
        let label = edge
            .label
            .as_ref()
            .map(|l| format!(" [label={}]", quote(l)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {} -> {}{label};\n",
            quote(&graph.nodes[edge.from].id),
            quote(&graph.nodes[edge.to].id)
        ));
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart, left to right; node ids are `n0`, `n1`, … (object names may hold any character
/// Mermaid's ids do not take).
pub fn mermaid(graph: &Graph) -> String {
    let escape = |text: &str| {
        text.replace('"', "#quot;")
            .replace('<', "#lt;")
            .replace('>', "#gt;")
    };
    let mut out = String::from("flowchart LR\n");
    for (index, node) in graph.nodes.iter().enumerate() {
        let label = lines(node)
            .iter()
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("<br/>");
        out.push_str(&format!("  n{index}[\"{label}\"]\n"));
    }
    for edge in &graph.edges {
        match &edge.label {
            Some(label) => out.push_str(&format!(
                "  n{} -->|\"{}\"| n{}\n",
                edge.from,
                escape(label),
                edge.to
            )),
            None => out.push_str(&format!("  n{} --> n{}\n", edge.from, edge.to)),
        }
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        out.push_str(&format!("  style n{index} stroke:{}\n", colour(&node.ready)));
    }
    out
}
