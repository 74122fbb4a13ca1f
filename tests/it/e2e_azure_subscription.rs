//! A Subscription from a Topic (SNS in moto) to a Queue on azure (a Storage Queue in Azurite), with a filter
//! policy, end to end: the controller in this process subscribes a relay SQS queue of its own to the Topic
//! (raw, no SNS filter) and renders the relay worker (processor `relay`, the Storage Queue's key from the
//! Queue's Secret). A `tributary worker` process runs from that ConfigMap; of the orders published, exactly
//! those the policy admits reach the Storage Queue, with their attributes, and a `total` published as a
//! String is not a number to the policy, as in SNS. Deleting the Subscription removes the SNS subscription
//! and the relay queue.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{collections::BTreeSet, process::Command, time::Duration};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{Api, api::DeleteParams};
use tributary::worker::config::{ProcessorKind, WorkerConfig};

const CONVERGE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_topic_delivers_to_a_storage_queue_through_the_relay_filtered_by_the_engine() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-relay").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::storage_secret(&client, &ns).await;
    let objects = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {{name: orders}}\nspec: {{provider: aws, aws: {{}}}}\n---\n\
         apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {{name: big-orders}}\nspec:\n  provider: azure\n  azure:\n    storageAccount: {account}\n    accountKeySecretRef: {{name: storage, key: accountKey}}\n    messageTtlSeconds: 3600\n---\n\
         apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {{name: big-orders}}\nspec:\n  topicRef: {{name: orders}}\n  queueRef: {{name: big-orders}}\n  filter:\n    scope: MessageAttributes\n    policy:\n      event: [OrderPlaced]\n      total: [{{numeric: ['>=', 100]}}]\n",
        account = common::var("AZURE_STORAGE_ACCOUNT"),
    );
    for object in objects.split("---\n") {
        common::create_yaml(&client, &ns, object).await;
    }
    let queue = common::wait_reason(&client, &ns, "Queue", "big-orders", "Available", CONVERGE).await;
    let queue_url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    let subscription =
        common::wait_reason(&client, &ns, "Subscription", "big-orders", "Available", CONVERGE).await;
    let status = &subscription.data["status"];
    let relay_url = status["relayQueueUrl"].as_str().unwrap().to_owned();
    assert!(relay_url.contains("tributary-relay-"), "{status}");
    assert_eq!(
        status["appliedFilterPolicy"],
        r#"{"event":["OrderPlaced"],"total":[{"numeric":[">=",100]}]}"#
    );

    // The relay's configuration and pods: the relay queue in, the Storage Queue out, the filter, the key
    // from the Queue's Secret.
    let map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("big-orders-relay")
        .await
        .unwrap();
    let text = map.data.unwrap()["worker.yaml"].clone();
    assert!(!text.contains(&common::var("AZURE_STORAGE_KEY")));
    let mut config: WorkerConfig = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(config.processor, ProcessorKind::Relay);
    assert_eq!(config.source.sqs.as_ref().unwrap().queue_url, relay_url);
    let target = config.relay.clone().unwrap();
    assert_eq!(
        (target.queue_url.as_str(), target.message_ttl_seconds),
        (queue_url.as_str(), 3600)
    );
    assert!(target.filter.is_some());
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("big-orders-relay")
        .await
        .unwrap();
    assert_eq!(
        deployment.metadata.owner_references.unwrap()[0].kind,
        "Subscription"
    );
    // The relay serves nothing: its NetworkPolicy admits no one (no monitoring namespace is set here).
    let policy = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(client.clone(), &ns)
        .get("big-orders-relay")
        .await
        .unwrap();
    assert_eq!(policy.metadata.owner_references.unwrap()[0].kind, "Subscription");
    assert_eq!(policy.spec.unwrap().ingress.unwrap_or_default(), Vec::new());
    let env =
        serde_json::to_value(&deployment.spec.unwrap().template.spec.unwrap().containers[0].env).unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "AZURE_STORAGE_KEY" && e["valueFrom"]["secretKeyRef"]["name"] == "storage"),
        "{env}"
    );

    let work = std::env::temp_dir().join(common::unique("e2e-relay"));
    std::fs::create_dir_all(&work).unwrap();
    let port = common::free_port();
    config.metrics_listen = ([127, 0, 0, 1], port).into();
    if let Some(sqs) = config.source.sqs.as_mut() {
        sqs.wait_time_seconds = 1;
    }
    let path = work.join("relay.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let mut worker = common::spawn_worker(&path, &work.join("relay.log"));

    // Placed and ≥ 100 passes; placed and small, shipped, or a total that is a String do not.
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic_arn = common::tributary_api(&client, &ns, "Topic")
        .get("orders")
        .await
        .unwrap()
        .data["status"]["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admitted = BTreeSet::new();
    for i in 0..30 {
        let (event, total) = match i % 3 {
            0 => ("OrderPlaced", "150.00"),
            1 => ("OrderPlaced", "99.99"),
            _ => ("OrderShipped", "150.00"),
        };
        let body = format!(r#"{{"orderId":"o-{i}"}}"#);
        if i % 3 == 0 {
            admitted.insert(body.clone());
        }
        common::publish(
            &sns,
            &topic_arn,
            &body,
            &[("event", "String", event), ("total", "Number", total)],
        )
        .await;
    }
    common::publish(
        &sns,
        &topic_arn,
        r#"{"orderId":"o-string"}"#,
        &[("event", "String", "OrderPlaced"), ("total", "String", "150")],
    )
    .await;
    common::eventually("31 relayed or filtered out", CONVERGE, || async {
        (common::metric(port, "tributary_worker_messages_processed_total").await? == 31).then_some(())
    })
    .await;
    let storage = common::azure_queue_service()
        .queue_client(queue_url.rsplit('/').next().unwrap())
        .unwrap();
    let delivered = common::azure_drain(&storage).await;
    let bodies: BTreeSet<String> = delivered.iter().map(|(b, _)| b.clone()).collect();
    assert_eq!(bodies, admitted, "exactly what the policy admits, once each");
    assert_eq!(delivered.len(), admitted.len());
    for (_, attributes) in &delivered {
        assert_eq!(attributes["event"], "OrderPlaced");
        assert_eq!(attributes["total"], "150.00");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success(), "a clean shutdown");

    // Deleting the Subscription removes the SNS subscription and the relay queue.
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let relay_name = relay_url.rsplit('/').next().unwrap().to_owned();
    common::tributary_api(&client, &ns, "Subscription")
        .delete("big-orders", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the relay queue deleted", CONVERGE, || async {
        sqs.get_queue_url()
            .queue_name(&relay_name)
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let left = sns
        .list_subscriptions_by_topic()
        .topic_arn(&topic_arn)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    controller.stop().await;
    let _ = std::fs::remove_dir_all(&work);
}
