//! The pipeline graph, pure: nodes (the Tributary objects and the hops between them that are no object:
//! the order endpoint's Service, the relay to Azure, a Cosmos DB container) and the edges messages take.
//! Built from the objects as listed ([`Objects`]), with nothing fetched.

use serde::Serialize;

/// The kinds of node, in the order a tree lists siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum NodeKind {
    /// The order endpoint: the Service in front of a Consumer with an `http` source.
    Service,
    /// An Event Hub (Kafka) stream of device telemetry.
    DeviceStream,
    /// An SNS topic.
    Topic,
    /// A topic's subscription, with its filter.
    Subscription,
    /// The relay that carries a Subscription's messages to an Azure Storage Queue.
    Relay,
    /// An SQS queue or Azure Storage Queue.
    Queue,
    /// A Consumer: the workers that drain a source.
    Consumer,
    /// A Cosmos DB container a Consumer writes to.
    Cosmos,
    /// A dead-letter queue.
    DeadLetter,
}

impl NodeKind {
    /// The name shown before a node's name (`Queue/inventory`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Service => "Service",
            Self::DeviceStream => "DeviceStream",
            Self::Topic => "Topic",
            Self::Subscription => "Subscription",
            Self::Relay => "Relay",
            Self::Queue => "Queue",
            Self::Consumer => "Consumer",
            Self::Cosmos => "Cosmos",
            Self::DeadLetter => "DeadLetter",
        }
    }
}

/// Whether a node's object is Ready, from its `Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Readiness {
    /// `Ready` is `True`.
    Ready,
    /// `Ready` is `False` (or `Unknown`), with the condition's reason and message.
    NotReady {
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// No `Ready` condition yet: the controller has not reported on the object.
    Pending,
    /// Referenced by another object but not found.
    Missing,
    /// Not a Tributary object (a Service, the relay, a Cosmos container): its owner's readiness applies.
    NotAnObject,
}

/// A value shown on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A count or rate, from status: live, so golden outputs mask it.
    Count(i64),
    /// A duration in seconds, from status: live, as a count.
    Seconds(i64),
    /// Anything else (from spec, or a word of status).
    Text(String),
}

/// One labelled value of a node (`depth 12`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// What it is, in a word or two (`depth`, `processed/min`).
    pub label: &'static str,
    /// Its value.
    pub value: Value,
}

impl Fact {
    /// A fact from spec or a word of status.
    pub fn text(label: &'static str, value: impl Into<String>) -> Self {
        Self {
            label,
            value: Value::Text(value.into()),
        }
    }

    /// A count from status.
    pub fn count(label: &'static str, value: i64) -> Self {
        Self {
            label,
            value: Value::Count(value),
        }
    }
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Unique in the graph: `namespace/Kind/name`.
    pub id: String,
    /// What it is.
    pub kind: NodeKind,
    /// The namespace of its object (or of the object it belongs to).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether it is Ready.
    pub ready: Readiness,
    /// What is known of it, in the order shown.
    pub facts: Vec<Fact>,
}

/// Messages go from `from` to `to` (indexes into [`Graph::nodes`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The upstream node.
    pub from: usize,
    /// The downstream node.
    pub to: usize,
    /// What the hop does, when it is not plain delivery (`publishes`, `rejects`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// The pipeline graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Every node, in the order built.
    pub nodes: Vec<Node>,
    /// Every edge, in the order built.
    pub edges: Vec<Edge>,
}

impl Graph {
    /// The id of a node of `kind` named `name` in `namespace`.
    pub fn id(namespace: &str, kind: NodeKind, name: &str) -> String {
        format!("{namespace}/{}/{name}", kind.label())
    }

    /// The index of the node `id`, added by `make` when there is none yet.
    pub fn node(&mut self, id: &str, make: impl FnOnce() -> Node) -> usize {
        if let Some(index) = self.find(id) {
            return index;
        }
        self.nodes.push(make());
        self.nodes.len() - 1
    }

    /// The index of the node `id`.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Adds an edge, once.
    pub fn edge(&mut self, from: usize, to: usize, label: Option<&str>) {
        let edge = Edge {
            from,
            to,
            label: label.map(str::to_owned),
        };
        if !self.edges.contains(&edge) {
            self.edges.push(edge);
        }
    }

    /// The downstream neighbours of `index`, in sibling order (kind, then name).
    pub fn children(&self, index: usize) -> Vec<(usize, Option<&str>)> {
        let mut children: Vec<(usize, Option<&str>)> = self
            .edges
            .iter()
            .filter(|e| e.from == index)
            .map(|e| (e.to, e.label.as_deref()))
            .collect();
        children.sort_by(|a, b| self.order(a.0).cmp(&self.order(b.0)));
        children
    }

    /// Where a tree starts: the nodes nothing leads to, then (for cycles with no such node) the first
    /// node of each part not reached yet, Topics first.
    pub fn roots(&self) -> Vec<usize> {
        let mut all: Vec<usize> = (0..self.nodes.len()).collect();
        all.sort_by(|&a, &b| self.order(a).cmp(&self.order(b)));
        let mut roots: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| !self.edges.iter().any(|e| e.to == i))
            .collect();
        let mut reached = self.reachable(&roots);
        let mut rest: Vec<usize> = all.into_iter().filter(|i| !reached[*i]).collect();
        rest.sort_by_key(|&i| (self.nodes[i].kind != NodeKind::Topic, self.order(i)));
        for index in rest {
            if !reached[index] {
                roots.push(index);
                reached = self.reachable(&roots);
            }
        }
        roots
    }

    /// Which nodes the edges lead to from `starts` (the starts included).
    fn reachable(&self, starts: &[usize]) -> Vec<bool> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = starts.to_vec();
        while let Some(index) = stack.pop() {
            if !std::mem::replace(&mut seen[index], true) {
                stack.extend(self.edges.iter().filter(|e| e.from == index).map(|e| e.to));
            }
        }
        seen
    }

    /// The part of the graph connected to `index` (edges taken either way): the pipeline it belongs to.
    pub fn component(&self, index: usize) -> Self {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![index];
        while let Some(at) = stack.pop() {
            if std::mem::replace(&mut seen[at], true) {
                continue;
            }
            for edge in &self.edges {
                if edge.from == at {
                    stack.push(edge.to);
                } else if edge.to == at {
                    stack.push(edge.from);
                }
            }
        }
        self.only(&seen)
    }

    /// The nodes of `namespace` and the edges between them.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        let keep: Vec<bool> = self.nodes.iter().map(|n| n.namespace == namespace).collect();
        self.only(&keep)
    }

    /// The nodes `keep` marks and the edges between them, renumbered.
    fn only(&self, keep: &[bool]) -> Self {
        let mut renumbered = vec![None; self.nodes.len()];
        let mut graph = Self::default();
        for (index, node) in self.nodes.iter().enumerate().filter(|(i, _)| keep[*i]) {
            renumbered[index] = Some(graph.nodes.len());
            graph.nodes.push(node.clone());
        }
        for edge in &self.edges {
            if let (Some(from), Some(to)) = (renumbered[edge.from], renumbered[edge.to]) {
                graph.edges.push(Edge {
                    from,
                    to,
                    label: edge.label.clone(),
                });
            }
        }
        graph
    }

    /// Every live number replaced by zero: what stays the same from one run to the next (for golden
    /// outputs in tests and docs).
    pub fn mask_counts(&mut self) {
        for fact in self.nodes.iter_mut().flat_map(|n| n.facts.iter_mut()) {
            fact.value = match fact.value {
                Value::Count(_) => Value::Count(0),
                Value::Seconds(_) => Value::Seconds(0),
                Value::Text(ref text) => Value::Text(text.clone()),
            };
        }
    }

    fn order(&self, index: usize) -> (&str, NodeKind, &str) {
        let node = &self.nodes[index];
        (&node.namespace, node.kind, &node.name)
    }
}
