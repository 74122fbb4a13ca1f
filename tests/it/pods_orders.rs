//! The order pipeline with every worker in a pod on the test bed's real node (issue 22): the chart is
//! installed by Helm into a namespace whose pods all run on the node (the controller's, the webhook's and
//! the workers' the controller makes), with the test bed's values (testbed/node-values.sh: every endpoint
//! at the node address). Nothing of Tributary runs in this process; the test only plays the client and
//! reads the emulators.
//!
//! - Orders are POSTed to the order endpoint through its Service (the ClusterIP, which a host process
//!   reaches through kube-proxy's rules as a pod does); each ends in the state its items and delivery
//!   decide, every effect once, although the shipment pod is force-deleted (`kubectl delete pod --force
//!   --grace-period=0`) and later has its worker container killed (`ctr task kill -s KILL` on the node's
//!   containerd) while orders flow.
//! - Scaling from backlog: a shipment Consumer with `minReplicas: 0` has no pod until orders wait in its
//!   queue; the controller then adds pods, which consume (each reports processed messages on its own
//!   `/metrics`), and removes them once the queue is drained.
//!
//! The pods' start times (created → Ready, from their status) are printed (`--nocapture`).
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Pod, Secret, Service},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use tributary::worker::orders::{
    store::{OrderRecord, OrderStore},
    table::OrderTable,
};

/// How long provisioning, pods and the pipeline get at most.
const CONVERGE: Duration = Duration::from_secs(90);
/// Between tries of an order the endpoint did not take yet (503, 429, no answer), and for how long.
const PAUSE: Duration = Duration::from_millis(200);
const POST_WITHIN: Duration = Duration::from_secs(60);
/// The workers of the example, by Consumer name.
const WORKERS: [&str; 4] = ["order-ack", "notification", "inventory", "shipment"];
/// The stock each product starts with.
const INITIAL_STOCK: i64 = 100_000;
/// The worker pods' requests and limits: small, as every test's pods share the node's two cores.
const WORKER_RESOURCES: &str =
    r#"{"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}"#;

/// What an order is expected to become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Shipped,
    Reserved,
    OutOfStock,
}

impl Expect {
    fn state(self) -> &'static str {
        match self {
            Self::Shipped => "SHIPPED",
            Self::Reserved => "RESERVED",
            Self::OutOfStock => "OUT_OF_STOCK",
        }
    }

    fn notifications(self) -> &'static [&'static str] {
        match self {
            Self::Shipped => &["OrderPlaced", "OrderShipped"],
            Self::OutOfStock => &["OrderCancelled", "OrderPlaced"],
            Self::Reserved => &["OrderPlaced"],
        }
    }
}

/// The order example installed and running in pods.
struct OrdersInPods {
    client: kube::Client,
    /// Dropped before the namespace (fields drop in order): Helm keeps the release in a Secret there, and
    /// a release uninstalled after its namespace went would leave its cluster-wide objects behind.
    _release: common::helm::Release,
    ns: common::node::NodeNamespace,
    table: OrderTable,
    http: reqwest::Client,
    /// The order endpoint through its Service: `http://<cluster IP>:<port>`.
    base: String,
}

impl OrdersInPods {
    /// A namespace on the real node with the chart installed, the order example in it (`edit` changes
    /// each file's text first; `shipment` is the shipment Consumer's `spec.scaling`), every Consumer
    /// Available and the order endpoint answering through its Service.
    async fn start(prefix: &str, edit: impl Fn(&str) -> String, shipment: serde_json::Value) -> Self {
        let client = common::kube_client().await;
        common::install_crds(&client).await;
        let ns = common::node::real_node_namespace(&client, prefix).await;
        let api_key = tributary::worker::orders::security::api_keys::new_key(Some("pods")).unwrap();
        secret(&client, &ns, "order-ack-api-keys", json!({"pods": api_key.entry})).await;
        let release = common::helm::install(&ns, &[]).await;
        // The webhook's pods are Ready before kube-proxy routes its Service: until then every create fails.
        release.wait_webhook_serving().await;
        for file in common::example_files("orders") {
            let text = edit(&std::fs::read_to_string(&file).unwrap());
            common::create_yaml(&client, &ns, &text).await;
        }
        let consumers = common::tributary_api(&client, &ns, "Consumer");
        let table_name = format!("{ns}-orders");
        let resources: serde_json::Value = serde_json::from_str(WORKER_RESOURCES).unwrap();
        for name in WORKERS {
            let mut spec = json!({"sink": {"table": table_name}, "resources": resources});
            // A shipment waits for its reservation longer than inventory takes to give up.
            match name {
                "inventory" => {
                    spec["retry"] =
                        json!({"maxAttempts": 3, "initialBackoffSeconds": 1, "maxBackoffSeconds": 2});
                }
                "shipment" => {
                    spec["retry"] =
                        json!({"maxAttempts": 5, "initialBackoffSeconds": 1, "maxBackoffSeconds": 4});
                    spec["scaling"] = shipment.clone();
                }
                // One order endpoint pod is enough here; the Service spreads over however many run.
                "order-ack" => spec["scaling"] = json!({"minReplicas": 1, "maxReplicas": 1}),
                _ => {}
            }
            consumers
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": spec})),
                )
                .await
                .unwrap();
        }
        for name in WORKERS {
            common::wait_reason(&client, &ns, "Consumer", name, "Available", CONVERGE).await;
        }
        let aws = common::aws_config().await;
        let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
        for name in ["a", "b", "c", "d", "e"] {
            table
                .set_stock(&format!("{ns}-{name}"), INITIAL_STOCK)
                .await
                .unwrap();
        }
        table.set_stock(&format!("{ns}-rare"), 0).await.unwrap();
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let service = services.get("order-ack-worker").await.unwrap();
        let spec = service.spec.unwrap();
        let (cluster_ip, port) = (spec.cluster_ip.unwrap(), spec.ports.unwrap()[0].port);
        wait_service_rule(&cluster_ip, port).await;
        let base = format!("http://{cluster_ip}:{port}");
        let http = common::orders_bed::bearer(&api_key.key)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        common::orders_bed::wait_for_order_endpoint(&http, &base).await;
        Self {
            client,
            ns,
            table,
            http,
            base,
            _release: release,
        }
    }

    /// The `i`th order: every 10th collected in store, every 10th (shifted) with an out-of-stock item.
    fn order(&self, i: usize) -> (serde_json::Value, Expect) {
        let sku = |name: &str| format!("{}-{name}", self.ns);
        let products = ["a", "b", "c", "d", "e"];
        let mut items =
            vec![json!({"sku": sku(products[i % 5]), "quantity": 1 + i % 3, "unitPriceCents": 1999})];
        let expect = match i % 10 {
            0 => Expect::Reserved,
            1 => {
                items.push(json!({"sku": sku("rare"), "quantity": 1, "unitPriceCents": 500}));
                Expect::OutOfStock
            }
            _ => Expect::Shipped,
        };
        let delivery = match (expect, i % 3) {
            (Expect::Reserved, _) => "pickup",
            (_, 0) => "express",
            _ => "standard",
        };
        let order = json!({
            "customerId": format!("c-{}", i % 17),
            "items": items,
            "region": "eu-west",
            "delivery": delivery,
            "idempotencyKey": format!("{}-{i}", self.ns),
        });
        (order, expect)
    }

    /// Waits until every order is in its expected state with its notifications, for at most `within`.
    async fn wait_final(&self, orders: &[(String, Expect)], within: Duration) {
        let deadline = Instant::now() + within;
        let mut pending = orders.to_vec();
        loop {
            let mut still = Vec::new();
            for (id, expect) in pending {
                let record = self.table.order(&id).await.ok().flatten();
                let done = record
                    .as_ref()
                    .is_some_and(|r| r.state == expect.state() && r.notifications == expect.notifications());
                if !done {
                    still.push((id, expect));
                }
            }
            if still.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} orders not final within {within:?}, e.g. {:?}: {:?}",
                still.len(),
                still[0],
                self.table.order(&still[0].0).await
            );
            pending = still;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Checks every effect happened once: each state once in the history, a tracking id exactly for
    /// the shipped, and each product's stock down by exactly the quantities reserved of it.
    async fn assert_effects_once(&self, orders: &[(String, Expect, serde_json::Value)]) {
        let mut reserved: BTreeMap<String, i64> = BTreeMap::new();
        for (id, expect, order) in orders {
            let record: OrderRecord = self.table.order(id).await.unwrap().unwrap();
            let history: Vec<&str> = record.history.iter().map(|t| t.state.as_str()).collect();
            let mut unique = history.clone();
            unique.dedup();
            assert_eq!(history, unique, "{id}: each state once");
            assert_eq!(
                record.tracking_id.is_some(),
                *expect == Expect::Shipped,
                "{id}: {record:?}"
            );
            if *expect != Expect::OutOfStock {
                for item in order["items"].as_array().unwrap() {
                    *reserved
                        .entry(item["sku"].as_str().unwrap().to_owned())
                        .or_default() += item["quantity"].as_i64().unwrap();
                }
            }
        }
        for name in ["a", "b", "c", "d", "e"] {
            let sku = format!("{}-{name}", self.ns);
            let left = self.table.stock(&sku).await.unwrap().unwrap();
            let want = INITIAL_STOCK - reserved.get(&sku).copied().unwrap_or(0);
            assert_eq!(left, want, "{sku}: reserved exactly once");
        }
    }

    /// The pods of Consumer `name`'s workers.
    async fn pods(&self, name: &str) -> Vec<Pod> {
        worker_pods(&self.client, &self.ns, name).await
    }
}

/// Waits until kube-proxy has its rule for the ClusterIP `ip`:`port` in the host's nat table. A host
/// process reaches a ClusterIP only through that rule (nat OUTPUT); before it exists the host would route
/// the packet by its default route, off this machine, so nothing is sent to the Service until then.
async fn wait_service_rule(ip: &str, port: i32) {
    let rule = format!("-d {ip}/32 -p tcp -m comment");
    let dport = format!("--dport {port} ");
    common::eventually(&format!("kube-proxy's rule for {ip}:{port}"), CONVERGE, || {
        let (rule, dport) = (rule.clone(), dport.clone());
        async move {
            let out = std::process::Command::new("iptables")
                .args(["-w", "-t", "nat", "-S", "KUBE-SERVICES"])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            text.lines()
                .any(|l| l.contains(&rule) && l.contains(&dport) && l.contains("-j KUBE-SVC-"))
                .then_some(())
        }
    })
    .await;
}

/// Creates Secret `name` in `ns` with `data` (string values).
async fn secret(client: &kube::Client, ns: &str, name: &str, data: serde_json::Value) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// The pods of Consumer `consumer`'s workers in `ns` (terminating ones included).
pub(crate) async fn worker_pods(client: &kube::Client, ns: &str, consumer: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("tributary.dev/consumer={consumer}");
    pods.list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Whether `pod` is Ready and not being deleted.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Seconds from a pod's creation to its Ready condition (whole seconds, as the API records them).
pub(crate) fn start_seconds(pod: &Pod) -> Option<i64> {
    let created = pod.metadata.creation_timestamp.as_ref()?.0;
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()?
        .0;
    Some(ready.as_second() - created.as_second())
}

/// The worker container's restarts in `pod`.
pub(crate) fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == "worker"))
        .map_or(0, |c| c.restart_count)
}

/// A worker pod's `tributary_worker_messages_processed_total`, read from the host at its pod IP.
pub(crate) async fn processed(pod: &Pod) -> Option<u64> {
    let ip = pod.status.as_ref()?.pod_ip.clone()?;
    common::metric_at(&format!("{ip}:9090"), "tributary_worker_messages_processed_total").await
}

/// Prints each pod's start time (created → Ready) of `ns`'s worker pods that got Ready.
pub(crate) async fn print_start_times(client: &kube::Client, ns: &str, what: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods.list(&ListParams::default()).await.unwrap().items;
    let times: Vec<String> = list
        .iter()
        .filter_map(|p| Some(format!("{} {}s", p.metadata.name.clone()?, start_seconds(p)?)))
        .collect();
    eprintln!("{what}: pod start (created to Ready): {}", times.join(", "));
}

#[tokio::test]
async fn orders_through_the_service_end_final_with_the_shipment_pod_deleted_and_killed() {
    let _bed = common::shared().await;
    let started = Instant::now();
    // Messages a killed worker held come back after the visibility timeout: 10 s, not the example's 60.
    let bed = OrdersInPods::start(
        "pods-orders",
        |text| text.replace("visibilityTimeoutSeconds: 60", "visibilityTimeoutSeconds: 10"),
        json!({"minReplicas": 1, "maxReplicas": 1}),
    )
    .await;
    let ready = started.elapsed();
    let pods: Api<Pod> = Api::namespaced(bed.client.clone(), &bed.ns);

    let count = 150;
    let orders: Vec<_> = (0..count).map(|i| bed.order(i)).collect();
    let mut placed: Vec<(String, Expect, serde_json::Value)> = Vec::new();
    let mut posts = futures::stream::iter(orders.iter().cloned().map(|(order, expect)| {
        let poster = common::orders_bed::Poster::new(bed.http.clone(), bed.base.clone());
        async move { (poster.post(&order, PAUSE, POST_WITHIN).await, expect, order) }
    }))
    .buffer_unordered(8);
    let (mut deleted, mut killed) = (None, None);
    while let Some(done) = posts.next().await {
        placed.push(done);
        if deleted.is_none() && placed.len() == count / 3 {
            // `kubectl delete pod --force --grace-period=0`: the object goes at once, the kubelet kills
            // the container, the ReplicaSet makes another pod; what the worker held comes back.
            let pod = bed.pods("shipment").await.into_iter().find(is_ready).unwrap();
            let name = pod.metadata.name.clone().unwrap();
            pods.delete(
                &name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await
            .unwrap();
            deleted = Some(name);
        }
        if killed.is_none() && placed.len() == 2 * count / 3 {
            // The replacement's worker container SIGKILLed on the node: the kubelet restarts it in place.
            let gone = deleted.clone();
            let pod = common::eventually("a new shipment pod Ready", CONVERGE, || {
                let (client, ns, gone) = (bed.client.clone(), bed.ns.to_string(), gone.clone());
                async move {
                    worker_pods(&client, &ns, "shipment")
                        .await
                        .into_iter()
                        .find(|p| is_ready(p) && p.metadata.name != gone)
                }
            })
            .await;
            let name = pod.metadata.name.clone().unwrap();
            common::node::kill_container(&bed.ns, &name, "worker").await;
            killed = Some((name, restarts(&pod)));
        }
    }
    let posted = started.elapsed();
    let ids: Vec<(String, Expect)> = placed.iter().map(|(id, e, _)| (id.clone(), *e)).collect();
    bed.wait_final(&ids, CONVERGE).await;
    bed.assert_effects_once(&placed).await;
    let done = started.elapsed();

    // The container kill was a restart of the same pod, seen by the kubelet.
    let (name, before) = killed.unwrap();
    let pod = pods.get(&name).await.unwrap();
    assert!(
        restarts(&pod) > before,
        "{name} was not restarted: {:?}",
        pod.status
    );
    assert!(pods.get_opt(&deleted.unwrap()).await.unwrap().is_none());
    print_start_times(&bed.client, &bed.ns, "pods_orders").await;
    eprintln!(
        "pods_orders: installed and Available after {:.1}s; {count} orders posted through the Service by {:.1}s; all final by {:.1}s",
        ready.as_secs_f64(),
        posted.as_secs_f64(),
        done.as_secs_f64()
    );
}

#[tokio::test]
async fn scaling_from_backlog_adds_shipment_pods_that_consume_and_removes_them() {
    let _bed = common::shared().await;
    let started = Instant::now();
    // No shipment pod while its queue is empty; two waiting messages a replica, up to three; down again
    // 5 s after the queue is drained.
    let scaling = json!({
        "minReplicas": 0, "maxReplicas": 3, "targetBacklogPerReplica": 2,
        "scaleDownStabilizationSeconds": 5, "scaleUpObservations": 1
    });
    let bed = OrdersInPods::start("pods-scaling", |text| text.to_owned(), scaling).await;
    assert!(bed.pods("shipment").await.is_empty(), "no backlog, no pod");

    // Every shipment pod's processed count, read from its own /metrics while it runs.
    let deployments: Api<Deployment> = Api::namespaced(bed.client.clone(), &bed.ns);
    let seen: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let starts: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let most = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let sampler = tokio::spawn({
        let (client, ns, seen, most) = (bed.client.clone(), bed.ns.to_string(), seen.clone(), most.clone());
        let starts = starts.clone();
        async move {
            loop {
                if let Ok(d) = deployments.get("shipment-worker").await {
                    let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(0);
                    most.fetch_max(replicas, std::sync::atomic::Ordering::SeqCst);
                }
                for pod in worker_pods(&client, &ns, "shipment").await {
                    if let Some(seconds) = start_seconds(&pod) {
                        let name = pod.metadata.name.clone().unwrap();
                        starts.lock().unwrap().insert(name, seconds);
                    }
                    if let Some(count) = processed(&pod).await {
                        let name = pod.metadata.name.clone().unwrap();
                        let mut seen = seen.lock().unwrap();
                        let entry = seen.entry(name).or_default();
                        *entry = (*entry).max(count);
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let count = 60;
    let orders: Vec<_> = (0..count).map(|i| bed.order(10 * i + 2)).collect::<Vec<_>>();
    let placed: Vec<(String, Expect)> =
        futures::stream::iter(orders.iter().cloned().map(|(order, expect)| {
            let poster = common::orders_bed::Poster::new(bed.http.clone(), bed.base.clone());
            async move { (poster.post(&order, PAUSE, POST_WITHIN).await, expect) }
        }))
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(placed.iter().all(|(_, e)| *e == Expect::Shipped));
    bed.wait_final(&placed, CONVERGE).await;
    let shipped = started.elapsed();

    // Drained: the controller removes the pods it added.
    let consumers = common::tributary_api(&bed.client, &bed.ns, "Consumer");
    common::eventually("shipment scaled back to no pod", CONVERGE, || {
        let (consumers, client, ns) = (consumers.clone(), bed.client.clone(), bed.ns.to_string());
        async move {
            let status = consumers.get("shipment").await.ok()?.data["status"].clone();
            let idle = status["lastScale"]["to"] == 0 && status["backlog"] == 0;
            (idle && worker_pods(&client, &ns, "shipment").await.is_empty()).then_some(())
        }
    })
    .await;
    sampler.abort();
    let removed = started.elapsed();
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    let seen = seen.lock().unwrap().clone();
    let consumed: BTreeSet<&String> = seen.iter().filter(|(_, n)| **n > 0).map(|(p, _)| p).collect();
    assert!(most >= 2, "the backlog never added a second pod (at most {most})");
    assert!(
        consumed.len() >= 2,
        "fewer than two shipment pods consumed: {seen:?}"
    );
    print_start_times(&bed.client, &bed.ns, "pods_orders scaling").await;
    eprintln!(
        "pods_orders scaling: up to {most} shipment pods, {} consumed ({seen:?}), started (created to Ready) in {:?} s; all shipped after {:.1}s, pods removed after {:.1}s",
        consumed.len(),
        starts.lock().unwrap(),
        shipped.as_secs_f64(),
        removed.as_secs_f64()
    );
}
