//! A Consumer's message counts on the test bed: the controller (in this process, loopback pods allowed as
//! only a test bed does) reads its worker pod's `/metrics` into `status.throughput`. The pod is kwok's;
//! its worker is the worker's own metrics endpoint served here, whose counters the test moves through a
//! known flow (30 processed, 3 dead-lettered after failing, then 20 more): the status follows it.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use tributary::worker::{
    endpoints::{self, State},
    metrics::{DeadLetterReason, WorkerMetrics},
};

const CONVERGE: Duration = Duration::from_secs(60);

/// Points the Consumer's running pod at `port` on loopback, as the kubelet would report a pod IP.
async fn wire_pod(client: &kube::Client, ns: &str, port: u16) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let name = common::eventually("the worker pod running", CONVERGE, || {
        let pods = pods.clone();
        async move {
            let listed = pods
                .list(&ListParams::default().labels("tributary.dev/consumer=counts"))
                .await
                .ok()?;
            let pod = listed.items.into_iter().next()?;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(pod.metadata.name?)
        }
    })
    .await;
    let annotation = json!({"metadata": {"annotations": {"tributary.dev/metrics-port": port.to_string()}}});
    pods.patch(&name, &PatchParams::default(), &Patch::Merge(&annotation))
        .await
        .unwrap();
    let status = json!({"status": {"podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Waits until `status.throughput` satisfies `check`; returns it.
async fn throughput(
    client: &kube::Client,
    ns: &str,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let consumers = common::tributary_api(client, ns, "Consumer");
    common::eventually(what, CONVERGE, || {
        let consumers = consumers.clone();
        let check = &check;
        async move {
            let consumer = consumers.get("counts").await.ok()?;
            let throughput = consumer.data["status"]["throughput"].clone();
            check(&throughput).then_some(throughput)
        }
    })
    .await
}

#[tokio::test]
async fn a_consumers_counts_appear_in_status_and_follow_its_workers_metrics() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-counts").await;
    let aws = common::aws_config().await;
    let metrics = WorkerMetrics::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = State {
        metrics: metrics.clone(),
        consumer: format!("{ns}/counts"),
        processor: "order-ack",
    };
    let server = tokio::spawn(endpoints::serve(listener, state, std::future::pending()));
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: orders}\nspec: {provider: aws, aws: {}}\n---\n\
         apiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {name: counts}\nspec:\n  \
         source: {http: {auth: {mode: none}}}\n  processor: order-ack\n  sink: {topicRef: {name: orders}}\n  \
         scaling: {minReplicas: 1, maxReplicas: 1}\n"
    )
    .await;
    wire_pod(&client, &ns, port).await;

    for _ in 0..30 {
        metrics.processed(Duration::from_millis(1));
    }
    for _ in 0..3 {
        metrics.failed(Duration::from_millis(1));
        metrics.dead_lettered(DeadLetterReason::Exhausted);
    }
    let first = throughput(&client, &ns, "the first counts", |t| t["processed"] == 30).await;
    assert_eq!(
        (&first["deadLettered"], &first["failed"], &first["pods"]),
        (&json!(3), &json!(3), &json!(1))
    );
    assert!(first["observedTime"].is_string(), "{first}");

    for _ in 0..20 {
        metrics.processed(Duration::from_millis(1));
    }
    let second = throughput(&client, &ns, "the counts after 20 more", |t| t["processed"] == 50).await;
    let per_minute = second["processedPerMinute"].as_i64().unwrap_or(-1);
    assert!(per_minute > 0, "20 in a window of seconds is a rate: {second}");
    assert_eq!(
        second["deadLetteredPerMinute"], 0,
        "none dead-lettered since: {second}"
    );
    controller.stop().await;
    server.abort();
}
