//! From the listed objects to the pipeline graph: a node per object, the hops that are no object (the
//! order endpoint, the relay to Azure, a Cosmos DB container), and an edge wherever a reference sends
//! messages. A reference to an object not listed makes a node marked [`Readiness::Missing`].

use kube::ResourceExt as _;

use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic, common::Provider};

use super::facts;
use super::graph::{Graph, Node, NodeKind, Readiness};

/// The objects a graph is built from (from one namespace or from all).
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Topics.
    pub topics: Vec<Topic>,
    /// Subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Queues.
    pub queues: Vec<Queue>,
    /// Consumers.
    pub consumers: Vec<Consumer>,
    /// DeadLetters.
    pub dead_letters: Vec<DeadLetter>,
    /// DeviceStreams.
    pub device_streams: Vec<DeviceStream>,
}

/// The graph of `objects`.
pub fn build(objects: &Objects) -> Graph {
    let mut graph = Graph::default();
    for topic in &objects.topics {
        add(&mut graph, NodeKind::Topic, topic, facts::topic(topic));
    }
    for stream in &objects.device_streams {
        add(
            &mut graph,
            NodeKind::DeviceStream,
            stream,
            facts::device_stream(stream),
        );
    }
    for queue in &objects.queues {
        add(&mut graph, NodeKind::Queue, queue, facts::queue(queue));
    }
    for dead_letter in &objects.dead_letters {
        add(
            &mut graph,
            NodeKind::DeadLetter,
            dead_letter,
            facts::dead_letter(dead_letter),
        );
    }
    for subscription in &objects.subscriptions {
        subscription_hops(&mut graph, subscription, objects);
    }
    for consumer in &objects.consumers {
        consumer_hops(&mut graph, consumer);
    }
    for queue in &objects.queues {
        queue_dead_letter(&mut graph, queue, &objects.consumers);
    }
    graph
}

/// The node of an object, with its readiness and facts.
fn add<K: kube::Resource<Scope = kube::core::NamespaceResourceScope>>(
    graph: &mut Graph,
    kind: NodeKind,
    object: &K,
    facts: (Readiness, Vec<super::graph::Fact>),
) -> usize {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let id = Graph::id(&namespace, kind, &name);
    let (ready, facts) = facts;
    graph.node(&id, || Node {
        id: id.clone(),
        kind,
        namespace,
        name,
        ready,
        facts,
    })
}

/// The node `kind`/`name` in `namespace`, marked missing when no object made it.
fn referenced(graph: &mut Graph, namespace: &str, kind: NodeKind, name: &str) -> usize {
    let id = Graph::id(namespace, kind, name);
    graph.node(&id, || Node {
        id: id.clone(),
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ready: Readiness::Missing,
        facts: Vec::new(),
    })
}

/// A hop that is no object, named `name`, belonging to an object of `namespace`.
fn hop(
    graph: &mut Graph,
    namespace: &str,
    kind: NodeKind,
    name: &str,
    facts: Vec<super::graph::Fact>,
) -> usize {
    let id = Graph::id(namespace, kind, name);
    graph.node(&id, || Node {
        id: id.clone(),
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        ready: Readiness::NotAnObject,
        facts,
    })
}

/// Topic → Subscription → Queue, with the relay between them when the queue is on Azure.
fn subscription_hops(graph: &mut Graph, subscription: &Subscription, objects: &Objects) {
    let namespace = subscription.namespace().unwrap_or_default();
    let node = add(
        graph,
        NodeKind::Subscription,
        subscription,
        facts::subscription(subscription),
    );
    let spec = &subscription.spec;
    let topic = referenced(graph, &namespace, NodeKind::Topic, &spec.topic_ref.name);
    graph.edge(topic, node, None);
    let queue = referenced(graph, &namespace, NodeKind::Queue, &spec.queue_ref.name);
    let on_azure = objects.queues.iter().any(|q| {
        q.namespace().as_deref() == Some(namespace.as_str())
            && q.name_any() == spec.queue_ref.name
            && q.spec.provider == Provider::Azure
    });
    let relayed = subscription
        .status
        .as_ref()
        .is_some_and(|s| s.relay_queue_url.is_some());
    if on_azure || relayed {
        let relay = hop(
            graph,
            &namespace,
            NodeKind::Relay,
            &subscription.name_any(),
            facts::relay(subscription),
        );
        graph.edge(node, relay, None);
        graph.edge(relay, queue, Some("to azure"));
    } else {
        graph.edge(node, queue, None);
    }
}

/// Source → Consumer → sinks (Topic, Cosmos DB) and dead letter.
fn consumer_hops(graph: &mut Graph, consumer: &Consumer) {
    let namespace = consumer.namespace().unwrap_or_default();
    let name = consumer.name_any();
    let node = add(graph, NodeKind::Consumer, consumer, facts::consumer(consumer));
    let source = &consumer.spec.source;
    if let Some(queue) = &source.queue_ref {
        let queue = referenced(graph, &namespace, NodeKind::Queue, &queue.name);
        graph.edge(queue, node, None);
    }
    if let Some(stream) = &source.device_stream_ref {
        let from = referenced(graph, &namespace, NodeKind::DeviceStream, &stream.name);
        graph.edge(from, node, Some(&format!("group {}", stream.consumer_group)));
    }
    if let Some(http) = &source.http {
        let service = hop(graph, &namespace, NodeKind::Service, &name, facts::endpoint(http));
        graph.edge(service, node, None);
    }
    if let Some(sink) = &consumer.spec.sink {
        if let Some(topic) = &sink.topic_ref {
            let topic = referenced(graph, &namespace, NodeKind::Topic, &topic.name);
            graph.edge(node, topic, Some("publishes"));
        }
        if let Some(cosmos) = &sink.cosmos {
            let container = format!("{}/{}", cosmos.database, cosmos.container);
            let sink = hop(
                graph,
                &namespace,
                NodeKind::Cosmos,
                &container,
                facts::cosmos(cosmos),
            );
            graph.edge(node, sink, Some("writes"));
        }
    }
    if let Some(dead_letter) = &consumer.spec.dead_letter_ref {
        let dead_letter = referenced(graph, &namespace, NodeKind::DeadLetter, &dead_letter.name);
        graph.edge(node, dead_letter, Some("rejects"));
    }
}

/// Queue → DeadLetter (the cloud's redrive after too many receives), unless a Consumer of the queue
/// already leads there: the same dead letter once per branch is enough.
fn queue_dead_letter(graph: &mut Graph, queue: &Queue, consumers: &[Consumer]) {
    let Some(target) = &queue.spec.dead_letter else {
        return;
    };
    let namespace = queue.namespace().unwrap_or_default();
    let name = queue.name_any();
    let shown = consumers.iter().any(|c| {
        c.namespace().as_deref() == Some(namespace.as_str())
            && c.spec.source.queue_ref.as_ref().is_some_and(|q| q.name == name)
            && c.spec
                .dead_letter_ref
                .as_ref()
                .is_some_and(|d| d.name == target.target.name)
    });
    if shown {
        return;
    }
    let from = referenced(graph, &namespace, NodeKind::Queue, &name);
    let to = referenced(graph, &namespace, NodeKind::DeadLetter, &target.target.name);
    let label = format!("after {} receives", target.max_receive_count);
    graph.edge(from, to, Some(&label));
}
