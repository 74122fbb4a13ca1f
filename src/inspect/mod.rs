//! Seeing a pipeline as one thing: `tributary tree` (the graph of the Tributary objects of a namespace,
//! hop by hop, with readiness and the live numbers their status holds) and `tributary trace` (one
//! message's journey across processors, from the spans the workers exported).
//!
//! Above `api`, below nothing of the controller: the tree reads the objects with the user's kubeconfig
//! as kubectl would ([`fetch`]), builds the graph as pure logic ([`build`], [`graph`], [`facts`]) and
//! renders it ([`render`]); the trace reads OTLP JSON ([`trace`]). No cloud call.

pub mod build;
pub mod facts;
pub mod fetch;
pub mod graph;
pub mod render;
pub mod trace;

/// Which part of the objects to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every pipeline of one namespace.
    Namespace(String),
    /// Every pipeline of every namespace.
    AllNamespaces,
    /// The pipeline (everything connected) an object of `namespace` belongs to.
    Object {
        /// Its namespace.
        namespace: String,
        /// Its kind.
        kind: graph::NodeKind,
        /// Its name.
        name: String,
    },
}

/// What went wrong showing a tree.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A target that is not `KIND/NAME` of a Tributary kind.
    #[error(
        "target {0:?}: expected KIND/NAME with KIND one of topic, devicestream, consumer, queue, subscription, deadletter"
    )]
    BadTarget(String),
    /// Listing a kind failed (no access, no CRD, no cluster).
    #[error("listing {kind} failed: {source}")]
    List {
        /// The kind listed.
        kind: &'static str,
        /// Why.
        source: kube::Error,
    },
    /// The named object is not there.
    #[error("{kind}/{name} not found in namespace {namespace}")]
    NotFound {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
}

/// The kind a `KIND/NAME` target names (as kubectl takes them: any case, singular or plural, short).
pub fn parse_kind(kind: &str) -> Option<graph::NodeKind> {
    use graph::NodeKind;
    let kind = kind.to_ascii_lowercase();
    let kind = kind.split('.').next().unwrap_or_default();
    let singular = kind.strip_suffix('s').unwrap_or(kind);
    Some(match if kind == "ds" { kind } else { singular } {
        "topic" => NodeKind::Topic,
        "devicestream" | "ds" => NodeKind::DeviceStream,
        "consumer" => NodeKind::Consumer,
        "queue" => NodeKind::Queue,
        "subscription" | "sub" => NodeKind::Subscription,
        "deadletter" | "dlq" => NodeKind::DeadLetter,
        _ => return None,
    })
}

/// The scope of `target` (`KIND/NAME`) in `namespace`, or of the namespace(s) when there is none.
pub fn scope(target: Option<&str>, namespace: &str, all: bool) -> Result<Scope, Error> {
    let Some(target) = target else {
        return Ok(if all {
            Scope::AllNamespaces
        } else {
            Scope::Namespace(namespace.to_owned())
        });
    };
    let bad = || Error::BadTarget(target.to_owned());
    let (kind, name) = target.split_once('/').ok_or_else(bad)?;
    let kind = parse_kind(kind).ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok(Scope::Object {
        namespace: namespace.to_owned(),
        kind,
        name: name.to_owned(),
    })
}

/// The part of `graph` `scope` selects.
pub fn select(graph: &graph::Graph, scope: &Scope) -> Result<graph::Graph, Error> {
    match scope {
        Scope::AllNamespaces => Ok(graph.clone()),
        Scope::Namespace(namespace) => Ok(graph.in_namespace(namespace)),
        Scope::Object {
            namespace,
            kind,
            name,
        } => {
            let found = graph
                .find(&graph::Graph::id(namespace, *kind, name))
                .filter(|&i| graph.nodes[i].ready != graph::Readiness::Missing);
            let index = found.ok_or_else(|| Error::NotFound {
                kind: kind.label(),
                name: name.clone(),
                namespace: namespace.clone(),
            })?;
            Ok(graph.component(index))
        }
    }
}

/// The tree of `scope` in `format`: lists the objects with `client`, builds the graph, renders it.
pub async fn tree(
    client: &kube::Client,
    scope: &Scope,
    format: render::Format,
    color: bool,
) -> Result<String, Error> {
    let objects = fetch::objects(client, scope).await?;
    let graph = select(&build::build(&objects), scope)?;
    Ok(render::render(&graph, format, color))
}

#[cfg(test)]
mod tests;
