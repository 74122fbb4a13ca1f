//! The Consumer controller on the test bed and moto, running in this process: the whole order example
//! (with its four Consumers) is applied; each Consumer gets a ConfigMap whose `worker.yaml` has its
//! references resolved, a ServiceAccount, a restricted Deployment whose pods run on the kwok nodes, and for
//! the HTTP source a Service, a NetworkPolicy, the API key Secret mounted and an `Authenticated` condition;
//! the Order table exists; a backlog scales a Deployment up and, after the
//! stabilization window, back down; deleting a Consumer removes what it owned.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams},
};
use serde_json::json;
use tributary::worker::config::{ProcessorKind, WorkerConfig};

const CONVERGE: Duration = Duration::from_secs(60);

fn order_example() -> String {
    common::example_files("orders")
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

async fn worker_config(client: &kube::Client, ns: &str, consumer: &str) -> WorkerConfig {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let map = config_maps.get(&format!("{consumer}-worker")).await.unwrap();
    serde_yaml_ng::from_str(&map.data.unwrap()["worker.yaml"]).unwrap()
}

async fn ready_replicas(deployments: &Api<Deployment>, name: &str) -> Option<(i32, i32)> {
    let deployment = deployments.get_opt(name).await.ok()??;
    let wanted = deployment.spec?.replicas?;
    let ready = deployment.status?.ready_replicas.unwrap_or(0);
    Some((wanted, ready))
}

/// The order endpoint: API keys from `order-ack-api-keys` (the example sets no `auth`), refused until the
/// Secret exists (`Authenticated=False ApiKeySecretMissing`, then True); the Secret is mounted; a
/// NetworkPolicy owned by the Consumer opens the order port to the namespace only.
async fn order_endpoint_is_locked_down(client: &kube::Client, ns: &str) {
    let authenticated = |reason: &'static str| {
        let consumers = common::tributary_api(client, ns, "Consumer");
        async move {
            common::eventually(
                &format!("order-ack Authenticated reason {reason}"),
                CONVERGE,
                || {
                    let consumers = consumers.clone();
                    async move {
                        let object = consumers.get("order-ack").await.ok()?;
                        let (_, found, message, _) = common::condition(&object, "Authenticated")?;
                        (found == reason).then_some(message)
                    }
                },
            )
            .await
        }
    };
    let missing = authenticated("ApiKeySecretMissing").await;
    assert!(missing.contains("order-ack-api-keys"), "{missing}");
    let key = tributary::worker::orders::security::api_keys::new_key(Some("ci")).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "order-ack-api-keys"},
        "stringData": {"ci": key.entry},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let present = authenticated("Required").await;
    assert!(
        !present.contains(&key.entry) && !present.contains(&key.key),
        "{present}"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("order-ack-worker")
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "api-keys")
        .unwrap();
    assert_eq!(
        volume.secret.unwrap().secret_name.as_deref(),
        Some("order-ack-api-keys")
    );
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get("order-ack-worker")
        .await
        .unwrap();
    assert_eq!(policy.metadata.owner_references.unwrap()[0].name, "order-ack");
    let rules = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(
        rules[0].ports.as_ref().unwrap()[0].port,
        Some(IntOrString::Int(8080))
    );
    // A queue Consumer's workers serve nothing but metrics, which only the monitoring namespace may
    // scrape (none is configured here): their policy admits nothing.
    let queue_policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get("inventory-worker")
        .await
        .unwrap();
    assert_eq!(
        queue_policy.spec.unwrap().ingress.unwrap_or_default(),
        Vec::new(),
        "a queue Consumer's workers admit no one"
    );

    // Anonymous access only when asked for, and then flagged: a condition and a Warning Event.
    let open = json!({"spec": {"source": {"http": {"auth": {"mode": "none", "apiKeys": null}}}}});
    common::tributary_api(client, ns, "Consumer")
        .patch("order-ack", &PatchParams::default(), &Patch::Merge(&open))
        .await
        .unwrap();
    authenticated("AnonymousAccess").await;
    common::eventually("the AnonymousAccess Warning Event", CONVERGE, || async {
        use k8s_openapi::api::events::v1::Event;
        let events = Api::<Event>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await
            .ok()?;
        events
            .items
            .iter()
            .any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("order-ack")
                    && e.reason.as_deref() == Some("AnonymousAccess")
                    && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    let config = worker_config(client, ns, "order-ack").await;
    let http = config.source.http.unwrap();
    assert!(http.auth.anonymous && http.auth.api_keys.is_none());
    let closed = json!({"spec": {"source": {"http": {"auth": null}}}});
    common::tributary_api(client, ns, "Consumer")
        .patch("order-ack", &PatchParams::default(), &Patch::Merge(&closed))
        .await
        .unwrap();
    authenticated("Required").await;
}

#[tokio::test]
async fn the_order_example_runs_its_consumers_and_scales_with_the_backlog() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-consumer").await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let controller = common::start_controller(&client, &ns, &aws).await;
    // The example's Consumers share the table `orders`, outside the default `<namespace>-*`.
    common::tenant_policy(&client, &ns, json!({"dynamodbTables": ["orders"]})).await;
    common::create_yaml(&client, &ns, &order_example()).await;

    let mut urls = std::collections::BTreeMap::new();
    for queue in ["notifications", "inventory", "shipments"] {
        let object = common::wait_reason(&client, &ns, "Queue", queue, "Available", CONVERGE).await;
        urls.insert(queue, object.data["status"]["url"].as_str().unwrap().to_owned());
    }
    let dlq = common::wait_reason(&client, &ns, "DeadLetter", "orders-dlq", "Available", CONVERGE).await;
    let dlq_url = dlq.data["status"]["url"].as_str().unwrap().to_owned();
    let topic = common::wait_reason(&client, &ns, "Topic", "orders", "Available", CONVERGE).await;
    let topic_arn = topic.data["status"]["arn"].as_str().unwrap().to_owned();
    for consumer in ["order-ack", "notification", "inventory", "shipment"] {
        common::wait_reason(&client, &ns, "Consumer", consumer, "Available", CONVERGE).await;
    }

    // The configuration each worker reads, with the references resolved.
    let notification = worker_config(&client, &ns, "notification").await;
    notification.validate().unwrap();
    assert_eq!(notification.processor, ProcessorKind::Notification);
    assert_eq!(
        notification.source.sqs.as_ref().unwrap().queue_url,
        urls["notifications"]
    );
    assert_eq!(notification.dead_letter.as_ref().unwrap().queue_url, dlq_url);
    assert_eq!(notification.sink.table.as_deref(), Some("orders"));
    let inventory = worker_config(&client, &ns, "inventory").await;
    assert_eq!(inventory.retry.max_attempts, 5);
    assert_eq!(inventory.retry.initial_backoff_seconds, 2);
    let order_ack = worker_config(&client, &ns, "order-ack").await;
    order_ack.validate().unwrap();
    assert_eq!(order_ack.sink.topic_arn.as_deref(), Some(topic_arn.as_str()));
    assert_eq!(order_ack.source.http.as_ref().unwrap().listen.port(), 8080);
    let shipment = worker_config(&client, &ns, "shipment").await;
    assert_eq!(shipment.sink.topic_arn.as_deref(), Some(topic_arn.as_str()));

    // The Order table exists.
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table = dynamodb
        .describe_table()
        .table_name("orders")
        .send()
        .await
        .unwrap();
    assert_eq!(table.table().unwrap().table_status().unwrap().as_str(), "ACTIVE");

    // Deployments with their pods running on kwok, owned by the Consumers; a Service for the ingress.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for (name, replicas) in [
        ("order-ack-worker", 2),
        ("notification-worker", 1),
        ("inventory-worker", 1),
    ] {
        common::eventually(&format!("{name} with {replicas} ready pods"), CONVERGE, || {
            let deployments = deployments.clone();
            async move { (ready_replicas(&deployments, name).await == Some((replicas, replicas))).then_some(()) }
        })
        .await;
    }
    let deployment = deployments.get("inventory-worker").await.unwrap();
    let owner = &deployment.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Consumer", "inventory")
    );
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let security = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(pod.containers[0].image.as_deref(), Some("tributary:test"));
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    assert!(services.get_opt("order-ack-worker").await.unwrap().is_some());
    assert!(services.get_opt("inventory-worker").await.unwrap().is_none());
    order_endpoint_is_locked_down(&client, &ns).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    assert!(accounts.get_opt("notification-worker").await.unwrap().is_some());

    // A backlog of 250 with 50 per replica and at most 3: scaled to 3 at once.
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    let window = json!({"spec": {"scaling": {"scaleDownStabilizationSeconds": 2}}});
    consumers
        .patch("notification", &PatchParams::default(), &Patch::Merge(&window))
        .await
        .unwrap();
    for chunk in 0..25 {
        let entries = (0..10)
            .map(|i| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(format!("backlog {chunk}-{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        sqs.send_message_batch()
            .queue_url(&urls["notifications"])
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    common::eventually("notification scaled to 3", CONVERGE, || {
        let deployments = deployments.clone();
        async move { (ready_replicas(&deployments, "notification-worker").await == Some((3, 3))).then_some(()) }
    })
    .await;
    let scaled = consumers.get("notification").await.unwrap();
    let last = &scaled.data["status"]["lastScale"];
    assert_eq!(last["to"], 3, "{last}");
    // Decided while the messages were arriving: any backlog over 100 asks for 3.
    let reason = last["reason"].as_str().unwrap();
    let backlog: i64 = reason
        .strip_prefix("backlog ")
        .and_then(|r| r.strip_suffix(" / 50 per replica"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reason}"));
    assert!((101..=250).contains(&backlog), "{reason}");

    // The backlog gone: back to the minimum after the window.
    sqs.purge_queue()
        .queue_url(&urls["notifications"])
        .send()
        .await
        .unwrap();
    common::eventually("notification back to 1", CONVERGE, || {
        let deployments = deployments.clone();
        async move { (ready_replicas(&deployments, "notification-worker").await == Some((1, 1))).then_some(()) }
    })
    .await;

    // Deleting a Consumer removes what it owned.
    consumers
        .delete("inventory", &DeleteParams::default())
        .await
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    common::eventually("inventory's Deployment and ConfigMap gone", CONVERGE, || {
        let (deployments, config_maps) = (deployments.clone(), config_maps.clone());
        async move {
            let gone = deployments.get_opt("inventory-worker").await.ok()?.is_none()
                && config_maps.get_opt("inventory-worker").await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await;

    controller.stop().await;
}

/// A Consumer whose workers cannot start (a ResourceQuota of zero pods in its namespace: the ReplicaSet
/// cannot create them) is not Ready, says why with the Deployment's reason, and turns Ready once they run.
#[tokio::test]
async fn a_consumer_without_its_minimum_of_ready_workers_is_not_ready() {
    let _bed = common::shared().await;
    use k8s_openapi::api::core::v1::ResourceQuota;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-consumer-ready").await;
    let aws = common::aws_config().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    let quota: ResourceQuota =
        serde_json::from_value(json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}))
            .unwrap();
    quotas.create(&Default::default(), &quota).await.unwrap();
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: orders}\nspec: {provider: aws, aws: {}}\n---\n\
         apiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {name: order-ack}\nspec:\n  source: {http: {port: 8080}}\n  \
         processor: order-ack\n  sink: {topicRef: {name: orders}}\n  scaling: {minReplicas: 1, maxReplicas: 2}\n",
    )
    .await;
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    let (status, reason, message, _) =
        common::eventually("the Consumer reported not ready", CONVERGE, || {
            let consumers = consumers.clone();
            async move {
                let consumer = consumers.get("order-ack").await.ok()?;
                let ready = common::condition(&consumer, "Ready")?;
                matches!(ready.1.as_str(), "Progressing" | "Degraded").then_some(ready)
            }
        })
        .await;
    assert_eq!(status, "False");
    assert!(
        message.starts_with("0/1 workers ready, at least 1 needed"),
        "{reason}: {message}"
    );
    let consumer = consumers.get("order-ack").await.unwrap();
    let synced = common::condition(&consumer, "Synced").unwrap();
    assert_eq!(synced.0, "True", "the Deployment is as the spec asks: {synced:?}");

    quotas.delete("no-pods", &DeleteParams::default()).await.unwrap();
    common::wait_reason(&client, &ns, "Consumer", "order-ack", "Available", CONVERGE).await;
    controller.stop().await;
}
