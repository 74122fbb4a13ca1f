//! The graph, its tree and its exports, built from the example pipelines' own YAML with status set by
//! hand; and the trace of one order from OTLP JSON lines. No network.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::de::DeserializeOwned;

use super::build::{Objects, build};
use super::graph::{Graph, NodeKind, Readiness};
use super::render::{Format, render};
use super::*;

const ORDERS: [&str; 6] = [
    include_str!("../../examples/orders/00-topic.yaml"),
    include_str!("../../examples/orders/01-dead-letter.yaml"),
    include_str!("../../examples/orders/02-queue-inventory.yaml"),
    include_str!("../../examples/orders/02-queue-notifications.yaml"),
    include_str!("../../examples/orders/02-queue-shipments.yaml"),
    include_str!("../../examples/orders/03-subscriptions.yaml"),
];
const CONSUMERS: &str = include_str!("../../examples/orders/04-consumers.yaml");
const DEVICES: [&str; 3] = [
    include_str!("../../examples/devices/00-device-stream.yaml"),
    include_str!("../../examples/devices/01-dead-letter.yaml"),
    include_str!("../../examples/devices/02-consumer.yaml"),
];

/// The objects of `kind` in `texts`, in namespace `ns`, with `status` (JSON) on each.
fn objects<K: DeserializeOwned>(texts: &[&str], kind: &str, ns: &str, status: &serde_json::Value) -> Vec<K> {
    let mut out = Vec::new();
    for text in texts {
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let mut value = serde_json::to_value(
                <serde_yaml_ng::Value as serde::Deserialize>::deserialize(document).unwrap(),
            )
            .unwrap();
            if value["kind"] != kind {
                continue;
            }
            value["metadata"]["namespace"] = ns.into();
            value["status"] = status.clone();
            out.push(serde_json::from_value(value).unwrap());
        }
    }
    out
}

fn ready() -> serde_json::Value {
    serde_json::json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Available",
        "message": "", "lastTransitionTime": "2026-12-06T15:00:00Z"}]})
}

fn with(extra: serde_json::Value) -> serde_json::Value {
    let mut status = ready();
    for (key, value) in extra.as_object().unwrap() {
        status[key] = value.clone();
    }
    status
}

fn orders(ns: &str) -> Objects {
    let mut texts = ORDERS.to_vec();
    texts.push(CONSUMERS);
    Objects {
        topics: objects(
            &texts,
            "Topic",
            ns,
            &with(serde_json::json!({"subscriptionsConfirmed": 3})),
        ),
        subscriptions: objects(&texts, "Subscription", ns, &ready()),
        queues: objects(
            &texts,
            "Queue",
            ns,
            &with(serde_json::json!({"depth": 7, "oldestMessageAgeSeconds": 185})),
        ),
        consumers: objects(
            &texts,
            "Consumer",
            ns,
            &with(serde_json::json!({"replicas": 2, "backlog": 7})),
        ),
        dead_letters: objects(&texts, "DeadLetter", ns, &with(serde_json::json!({"depth": 3}))),
        device_streams: Vec::new(),
    }
}

fn devices(ns: &str) -> Objects {
    let not_ready = serde_json::json!({"conditions": [{"type": "Ready", "status": "False",
        "reason": "SecretNotFound", "message": "Secret devices-cosmos not found",
        "lastTransitionTime": "2026-12-06T15:00:00Z"}]});
    Objects {
        device_streams: objects(
            &DEVICES,
            "DeviceStream",
            ns,
            &with(serde_json::json!({"partitions": 4})),
        ),
        consumers: objects(&DEVICES, "Consumer", ns, &not_ready),
        dead_letters: objects(&DEVICES, "DeadLetter", ns, &serde_json::json!({})),
        ..Objects::default()
    }
}

fn node<'a>(graph: &'a Graph, kind: NodeKind, name: &str) -> &'a graph::Node {
    graph
        .nodes
        .iter()
        .find(|n| n.kind == kind && n.name == name)
        .unwrap()
}

fn edge_labels(graph: &Graph, from: &str, to: &str) -> Vec<Option<String>> {
    graph
        .edges
        .iter()
        .filter(|e| graph.nodes[e.from].id.ends_with(from) && graph.nodes[e.to].id.ends_with(to))
        .map(|e| e.label.clone())
        .collect()
}

#[test]
fn the_order_pipeline_is_endpoint_consumer_topic_subscriptions_queues_consumers_dead_letter() {
    let graph = build(&orders("shop"));
    assert_eq!(
        edge_labels(&graph, "Service/order-ack", "Consumer/order-ack"),
        [None]
    );
    assert_eq!(
        edge_labels(&graph, "Consumer/order-ack", "Topic/orders"),
        [Some("publishes".into())]
    );
    assert_eq!(
        edge_labels(&graph, "Topic/orders", "Subscription/orders-to-inventory"),
        [None]
    );
    assert_eq!(
        edge_labels(&graph, "Subscription/orders-to-inventory", "Queue/inventory"),
        [None]
    );
    assert_eq!(
        edge_labels(&graph, "Queue/inventory", "Consumer/inventory"),
        [None]
    );
    assert_eq!(
        edge_labels(&graph, "Consumer/inventory", "DeadLetter/orders-dlq"),
        [Some("rejects".into())]
    );
    // The queue's own redrive leads to the dead letter its Consumer already shows: not drawn twice.
    assert!(edge_labels(&graph, "Queue/inventory", "DeadLetter/orders-dlq").is_empty());
    assert_eq!(graph.roots(), [graph.find("shop/Service/order-ack").unwrap()]);
    let shipments = node(&graph, NodeKind::Subscription, "orders-to-shipments");
    assert_eq!(
        render::facts_line(&shipments.facts),
        "filter delivery=[anything-but pickup] event=[OrderReserved] total=[numeric > 0]"
    );
}

#[test]
fn the_tree_shows_each_node_once_with_readiness_and_numbers() {
    let text = render(&build(&orders("shop")), Format::Tree, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "namespace shop");
    assert_eq!(lines[1], "Service/order-ack  port 8080 · auth api keys");
    assert!(
        lines[2].starts_with("└─ Consumer/order-ack  ✓ Ready  processor order-ack · replicas 2 · backlog 7"),
        "{text}"
    );
    assert!(
        text.contains("Queue/inventory  ✓ Ready  on aws · depth 7 · oldest 3m05s"),
        "{text}"
    );
    assert!(
        text.contains("DeadLetter/orders-dlq  ✓ Ready  on aws · depth 3"),
        "{text}"
    );
    assert!(
        text.contains("publishes → Topic/orders  ↺ (shown above)"),
        "{text}"
    );
    // Every object once in full, whatever the cycles (inventory publishes to the topic it drains).
    for name in ["Topic/orders ", "Queue/inventory ", "DeadLetter/orders-dlq "] {
        let full = lines
            .iter()
            .filter(|l| l.contains(name) && l.contains("✓ Ready"))
            .count();
        assert_eq!(full, 1, "{name}: {text}");
    }
    assert!(!text.contains('\u{1b}'), "no colour when not asked");
    assert!(render(&build(&orders("shop")), Format::Tree, true).contains("\u{1b}[32m✓ Ready"));
}

#[test]
fn a_device_stream_leads_to_its_consumer_and_the_cosmos_container_and_not_ready_says_why() {
    let graph = build(&devices("iot"));
    assert_eq!(
        edge_labels(&graph, "DeviceStream/telemetry", "Consumer/device-processor"),
        [Some("group device-processor".into())]
    );
    assert_eq!(
        edge_labels(&graph, "Consumer/device-processor", "Cosmos/telemetry/readings"),
        [Some("writes".into())]
    );
    let text = render(&graph, Format::Tree, false);
    assert!(
        text.contains(
            "Consumer/device-processor  ✗ NotReady: SecretNotFound: Secret devices-cosmos not found"
        ),
        "{text}"
    );
    assert!(text.contains("DeadLetter/devices-dlq  … Pending"), "{text}");
}

#[test]
fn a_subscription_to_an_azure_queue_goes_through_the_relay_hop() {
    let mut objects = orders("shop");
    let queue = objects
        .queues
        .iter_mut()
        .find(|q| q.metadata.name.as_deref() == Some("inventory"))
        .unwrap();
    queue.spec.provider = crate::api::common::Provider::Azure;
    let graph = build(&objects);
    assert_eq!(
        edge_labels(
            &graph,
            "Subscription/orders-to-inventory",
            "Relay/orders-to-inventory"
        ),
        [None]
    );
    assert_eq!(
        edge_labels(&graph, "Relay/orders-to-inventory", "Queue/inventory"),
        [Some("to azure".into())]
    );
    assert!(edge_labels(&graph, "Subscription/orders-to-inventory", "Queue/inventory").is_empty());
}

#[test]
fn throughput_and_relay_counts_show_when_status_has_them() {
    let mut objects = orders("shop");
    let counts = serde_json::json!({"processedPerMinute": 120, "failedPerMinute": 0, "deadLetteredPerMinute": 2,
        "processed": 5230, "failed": 4, "deadLettered": 17, "pods": 2, "observedTime": "2026-12-06T15:00:00Z"});
    let consumer = objects
        .consumers
        .iter_mut()
        .find(|c| c.metadata.name.as_deref() == Some("inventory"))
        .unwrap();
    consumer.status.as_mut().unwrap().throughput = Some(serde_json::from_value(counts).unwrap());
    let queue = objects
        .queues
        .iter_mut()
        .find(|q| q.metadata.name.as_deref() == Some("notifications"))
        .unwrap();
    queue.spec.provider = crate::api::common::Provider::Azure;
    let subscription = objects
        .subscriptions
        .iter_mut()
        .find(|s| s.metadata.name.as_deref() == Some("orders-to-notifications"))
        .unwrap();
    subscription.status.as_mut().unwrap().relay = Some(
        serde_json::from_value(
            serde_json::json!({"admitted": 40, "dropped": 3, "observedTime": "2026-12-06T15:00:00Z"}),
        )
        .unwrap(),
    );
    let text = render(&build(&objects), Format::Tree, false);
    assert!(
        text.contains("Consumer/inventory  ✓ Ready  processor inventory · replicas 2 · backlog 7 · processed/min 120 · failed/min 0 · dead-lettered/min 2 · processed 5230 · failed 4 · dead-lettered 17 · table orders"),
        "{text}"
    );
    assert!(
        text.contains("Relay/orders-to-notifications  admitted 40 · dropped 3"),
        "{text}"
    );
}

#[test]
fn a_reference_to_an_object_not_there_is_a_missing_node() {
    let mut objects = orders("shop");
    objects
        .queues
        .retain(|q| q.metadata.name.as_deref() != Some("shipments"));
    let graph = build(&objects);
    assert_eq!(
        node(&graph, NodeKind::Queue, "shipments").ready,
        Readiness::Missing
    );
    assert!(
        render(&graph, Format::Tree, false).contains("Queue/shipments  ✗ Missing (referenced, not found)")
    );
    let scope = Scope::Object {
        namespace: "shop".into(),
        kind: NodeKind::Queue,
        name: "shipments".into(),
    };
    assert!(matches!(select(&graph, &scope), Err(Error::NotFound { .. })));
}

#[test]
fn a_named_object_selects_its_pipeline_and_a_namespace_its_own_objects() {
    let mut objects = orders("shop");
    let other = devices("shop");
    objects.device_streams = other.device_streams;
    objects.consumers.extend(other.consumers);
    objects.dead_letters.extend(other.dead_letters);
    let graph = build(&objects);
    let scope = scope(Some("ds/telemetry"), "shop", false).unwrap();
    let pipeline = select(&graph, &scope).unwrap();
    let names: Vec<&str> = pipeline.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop/DeviceStream/telemetry",
            "shop/DeadLetter/devices-dlq",
            "shop/Consumer/device-processor",
            "shop/Cosmos/telemetry/readings"
        ]
    );
    let topic = select(&graph, &scope_of("Topic/orders")).unwrap();
    assert_eq!(
        topic.nodes.len(),
        13,
        "{:?}",
        topic.nodes.iter().map(|n| &n.id).collect::<Vec<_>>()
    );
    assert!(build(&orders("elsewhere")).in_namespace("shop").nodes.is_empty());
    assert!(matches!(scope_bad("topics"), Error::BadTarget(_)));
    assert!(matches!(scope_bad("pod/x"), Error::BadTarget(_)));
    assert!(matches!(scope_bad("topic/"), Error::BadTarget(_)));
}

fn scope_of(target: &str) -> Scope {
    scope(Some(target), "shop", false).unwrap()
}

fn scope_bad(target: &str) -> Error {
    scope(Some(target), "shop", false).unwrap_err()
}

#[test]
fn kinds_are_taken_as_kubectl_takes_them() {
    for (text, kind) in [
        ("topic", NodeKind::Topic),
        ("Topics", NodeKind::Topic),
        ("topics.tributary.dev", NodeKind::Topic),
        ("DeviceStream", NodeKind::DeviceStream),
        ("deadletters", NodeKind::DeadLetter),
        ("sub", NodeKind::Subscription),
    ] {
        assert_eq!(parse_kind(text), Some(kind), "{text}");
    }
    assert_eq!(parse_kind("service"), None);
}

#[test]
fn masking_zeroes_live_numbers_and_keeps_the_rest() {
    let mut graph = build(&orders("shop"));
    graph.mask_counts();
    let text = render(&graph, Format::Tree, false);
    assert!(
        text.contains("Queue/inventory  ✓ Ready  on aws · depth 0 · oldest 0s"),
        "{text}"
    );
    assert!(text.contains("port 8080"), "spec values stay: {text}");
}

#[test]
fn json_dot_and_mermaid_hold_every_node_and_edge() {
    let graph = build(&orders("shop"));
    let json: serde_json::Value = serde_json::from_str(&render(&graph, Format::Json, false)).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), graph.nodes.len());
    assert_eq!(json["edges"].as_array().unwrap().len(), graph.edges.len());
    let queue = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "shop/Queue/inventory")
        .unwrap();
    assert_eq!(queue["ready"]["status"], "ready");
    assert_eq!(
        queue["facts"][1],
        serde_json::json!({"label": "depth", "value": 7})
    );
    assert!(json["edges"].as_array().unwrap().contains(&serde_json::json!(
        {"from": "shop/Consumer/order-ack", "to": "shop/Topic/orders", "label": "publishes"})));

    let dot = render(&graph, Format::Dot, false);
    assert!(dot.starts_with("digraph tributary {"));
    assert!(
        dot.contains("\"shop/Consumer/order-ack\" -> \"shop/Topic/orders\" [label=\"publishes\"];"),
        "{dot}"
    );
    assert_eq!(dot.matches(" -> ").count(), graph.edges.len());

    let mermaid = render(&graph, Format::Mermaid, false);
    assert!(mermaid.starts_with("flowchart LR\n"));
    assert_eq!(mermaid.matches("-->").count(), graph.edges.len());
    assert!(
        mermaid.contains("Queue/inventory<br/>✓ Ready<br/>on aws · depth 7 · oldest 3m05s"),
        "{mermaid}"
    );
}

#[test]
fn readiness_comes_from_the_ready_condition() {
    let condition = |status: &str| Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: "QueueMissing".into(),
        message: "the queue is gone".into(),
        observed_generation: None,
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
    };
    assert_eq!(facts::readiness(&[condition("True")]), Readiness::Ready);
    assert_eq!(
        facts::readiness(&[condition("False")]),
        Readiness::NotReady {
            reason: "QueueMissing".into(),
            message: "the queue is gone".into()
        }
    );
    assert_eq!(facts::readiness(&[]), Readiness::Pending);
}

#[test]
fn durations_read_as_people_write_them() {
    let seconds = |s| render::value(&graph::Value::Seconds(s));
    assert_eq!(seconds(59), "59s");
    assert_eq!(seconds(185), "3m05s");
    assert_eq!(seconds(7800), "2h10m");
    assert_eq!(seconds(97200), "1d03h");
}

/// One OTLP JSON line: `service`'s spans (trace, id, parent, name, start ms, end ms, attributes).
fn otlp_line(service: &str, spans: &[(&str, &str, &str, &str, u64, u64, serde_json::Value)]) -> String {
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|(trace, id, parent, name, start, end, attributes)| {
            serde_json::json!({"traceId": trace, "spanId": id, "parentSpanId": parent, "name": name,
                "kind": 2, "startTimeUnixNano": (start * 1_000_000).to_string(),
                "endTimeUnixNano": end * 1_000_000, "attributes": attributes, "status": {}})
        })
        .collect();
    serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {}, "spans": spans}]}]})
    .to_string()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn order_spans() -> String {
    let order = serde_json::json!([{"key": "order.id", "value": {"stringValue": "o-abc"}},
        {"key": "http.response.status_code", "value": {"intValue": "202"}}]);
    let none = serde_json::json!([]);
    [
        otlp_line(
            "order-ack",
            &[(TRACE, "00000000000000a1", "", "POST /orders", 1000, 1012, order)],
        ),
        otlp_line(
            "inventory",
            &[(
                TRACE,
                "00000000000000b2",
                "00000000000000a1",
                "process",
                1040,
                1060,
                none.clone(),
            )],
        ),
        otlp_line(
            "notification",
            &[(
                TRACE,
                "00000000000000c3",
                "00000000000000a1",
                "process",
                1030,
                1035,
                none.clone(),
            )],
        ),
        otlp_line(
            "shipment",
            &[(
                TRACE,
                "00000000000000d4",
                "00000000000000b2",
                "process",
                1090,
                1100,
                none.clone(),
            )],
        ),
        // Another order's trace, and the same span exported twice.
        otlp_line(
            "inventory",
            &[(
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "00000000000000e5",
                "",
                "process",
                1,
                2,
                none.clone(),
            )],
        ),
        otlp_line(
            "shipment",
            &[(
                TRACE,
                "00000000000000d4",
                "00000000000000b2",
                "process",
                1090,
                1100,
                none,
            )],
        ),
    ]
    .join("\n")
}

#[test]
fn an_order_is_found_by_its_id_and_its_hops_follow_parent_then_start_time() {
    let spans = trace::spans::parse(&order_spans()).unwrap();
    assert_eq!(spans.len(), 6);
    assert_eq!(spans[0].attributes["http.response.status_code"], "202");
    let journeys = trace::journey::find(&spans, "o-abc");
    assert_eq!(journeys.len(), 1);
    let hops: Vec<(usize, &str, f64, f64)> = journeys[0]
        .hops
        .iter()
        .map(|h| (h.depth, h.service.as_str(), h.offset_ms, h.duration_ms))
        .collect();
    assert_eq!(
        hops,
        [
            (0, "order-ack", 0.0, 12.0),
            (1, "notification", 30.0, 5.0),
            (1, "inventory", 40.0, 20.0),
            (2, "shipment", 90.0, 10.0)
        ]
    );
    assert_eq!(
        trace::journey::find(&spans, TRACE),
        journeys,
        "a trace id names the same journey"
    );
    assert!(trace::journey::find(&spans, "o-unknown").is_empty());
    let text = trace::journey::render("o-abc", &journeys);
    assert!(
        text.starts_with(&format!("o-abc  trace {TRACE}  4 spans over 100.0 ms\n")),
        "{text}"
    );
    assert!(
        text.contains("    +90.0 ms    10.0 ms      shipment: process\n"),
        "{text}"
    );
}

#[test]
fn a_failed_hop_shows_its_error_and_a_tempo_document_reads_the_same() {
    let failed = serde_json::json!({"batches": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "inventory"}}]},
        "scopeSpans": [{"spans": [{"traceId": TRACE, "spanId": "00000000000000b2", "name": "process",
            "startTimeUnixNano": "5", "endTimeUnixNano": "7",
            "status": {"code": 2, "message": "unknown product"}}]}]}]});
    let spans = trace::spans::parse(&serde_json::to_string_pretty(&failed).unwrap()).unwrap();
    assert_eq!(spans[0].error.as_deref(), Some("unknown product"));
    let text = trace::journey::render(TRACE, &trace::journey::find(&spans, TRACE));
    assert!(text.contains("inventory: process  ✗ unknown product"), "{text}");
    let error = trace::spans::parse("{\"resourceSpans\": []}\nnot json\n").unwrap_err();
    assert_eq!(error.line, 2);
}
