//! The graph as a tree on a terminal: each root (what nothing leads to, such as the order endpoint or a
//! DeviceStream) with what its messages reach below it; a node reached again is one line marked `↺`.
//! Colour is a parameter, decided by the caller from the terminal and `NO_COLOR`.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::super::graph::{Graph, Readiness};
use super::{facts_line, readiness_word};

const BOLD: Style = Style::new().bold();
const GREEN: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const RED: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
const YELLOW: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));
const DIM: Style = Style::new().dimmed();

/// The tree of `graph`, in colour when `color`.
pub fn render(graph: &Graph, color: bool) -> String {
    let mut out = String::new();
    let paint = Paint(color);
    let mut shown = vec![false; graph.nodes.len()];
    let mut namespace: Option<&str> = None;
    for root in graph.roots() {
        let node = &graph.nodes[root];
        if namespace != Some(node.namespace.as_str()) {
            namespace = Some(&node.namespace);
            let _ = writeln!(
                out,
                "{}",
                paint.style(BOLD, &format!("namespace {}", node.namespace))
            );
        }
        let mut walk = Walk {
            graph,
            paint,
            shown: &mut shown,
            out: &mut out,
        };
        walk.node(root, "", "", None);
    }
    if graph.nodes.is_empty() {
        out.push_str("no Tributary objects found\n");
    }
    out
}

#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn style(self, style: Style, text: &str) -> String {
        if self.0 {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }
}

struct Walk<'a> {
    graph: &'a Graph,
    paint: Paint,
    shown: &'a mut [bool],
    out: &'a mut String,
}

impl Walk<'_> {
    /// Writes node `index` after `lead` (its branch), then its children under `indent`.
    fn node(&mut self, index: usize, lead: &str, indent: &str, label: Option<&str>) {
        let node = &self.graph.nodes[index];
        let via = label
            .map(|l| self.paint.style(DIM, &format!("{l} → ")))
            .unwrap_or_default();
        let name = self
            .paint
            .style(BOLD, &format!("{}/{}", node.kind.label(), node.name));
        if std::mem::replace(&mut self.shown[index], true) {
            let again = self.paint.style(DIM, "↺ (shown above)");
            let _ = writeln!(self.out, "{lead}{via}{name}  {again}");
            return;
        }
        let mut line = format!("{lead}{via}{name}");
        if let Some(word) = readiness_word(&node.ready) {
            let style = match node.ready {
                Readiness::Ready => GREEN,
                Readiness::Pending => YELLOW,
                _ => RED,
            };
            line.push_str("  ");
            line.push_str(&self.paint.style(style, &word));
        }
        let facts = facts_line(&node.facts);
        if !facts.is_empty() {
            line.push_str("  ");
            line.push_str(&facts);
        }
        let _ = writeln!(self.out, "{line}");
        let children = self.graph.children(index);
        let last = children.len().saturating_sub(1);
        for (position, (child, label)) in children.into_iter().enumerate() {
            let (branch, rest) = if position == last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            self.node(
                child,
                &format!("{indent}{branch}"),
                &format!("{indent}{rest}"),
                label,
            );
        }
    }
}
