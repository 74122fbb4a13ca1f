//! `tributary tree` and `tributary trace` on a running order pipeline (the order example provisioned by
//! an in-process controller against moto, its four workers as `tributary worker` processes, as
//! support/orders_bed.rs runs it).
//!
//! - The tree of the namespace, numbers masked, is the golden output `inspect_tree/orders.golden`, and the
//!   `tributary tree` command (through the test bed's kubeconfig) shows the same graph.
//! - The numbers follow a known flow: with the inventory worker stopped, N orders (P of them for a
//!   product missing from the catalogue) make the inventory Queue's depth N; with it back, the depth
//!   goes to 0 and the DeadLetter's depth counts the P poisoned ones.
//! - `tributary trace <order-id>` over the collector's file export shows the order's hops:
//!   order-ack → inventory → shipment, and notification.
#![allow(clippy::unwrap_used)]

use crate::support::{self as common, collector::Collector, orders_bed::OrderBed};

use std::{
    process::Command,
    time::{Duration, Instant},
};

use tributary::inspect::{
    self, Scope,
    graph::{Graph, NodeKind, Value},
    render::{Format, render},
};

const CONVERGE: Duration = Duration::from_secs(60);

/// Short retries: a poisoned order reaches the dead letter in about a second. A 6 s visibility timeout:
/// a message the stopped worker's last long poll still took (server side) is back in seconds.
fn quick_retries(text: &str) -> String {
    text.replace(
        "retry: {maxAttempts: 5, initialBackoffSeconds: 2, maxBackoffSeconds: 120}",
        "retry: {maxAttempts: 2, initialBackoffSeconds: 1, maxBackoffSeconds: 1}",
    )
    .replace("visibilityTimeoutSeconds: 60", "visibilityTimeoutSeconds: 6")
}

async fn graph(bed: &OrderBed) -> Graph {
    let scope = Scope::Namespace(bed.ns.clone());
    let objects = inspect::fetch::objects(&bed.client, &scope).await.unwrap();
    inspect::select(&inspect::build::build(&objects), &scope).unwrap()
}

/// The tree with every live number zeroed and the namespace named `NS`.
async fn masked_tree(bed: &OrderBed) -> String {
    let mut graph = graph(bed).await;
    graph.mask_counts();
    render(&graph, Format::Tree, false).replace(&bed.ns, "NS")
}

/// The `depth` a node shows.
fn depth(graph: &Graph, kind: NodeKind, name: &str) -> Option<i64> {
    let node = graph.nodes.iter().find(|n| n.kind == kind && n.name == name)?;
    node.facts
        .iter()
        .find(|f| f.label == "depth")
        .and_then(|f| match f.value {
            Value::Count(count) => Some(count),
            _ => None,
        })
}

/// Waits until the inventory Queue and the DeadLetter show these depths.
async fn wait_depths(bed: &OrderBed, queue: i64, dead_letter: i64) {
    common::eventually(
        &format!("inventory depth {queue}, dead letter depth {dead_letter}"),
        CONVERGE,
        || async {
            let graph = graph(bed).await;
            let seen = (
                depth(&graph, NodeKind::Queue, "inventory"),
                depth(&graph, NodeKind::DeadLetter, "orders-dlq"),
            );
            (seen == (Some(queue), Some(dead_letter))).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn tree_of_the_order_pipeline_matches_its_golden_output_and_its_depths_follow_a_known_flow() {
    let _shared = common::shared().await;
    let started = Instant::now();
    let mut bed = OrderBed::start("tree", quick_retries).await;
    let golden = include_str!("inspect_tree/orders.golden");
    let deadline = Instant::now() + CONVERGE;
    let mut tree = masked_tree(&bed).await;
    // Until every object is Ready and every queue observed.
    while tree != golden && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tree = masked_tree(&bed).await;
    }
    assert_eq!(tree, golden, "the masked tree:\n{tree}");

    // The command, as a user runs it with the kubeconfig: the same nodes.
    let output = Command::new(common::tributary_bin())
        .args(["tree", "-n", &bed.ns, "-o", "json"])
        .env("KUBECONFIG", common::var("KUBECONFIG"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let expected = graph(&bed).await;
    assert_eq!(
        ids,
        expected.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>()
    );

    // The flow: inventory stopped, 6 good orders and 2 for a product the catalogue lacks.
    bed.workers.remove("inventory");
    let mut ids = Vec::new();
    for i in 0..8 {
        let product = if i < 6 { "a" } else { "missing" };
        let order = bed.order(&format!("flow-{i}"), product, 1);
        ids.push(
            bed.poster
                .post(&order, Duration::from_millis(200), CONVERGE)
                .await,
        );
    }
    wait_depths(&bed, 8, 0).await;
    bed.start_worker("inventory", &common::var("AWS_ENDPOINT_URL"));
    wait_depths(&bed, 0, 2).await;
    bed.wait_shipped(&ids[..6], CONVERGE).await;
    bed.stop().await;
    println!("tree golden + flow: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test]
async fn trace_of_one_order_shows_its_hops_across_the_processors() {
    let _shared = common::shared().await;
    let started = Instant::now();
    let otel = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/faults/trace-otel-{}", std::process::id()));
    let collector = Collector::start_exporting(&otel, true).await;
    let bed =
        OrderBed::start_exporting("trace", |text| text.to_owned(), Some(collector.endpoint.clone())).await;
    let order = bed.order("traced", "a", 1);
    let id = bed
        .poster
        .post(&order, Duration::from_millis(200), CONVERGE)
        .await;
    bed.wait_shipped(std::slice::from_ref(&id), CONVERGE).await;

    let spans = otel.join("spans.jsonl");
    // The hops recorded once the batch exporters flushed (each worker's every 5 s at most).
    let journey = common::eventually("the order's five hops in the file export", CONVERGE, || async {
        let output = Command::new(common::tributary_bin())
            .args(["trace", &id, "-o", "json", "--spans"])
            .arg(&spans)
            .output()
            .unwrap();
        let journeys: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let hops = journeys.get(0)?["hops"].as_array()?.clone();
        let processed = hops.iter().filter(|h| h["name"] == "process").count();
        (processed >= 4).then_some(hops)
    })
    .await;
    let services: Vec<(u64, &str, &str)> = journey
        .iter()
        .map(|h| {
            (
                h["depth"].as_u64().unwrap(),
                h["service"].as_str().unwrap(),
                h["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(services[0], (0, "order-ack", "POST /orders"), "{services:?}");
    let depths = |service: &str| -> Vec<u64> {
        services
            .iter()
            .filter(|(_, s, _)| *s == service)
            .map(|(d, _, _)| *d)
            .collect()
    };
    assert_eq!(depths("inventory"), [1], "{services:?}");
    assert_eq!(depths("shipment"), [2], "{services:?}");
    let mut notifications = depths("notification");
    notifications.sort_unstable();
    assert_eq!(
        notifications,
        [1, 3],
        "OrderPlaced's and OrderShipped's: {services:?}"
    );

    let text = Command::new(common::tributary_bin())
        .args(["trace", &id, "--spans"])
        .arg(&spans)
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with(&format!("{id}  trace ")), "{text}");
    println!("{text}");
    bed.stop().await;
    println!("trace: {:.1} s", started.elapsed().as_secs_f64());
}
