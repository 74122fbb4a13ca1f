//! The Consumer's apply decisions against the AWS fake and the fake API server: the worker children it
//! applies (server-side, owned by the Consumer, never over an object it does not control), the references
//! it waits for by name, and what the namespace's TenantPolicy refuses before anything is made. Scaling
//! from the backlog is in [`scaling`]; readiness, status and deletion in [`status`].

mod azure;
mod container;
mod scaling;
mod sources;
mod status;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;
use crate::{
    api::{common::QueueObservation, dead_letter::DeadLetterStatus, queue::QueueStatus, topic::TopicStatus},
    cloud::{Attributes, Tags},
    controller::driver::testing::{Harness, object, path},
};

/// The name of the Consumer of these tests.
const CONSUMER: &str = "notify";
/// The name of everything made for it.
const WORKER: &str = "notify-worker";
/// Its default Order table.
const TABLE: &str = "shop-orders";

fn consumer(spec: Value) -> Consumer {
    object(CONSUMER, spec)
}

/// A notification Consumer of Queue `jobs`.
fn of_jobs() -> Consumer {
    consumer(json!({"source": {"queueRef": {"name": "jobs"}}, "processor": "notification"}))
}

/// Queue `jobs` on AWS with its SQS queue, in the store with its URL: the URL.
async fn jobs_queue(h: &mut Harness) -> String {
    let url = h
        .cloud
        .create_queue("shop_jobs", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let mut queue: Queue = object("jobs", json!({"aws": {"visibilityTimeoutSeconds": 45}}));
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(url.clone()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
    h.new_calls();
    url
}

/// Runs the Consumer's apply step.
async fn apply(h: &Harness, consumer: &Consumer) -> Result<Applied<ConsumerStatus>, Error> {
    super::apply(consumer, &h.ctx).await
}

/// The worker child of kind `K` as last applied, if it was.
fn child<K: Resource<DynamicType = ()> + DeserializeOwned>(h: &Harness) -> Option<K> {
    let body = h.api.patched(&path::<K>(WORKER))?;
    Some(serde_json::from_value(body).expect("a valid child"))
}

/// The paths patched (server-side applied) so far, oldest first.
fn patched_paths(h: &Harness) -> Vec<String> {
    h.api
        .sent()
        .into_iter()
        .filter(|s| s.method == ::http::Method::PATCH)
        .map(|s| s.path)
        .collect()
}

/// The `worker.yaml` the ConfigMap holds.
fn worker_yaml(h: &Harness) -> String {
    let config_map: ConfigMap = child(h).expect("the ConfigMap was applied");
    config_map.data.unwrap_or_default()[crate::worker::config::FILE_NAME].clone()
}

#[tokio::test]
async fn a_queue_consumer_applies_its_workers_children_each_owned_by_it() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    let consumer = of_jobs();
    let applied = apply(&h, &consumer).await.unwrap();

    assert_eq!(
        h.new_calls(),
        [
            format!("CreateTable {TABLE}"),
            format!("GetQueueAttributes {url}")
        ],
        "the Order table ensured, the backlog read"
    );
    assert_eq!(
        patched_paths(&h),
        [
            path::<ConfigMap>(WORKER),
            path::<ServiceAccount>(WORKER),
            path::<NetworkPolicy>(WORKER),
            path::<Deployment>(WORKER),
        ],
        "no Service without an HTTP source; the Deployment last, after what it mounts"
    );
    for child in patched_paths(&h) {
        let body = h.api.patched(&child).unwrap();
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"], &owner["controller"]),
            (&json!("Consumer"), &json!("uid-notify"), &json!(true)),
            "{child}: the garbage collector removes it with the Consumer"
        );
    }
    let config = worker_yaml(&h);
    assert!(config.contains(&url), "{config}");
    assert!(config.contains("visibilityTimeoutSeconds: 45"), "{config}");
    assert!(config.contains(TABLE), "{config}");
    let deployment: Deployment = child(&h).unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(1));
    assert_eq!(applied.status.backlog, Some(0));
    assert!(h.cloud.has_table(TABLE));
}

#[tokio::test]
async fn each_child_is_read_before_it_is_applied() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    apply(&h, &of_jobs()).await.unwrap();
    let deployment = path::<Deployment>(WORKER);
    let requests: Vec<_> = h
        .api
        .sent()
        .into_iter()
        .filter(|s| s.path == deployment)
        .map(|s| s.method)
        .collect();
    assert_eq!(requests, [::http::Method::GET, ::http::Method::PATCH]);
}

#[tokio::test]
async fn a_child_of_that_name_it_does_not_control_is_not_taken_over() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let by_hand = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": WORKER, "namespace": "shop"},
        "data": {"worker.yaml": "mine"},
    });
    h.api.put(&path::<ConfigMap>(WORKER), by_hand);
    let refused = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(refused.reason(), "ChildConflict");
    let message = refused.condition_message();
    assert!(
        message.contains(&format!("ConfigMap shop/{WORKER} exists")) && message.contains("not controlled"),
        "{message}"
    );
    assert!(patched_paths(&h).is_empty(), "nothing applied");
}

#[tokio::test]
async fn a_source_queue_that_is_missing_or_has_no_url_yet_is_waited_for_by_name() {
    let mut h = Harness::new();
    let missing = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(missing.reason(), "DependencyNotReady");
    assert!(
        missing
            .condition_message()
            .contains("spec.source.queueRef: Queue jobs does not exist or has no SQS queue yet"),
        "{missing}"
    );

    h.store(object::<Queue>("jobs", json!({"aws": {}})));
    let unprovisioned = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(unprovisioned.reason(), "DependencyNotReady");
    assert!(
        unprovisioned.condition_message().contains("Queue jobs"),
        "{unprovisioned}"
    );
    assert!(h.new_calls().is_empty(), "no cloud call while waiting");
    assert!(h.api.sent().is_empty(), "no request while waiting");
}

#[tokio::test]
async fn a_missing_dead_letter_or_sink_topic_is_waited_for_by_name() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let with_refs = consumer(json!({
        "source": {"queueRef": {"name": "jobs"}},
        "processor": "notification",
        "deadLetterRef": {"name": "dlq"},
        "sink": {"topicRef": {"name": "shipped"}},
    }));
    let waiting = apply(&h, &with_refs).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("spec.deadLetterRef: DeadLetter dlq does not exist or has no queue yet"),
        "{waiting}"
    );

    let mut dead_letter: DeadLetter = object("dlq", json!({"aws": {}}));
    dead_letter.status = Some(DeadLetterStatus {
        observed: QueueObservation {
            url: Some("https://sqs.example/000000000000/shop_dlq".into()),
            ..QueueObservation::default()
        },
        ..DeadLetterStatus::default()
    });
    h.store(dead_letter);
    let waiting = apply(&h, &with_refs).await.unwrap_err();
    assert!(
        waiting
            .condition_message()
            .contains("spec.sink.topicRef: Topic shipped does not exist or has no SNS topic yet"),
        "{waiting}"
    );
    assert!(patched_paths(&h).is_empty());

    let mut topic: Topic = object("shipped", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some("arn:aws:sns:us-east-1:000000000000:shop_shipped".into()),
        ..TopicStatus::default()
    });
    h.store(topic);
    apply(&h, &with_refs).await.unwrap();
    let config = worker_yaml(&h);
    assert!(
        config.contains("shop_dlq") && config.contains("shop_shipped"),
        "{config}"
    );
}

#[tokio::test]
async fn a_dead_letter_on_another_provider_is_an_invalid_spec_naming_the_field() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    h.store(object::<DeadLetter>(
        "dlq",
        json!({"provider": "azure", "azure": {"storageAccount": "acct"}}),
    ));
    let with_dead_letter = consumer(json!({
        "source": {"queueRef": {"name": "jobs"}},
        "processor": "notification",
        "deadLetterRef": {"name": "dlq"},
    }));
    let invalid = apply(&h, &with_dead_letter).await.unwrap_err();
    assert_eq!(invalid.reason(), "InvalidSpec");
    assert!(
        invalid.condition_message().contains("spec.deadLetterRef"),
        "{invalid}"
    );
    assert!(h.new_calls().is_empty());
    assert!(patched_paths(&h).is_empty());
}

#[tokio::test]
async fn a_container_image_is_forbidden_unless_the_tenant_policy_allows_it() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let image = "registry.example.com/shop/notifier:1.2";
    let custom = consumer(json!({"source": {"queueRef": {"name": "jobs"}}, "container": {"image": image}}));
    let refused = apply(&h, &custom).await.unwrap_err();
    assert_eq!(refused.reason(), "Forbidden");
    let message = refused.condition_message();
    assert!(
        message.contains("spec.container.image") && message.contains("only the built-in processors"),
        "{message}"
    );
    assert!(h.new_calls().is_empty(), "nothing read or made");
    assert!(patched_paths(&h).is_empty());

    h.policy(json!({"images": ["registry.example.com/shop/*"]}));
    apply(&h, &custom).await.unwrap();
    let deployment: Deployment = child(&h).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1);
    assert_ne!(
        pod.containers[0].image.as_deref(),
        Some(image),
        "the worker is Tributary's"
    );
    let sidecars = pod.init_containers.unwrap();
    assert_eq!(sidecars[0].image.as_deref(), Some(image));
    assert_eq!(sidecars[0].restart_policy.as_deref(), Some("Always"));
    assert!(
        !h.new_calls().iter().any(|c| c.starts_with("CreateTable")),
        "a container processor gets no Order table"
    );
}

#[tokio::test]
async fn a_sink_table_outside_the_tenant_policy_is_forbidden_and_not_created() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    let elsewhere = consumer(json!({
        "source": {"queueRef": {"name": "jobs"}},
        "processor": "inventory",
        "sink": {"table": "billing-orders"},
    }));
    let refused = apply(&h, &elsewhere).await.unwrap_err();
    assert_eq!(refused.reason(), "Forbidden");
    assert!(
        refused
            .condition_message()
            .contains("spec.sink.table: \"billing-orders\""),
        "{refused}"
    );
    assert!(!h.cloud.has_table("billing-orders"));
    assert!(h.new_calls().is_empty());

    h.policy(json!({"dynamodbTables": ["{namespace}-orders", "billing-*"]}));
    apply(&h, &elsewhere).await.unwrap();
    assert!(h.cloud.has_table("billing-orders"));
}

#[tokio::test]
async fn the_namespaces_worker_identity_annotates_the_service_account() {
    let mut h = Harness::new();
    jobs_queue(&mut h).await;
    apply(&h, &of_jobs()).await.unwrap();
    let anonymous: ServiceAccount = child(&h).unwrap();
    assert_eq!(
        anonymous.metadata.annotations, None,
        "no identity without a policy"
    );
    assert_eq!(anonymous.automount_service_account_token, Some(false));

    let role = "arn:aws:iam::000000000000:role/shop-workers";
    h.policy(json!({"workerIdentity": {"awsRoleArn": role}}));
    apply(&h, &of_jobs()).await.unwrap();
    let annotated: ServiceAccount = child(&h).unwrap();
    assert_eq!(
        annotated.metadata.annotations.unwrap_or_default()["eks.amazonaws.com/role-arn"],
        role
    );
}

#[tokio::test]
async fn an_http_consumer_also_gets_a_service_for_its_port() {
    let mut h = Harness::new();
    let mut topic: Topic = object("orders", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some("arn:aws:sns:us-east-1:000000000000:shop_orders".into()),
        ..TopicStatus::default()
    });
    h.store(topic);
    let ack = consumer(json!({
        "source": {"http": {"port": 8443}},
        "processor": "order-ack",
        "sink": {"topicRef": {"name": "orders"}},
    }));
    let applied = apply(&h, &ack).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [format!("CreateTable {TABLE}")],
        "no backlog to read"
    );
    assert!(patched_paths(&h).contains(&path::<Service>(WORKER)));
    let service: Service = child(&h).unwrap();
    let ports = service.spec.unwrap().ports.unwrap();
    assert_eq!((ports[0].port, ports[0].name.as_deref()), (8443, Some("http")));
    assert_eq!(applied.status.backlog, None);
    let policy: NetworkPolicy = child(&h).unwrap();
    let ingress = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(
        ingress[0].ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
            8443
        )),
        "the order port is opened to allowFrom"
    );
}

#[tokio::test]
async fn a_source_queue_gone_from_the_cloud_is_a_transient_failure_before_any_child() {
    let mut h = Harness::new();
    let url = jobs_queue(&mut h).await;
    h.cloud.delete_queue(&url).await.unwrap();
    h.new_calls();
    let failed = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(failed.reason(), "CloudUnavailable");
    assert_eq!(
        failed.class(),
        crate::controller::driver::error::Class::Transient,
        "looked at again with backoff"
    );
    assert_eq!(
        h.new_calls(),
        [
            format!("CreateTable {TABLE}"),
            format!("GetQueueAttributes {url}")
        ]
    );
    assert!(
        patched_paths(&h).is_empty(),
        "no replicas decided without a backlog"
    );
}
