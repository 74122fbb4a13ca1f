//! The order pipeline end to end on the test bed: the controller (in this process) provisions the order
//! example against moto and renders each Consumer's worker configuration; the four workers run as real
//! `tributary worker` processes fed by exactly those files. Orders are POSTed to the order endpoint; each
//! must end in the state its attributes and stock decide (shipped, reserved for pickup, out of stock),
//! with every effect exactly once although the shipment worker is SIGKILLed mid-run. Orders for a
//! product missing from the catalogue end in the dead letter with the reason; once the product exists, a
//! DeadLetter redrive sends them back to the queue they came from and they ship. The workers export
//! their spans to a collector: each order is one trace from `POST /orders` through every processor. The
//! shipment backlog the kill leaves scales its Deployment up, and the drained queue back to the minimum
//! (the Deployment's pods are kwok's; the local processes do the work).
//!
//! `E2E_ORDERS` sets the number of orders (default 300); the figures are printed (`--nocapture`).
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicI32, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tributary::worker::{
    config::WorkerConfig,
    orders::{store::OrderStore, table::OrderTable},
};

const CONVERGE: Duration = Duration::from_secs(60);
const REGIONS: [&str; 3] = ["eu-west", "us-east", "ap-south"];

/// A `tributary worker` process.
struct Worker {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    metrics_port: u16,
    otlp: String,
}

impl Worker {
    fn start(config: PathBuf, log: PathBuf, metrics_port: u16, otlp: String) -> Self {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(common::tributary_bin())
            .args(["worker", "--config"])
            .arg(&config)
            .env("AWS_ENDPOINT_URL", common::var("AWS_ENDPOINT_URL"))
            .env("AWS_REGION", common::var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
            .env("RUST_LOG", "warn")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .unwrap();
        Self {
            child,
            config,
            log,
            metrics_port,
            otlp,
        }
    }

    fn restart(mut self) -> Self {
        let _ = self.child.wait();
        Self::start(
            self.config.clone(),
            self.log.clone(),
            self.metrics_port,
            self.otlp.clone(),
        )
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
    }

    fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<u64> {
        let text = http
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }
}

/// A failing test must not leave workers behind: they would keep draining the test bed's queues.
impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What an order is expected to become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Shipped,
    Reserved,
    OutOfStock,
    /// A product missing from the catalogue: dead-lettered until fixed, then shipped.
    DeadLettered,
}

#[tokio::test]
async fn orders_flow_through_the_pipeline_and_nothing_is_lost() {
    // Alone: hundreds of orders keep moto (one request at a time) busy for a minute or more, which would
    // hold up every other test's moto calls past its deadlines; and the figures printed are those of a
    // quiet test bed.
    let _bed = common::exclusive().await;
    let count: usize = std::env::var("E2E_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-orders").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    for file in common::example_files("orders") {
        common::create_yaml(&client, &ns, &std::fs::read_to_string(&file).unwrap()).await;
    }
    // Short retries, so the catalogue problem reaches the dead letter in seconds.
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    // A shipment waits for its reservation longer than inventory takes to give up.
    for (name, attempts, longest) in [("inventory", 3, 2), ("shipment", 5, 4)] {
        let retry = json!({"spec": {"retry": {
            "maxAttempts": attempts, "initialBackoffSeconds": 1, "maxBackoffSeconds": longest
        }}});
        consumers
            .patch(name, &PatchParams::default(), &Patch::Merge(&retry))
            .await
            .unwrap();
    }
    // Shipment scales by 20 messages a replica, up to 3, and back down 5 s after the last change.
    let scaling = json!({"spec": {"scaling": {
        "minReplicas": 1, "maxReplicas": 3, "targetBacklogPerReplica": 20, "scaleDownStabilizationSeconds": 5
    }}});
    consumers
        .patch("shipment", &PatchParams::default(), &Patch::Merge(&scaling))
        .await
        .unwrap();
    // An Order table of this run's own: moto copies a whole table for every transaction.
    let table_name = format!("{ns}-orders");
    for name in ["order-ack", "notification", "inventory", "shipment"] {
        let sink = json!({"spec": {"sink": {"table": table_name}}});
        consumers
            .patch(name, &PatchParams::default(), &Patch::Merge(&sink))
            .await
            .unwrap();
    }
    for name in ["order-ack", "notification", "inventory", "shipment"] {
        common::wait_reason(&client, &ns, "Consumer", name, "Available", CONVERGE).await;
    }

    // The order endpoint's client key; the Secret holds its hash.
    let api_key = tributary::worker::orders::security::api_keys::new_key(Some("e2e")).unwrap();

    // The workers, as local processes, from the configuration the controller rendered.
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/e2e")
        .join(&ns);
    std::fs::create_dir_all(&work).unwrap();
    let collector = common::collector::Collector::start(&work).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut workers = BTreeMap::new();
    let mut ingress_port = 0;
    for name in ["order-ack", "notification", "inventory", "shipment"] {
        let expected_retry = if name == "inventory" { 3 } else { 5 };
        let map = common::eventually("the rendered configuration", CONVERGE, || {
            let (config_maps, table_name) = (config_maps.clone(), table_name.clone());
            async move {
                let map = config_maps.get(&format!("{name}-worker")).await.ok()?;
                let config: WorkerConfig = serde_yaml_ng::from_str(&map.data?["worker.yaml"]).ok()?;
                let table = config.sink.table.as_deref() == Some(table_name.as_str());
                (config.retry.max_attempts == expected_retry && table).then_some(config)
            }
        })
        .await;
        let mut config = map;
        let metrics_port = common::free_port();
        config.metrics_listen = ([127, 0, 0, 1], metrics_port).into();
        if let Some(http) = config.source.http.as_mut() {
            ingress_port = common::free_port();
            http.listen = ([127, 0, 0, 1], ingress_port).into();
            // The API key Secret as a pod would have it mounted: a folder with one entry per key.
            let keys = http
                .auth
                .api_keys
                .as_mut()
                .expect("the example authenticates with API keys");
            keys.dir = work.join("api-keys");
            std::fs::create_dir_all(&keys.dir).unwrap();
            std::fs::write(keys.dir.join("e2e"), &api_key.entry).unwrap();
        }
        if let Some(sqs) = config.source.sqs.as_mut() {
            sqs.wait_time_seconds = 2;
        }
        let path = work.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        workers.insert(
            name,
            Worker::start(
                path,
                work.join(format!("{name}.log")),
                metrics_port,
                collector.endpoint.clone(),
            ),
        );
    }

    // The catalogue: plenty of five products, none of `rare`, and `new` not in it at all.
    let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name.clone());
    let sku = |name: &str| format!("{ns}-{name}");
    let initial = 100_000i64;
    for name in ["a", "b", "c", "d", "e"] {
        table.set_stock(&sku(name), initial).await.unwrap();
    }
    table.set_stock(&sku("rare"), 0).await.unwrap();

    let http = common::orders_bed::bearer(&api_key.key).build().unwrap();
    let base = format!("http://127.0.0.1:{ingress_port}");
    common::orders_bed::wait_for_order_endpoint(&http, &base).await;

    // The orders: every 10th collected in store, every 10th (shifted) with an out-of-stock item, every
    // 50th (shifted) with the product the catalogue lacks.
    let products = ["a", "b", "c", "d", "e"];
    let orders: Vec<(serde_json::Value, Expect)> = (0..count)
        .map(|i| {
            let mut items =
                vec![json!({"sku": sku(products[i % 5]), "quantity": 1 + i % 3, "unitPriceCents": 1999})];
            let expect = match i % 50 {
                7 => {
                    items.push(json!({"sku": sku("new"), "quantity": 1, "unitPriceCents": 500}));
                    Expect::DeadLettered
                }
                _ if i % 10 == 1 => {
                    items.push(json!({"sku": sku("rare"), "quantity": 1, "unitPriceCents": 500}));
                    Expect::OutOfStock
                }
                _ if i % 10 == 0 => Expect::Reserved,
                _ => Expect::Shipped,
            };
            let delivery = match (expect, i % 3) {
                (Expect::Reserved, _) => "pickup",
                (_, 0) => "express",
                _ => "standard",
            };
            let order = json!({
                "customerId": format!("c-{}", i % 97),
                "items": items,
                "region": REGIONS[i % 3],
                "delivery": delivery,
                "idempotencyKey": format!("{ns}-{i}"),
            });
            (order, expect)
        })
        .collect();

    // The shipment Deployment's replica count, sampled throughout.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let most_replicas = Arc::new(AtomicI32::new(0));
    let sampler = tokio::spawn({
        let (deployments, most) = (deployments.clone(), most_replicas.clone());
        async move {
            loop {
                if let Ok(deployment) = deployments.get("shipment-worker").await {
                    let replicas = deployment.spec.and_then(|s| s.replicas).unwrap_or(0);
                    most.fetch_max(replicas, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });

    let started = Instant::now();
    let mut placed: Vec<(String, Expect, serde_json::Value)> = Vec::new();
    // Order id → (trace id the endpoint answered, POST retries).
    let mut traces: HashMap<String, (String, u32)> = HashMap::new();
    let mut killed = false;
    let mut posts = futures::stream::iter(orders.iter().cloned().map(|(order, expect)| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            // A 503 says "recorded or not, retry with the same idempotencyKey", as a client would.
            let mut retries = 0;
            loop {
                let response = http
                    .post(format!("{base}/orders"))
                    .json(&order)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap();
                // 503 (recorded or not) and 429 (over the rate) both mean: retry the same request.
                if (status == 503 || status == 429) && retries < 10 {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                assert_eq!(status, 202, "{order}: {body}");
                return (
                    body["orderId"].as_str().unwrap().to_owned(),
                    expect,
                    order,
                    retries,
                    body["traceId"].as_str().unwrap().to_owned(),
                );
            }
        }
    }))
    .buffer_unordered(8);
    let mut retried = 0;
    while let Some((id, expect, order, retries, trace)) = posts.next().await {
        retried += retries;
        traces.insert(id.clone(), (trace, retries));
        placed.push((id, expect, order));
        if !killed && placed.len() == count / 3 {
            // SIGKILL the shipment worker mid-run: whatever it held comes back after the visibility
            // timeout, and its conditional writes make the second delivery harmless.
            workers.get_mut("shipment").unwrap().kill();
            killed = true;
        }
    }
    let posted = started.elapsed();
    let shipment = workers.remove("shipment").unwrap().restart();
    workers.insert("shipment", shipment);

    let expected_state = |expect: Expect| match expect {
        Expect::Shipped => "SHIPPED",
        Expect::Reserved => "RESERVED",
        Expect::OutOfStock => "OUT_OF_STOCK",
        Expect::DeadLettered => "PLACED",
    };
    let final_states = |placed: Vec<(String, Expect, serde_json::Value)>, what: &'static str| {
        let table = table.clone();
        async move {
            // Only the orders not final yet are read again, and not too often: moto serves the
            // pipeline and this check alike.
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut pending = placed;
            loop {
                let mut wrong = Vec::new();
                let mut still = Vec::new();
                for (id, expect, order) in pending {
                    let record = table.order(&id).await.unwrap();
                    let state = record.as_ref().map(|o| o.state.clone()).unwrap_or_default();
                    if state != expected_state(expect) {
                        wrong.push(format!("{id}: {state:?}, expected {expect:?}: {record:?}"));
                        still.push((id, expect, order));
                    }
                }
                if still.is_empty() {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} orders are not: {:#?}",
                    wrong.len(),
                    &wrong[..wrong.len().min(3)]
                );
                pending = still;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        }
    };
    final_states(placed.clone(), "every order in its final state").await;
    let elapsed = started.elapsed();

    // Every effect once: the stock moved by exactly the reserved quantities.
    let mut reserved: HashMap<String, i64> = HashMap::new();
    for (id, expect, order) in &placed {
        let record = table.order(id).await.unwrap().unwrap();
        let mut notified = vec!["OrderPlaced"];
        if *expect == Expect::Shipped {
            notified.push("OrderShipped");
            assert!(record.tracking_id.is_some(), "{id}");
        } else {
            assert!(record.tracking_id.is_none(), "{id} must not ship");
        }
        if matches!(expect, Expect::Shipped | Expect::Reserved) {
            for item in order["items"].as_array().unwrap() {
                *reserved
                    .entry(item["sku"].as_str().unwrap().to_owned())
                    .or_default() += item["quantity"].as_i64().unwrap();
            }
        }
        if *expect != Expect::DeadLettered {
            let history: Vec<&str> = record.history.iter().map(|t| t.state.as_str()).collect();
            let mut unique = history.clone();
            unique.dedup();
            assert_eq!(history, unique, "{id}: each state once");
        }
        // Notifications are recorded by another worker; wait for them where the state is already final.
        let _ = notified;
    }
    for name in products {
        let left = table.stock(&sku(name)).await.unwrap().unwrap();
        assert_eq!(
            left,
            initial - reserved.get(&sku(name)).copied().unwrap_or(0),
            "{name}"
        );
    }
    assert_eq!(table.stock(&sku("rare")).await.unwrap(), Some(0));

    // The catalogue problem: inventory dead-letters each such order, with the reason.
    let dead: Vec<_> = placed
        .iter()
        .filter(|(_, e, _)| *e == Expect::DeadLettered)
        .cloned()
        .collect();
    let dlq = common::wait_reason(&client, &ns, "DeadLetter", "orders-dlq", "Available", CONVERGE).await;
    let dlq_url = dlq.data["status"]["url"].as_str().unwrap().to_owned();
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let depth = |sqs: aws_sdk_sqs::Client, url: String| async move {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?
            .attributes?;
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)?
            .parse::<usize>()
            .ok()
    };
    common::eventually("one dead letter per catalogue problem", CONVERGE, || {
        let (sqs, url) = (sqs.clone(), dlq_url.clone());
        let want = dead.len();
        async move { (depth(sqs, url).await? == want).then_some(()) }
    })
    .await;
    let peek = sqs
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .visibility_timeout(0)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let reason = peek[0].message_attributes.as_ref().unwrap()["tributary-dead-letter-reason"]
        .string_value
        .clone()
        .unwrap();
    let reason: serde_json::Value = serde_json::from_str(&reason).unwrap();
    assert!(
        reason["reason"].as_str().unwrap().contains("has no stock record"),
        "{reason}"
    );
    assert_eq!(reason["consumer"], format!("{ns}/inventory"));

    // Fixed: the product exists. A redrive sends each copy back to the queue it came from.
    table.set_stock(&sku("new"), initial).await.unwrap();
    let dead_letters = common::tributary_api(&client, &ns, "DeadLetter");
    let redrive = json!({"spec": {"redrive": {"id": "catalogue-fix", "maxMessagesPerSecond": 100}}});
    dead_letters
        .patch("orders-dlq", &PatchParams::default(), &Patch::Merge(&redrive))
        .await
        .unwrap();
    let done = common::eventually("the redrive to complete", CONVERGE, || {
        let dead_letters = dead_letters.clone();
        async move {
            let dlq = dead_letters.get("orders-dlq").await.ok()?;
            let last = dlq.data["status"]["lastRedrive"].clone();
            (last["id"] == "catalogue-fix" && last["state"] != "Running").then_some(last)
        }
    })
    .await;
    assert_eq!(done["state"], "Completed", "{done}");
    assert_eq!(done["moved"], dead.len(), "{done}");
    let fixed: Vec<_> = dead
        .iter()
        .map(|(id, _, o)| (id.clone(), Expect::Shipped, o.clone()))
        .collect();
    final_states(fixed, "the redriven orders shipped").await;

    // Notifications: each order placed once, each shipped order once more.
    let notification_worker = &workers["notification"];
    let shipped = placed
        .iter()
        .filter(|(_, e, _)| matches!(e, Expect::Shipped | Expect::DeadLettered))
        .count();
    common::eventually("every notification recorded", CONVERGE, || {
        let (table, placed) = (table.clone(), placed.clone());
        async move {
            for (id, expect, _) in &placed {
                let record = table.order(id).await.ok()??;
                let want: &[&str] = match expect {
                    Expect::Shipped | Expect::DeadLettered => &["OrderPlaced", "OrderShipped"],
                    Expect::OutOfStock => &["OrderCancelled", "OrderPlaced"],
                    Expect::Reserved => &["OrderPlaced"],
                };
                if record.notifications != want {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    let processed = notification_worker
        .metric(&http, "tributary_worker_messages_processed_total")
        .await
        .unwrap();
    assert!(processed as usize >= count + shipped, "{processed}");

    // Scaling: the backlog the kill left raised the shipment Deployment above its minimum; drained, the
    // queue brings it back.
    let most = most_replicas.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "the shipment Deployment never scaled up (at most {most} replicas)"
    );
    common::eventually("shipment back to one replica", CONVERGE, || {
        let consumers = consumers.clone();
        async move {
            let shipment = consumers.get("shipment").await.ok()?;
            let status = &shipment.data["status"];
            (status["lastScale"]["to"] == 1 && status["backlog"] == 0).then_some(())
        }
    })
    .await;
    let shipment_replicas = deployments
        .get("shipment-worker")
        .await
        .unwrap()
        .spec
        .unwrap()
        .replicas;
    assert_eq!(shipment_replicas, Some(1));
    sampler.abort();

    eprintln!(
        "e2e: {count} orders posted in {:.1}s ({:.0}/s, {retried} POSTs retried after a 503); all in their final state after {:.1}s: {:.1} orders/s end to end; shipment scaled to {most} replicas",
        posted.as_secs_f64(),
        count as f64 / posted.as_secs_f64(),
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    for (_, worker) in workers {
        worker.terminate();
    }

    // Tracing: stopped workers have flushed their spans. Every order's trace starts with its POST...
    let spans = collector.spans();
    let post_spans: HashMap<&str, &common::collector::Span> = spans
        .iter()
        .filter(|s| s.service == "order-ack" && s.name == "POST /orders")
        .map(|s| (s.trace_id.as_str(), s))
        .collect();
    for (id, (trace, _)) in &traces {
        assert!(
            post_spans.contains_key(trace.as_str()),
            "order {id}: no POST /orders span in trace {trace}"
        );
    }
    // ...and a shipped order placed after the restart (the killed worker's unsent spans are lost) is one
    // tree: POST → inventory → shipment → notification of OrderShipped, and POST → notification.
    let (id, _, _) = placed
        .iter()
        .rev()
        .find(|(id, e, _)| *e == Expect::Shipped && traces[id].1 == 0)
        .unwrap();
    let trace = &traces[id].0;
    let in_trace: Vec<_> = spans.iter().filter(|s| &s.trace_id == trace).collect();
    let children = |parent: &str, service: &str| -> Vec<String> {
        in_trace
            .iter()
            .filter(|s| s.parent_id == parent && s.service == service && s.name == "process")
            .map(|s| s.span_id.clone())
            .collect()
    };
    let post = &post_spans[trace.as_str()].span_id;
    let inventory = children(post, "inventory");
    let shipment: Vec<_> = inventory.iter().flat_map(|s| children(s, "shipment")).collect();
    let shipped_notice: Vec<_> = shipment
        .iter()
        .flat_map(|s| children(s, "notification"))
        .collect();
    assert!(
        !inventory.is_empty() && !shipment.is_empty() && !shipped_notice.is_empty(),
        "order {id}: trace {trace} is not POST → inventory → shipment → notification: {in_trace:#?}"
    );
    assert!(
        !children(post, "notification").is_empty(),
        "order {id}: {in_trace:#?}"
    );
    drop(collector);
    controller.stop().await;
}
