//! Tenant boundaries, two tenants on one cluster: namespace A owns an SQS queue, an SNS topic, an Event
//! Hub (through the ARM fake) and a DynamoDB table; namespace B, even with adoption allowed by its
//! TenantPolicy, tries to adopt A's queue, topic and hub, to point a Consumer's sink at A's table, to run
//! a forbidden image, to use another Azure subscription, to collide with A's default name and to take
//! over a ConfigMap it did not create. Each is refused with a reason naming the field or the object,
//! and A's resources, tags and messages are untouched (read from moto and the fake directly). Deletes
//! after a lost ownership are in [`ownership`].
//!
//! Each refusal prints one summary line (`REFUSED ...`, `KEPT ...`).
#![allow(clippy::unwrap_used)]

mod ownership;

use crate::support as common;

use std::{collections::HashMap, time::Duration};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

use common::{
    has_event, queue_tags,
    tools::{kubectl, run},
    topic_tags,
};

const CONVERGE: Duration = Duration::from_secs(60);
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000a1";

async fn visible_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes
        .get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .cloned()
        .unwrap_or_default()
}

/// Waits for `kind` `name` in `ns` to be refused with `reason`, checks the message names `needle`, and
/// prints the summary line.
async fn refused(client: &kube::Client, ns: &str, kind: &str, name: &str, reason: &str, needle: &str) {
    let object = common::wait_reason(client, ns, kind, name, reason, CONVERGE).await;
    let (status, _, message, _) = common::condition(&object, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains(needle), "{kind} {name}: {message}");
    println!("REFUSED {kind} {ns}/{name}: Ready=False {reason}: {message}");
}

fn yaml(kind: &str, name: &str, spec: &str) -> String {
    format!("apiVersion: tributary.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{spec}")
}

#[tokio::test]
async fn one_tenant_cannot_take_or_reach_anothers_resources() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let aws = common::aws_config().await;
    let (sqs, sns) = (aws_sdk_sqs::Client::new(&aws), aws_sdk_sns::Client::new(&aws));
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    // B is `<p>`, A is `<p>-a`: A's Queue `orders` and B's Queue `a-orders` had the same old default name.
    let b = common::namespace(&client, "tenant").await;
    let a = format!("{b}-a");
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let meta = serde_json::from_value(json!({"metadata": {"name": a}})).unwrap();
    namespaces.create(&PostParams::default(), &meta).await.unwrap();
    // B may adopt (so the refusals below are the ownership rule, not the policy), nothing else.
    common::tenant_policy(&client, &b, json!({"allowAdoption": true})).await;

    let fake = common::arm_fake().await;
    let hubs = || Some(common::event_hubs_config(&fake, SUBSCRIPTION, "tenants"));
    let controller_a = common::start_controller_with(&client, &a, &aws, hubs()).await;
    let controller_b = common::start_controller_with(&client, &b, &aws, hubs()).await;

    // A's resources.
    let hub_namespace = common::unique("tenant-hubs");
    let stream = format!(
        "  provider: azure\n  azure:\n    namespace: {hub_namespace}\n    createNamespace: true\n    location: westeurope\n    partitions: 2\n"
    );
    common::create_yaml(
        &client,
        &a,
        &yaml("Queue", "orders", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    common::create_yaml(
        &client,
        &a,
        &yaml("Topic", "events", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    common::create_yaml(&client, &a, &yaml("DeviceStream", "telemetry", &stream)).await;
    let queue = common::wait_reason(&client, &a, "Queue", "orders", "Available", CONVERGE).await;
    let queue_url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    let topic = common::wait_reason(&client, &a, "Topic", "events", "Available", CONVERGE).await;
    let topic_arn = topic.data["status"]["arn"].as_str().unwrap().to_owned();
    let hub = common::wait_reason(&client, &a, "DeviceStream", "telemetry", "Available", CONVERGE).await;
    let hub_name = hub.data["status"]["hubName"].as_str().unwrap().to_owned();
    let hub_id = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/tenants/providers/Microsoft.EventHub/namespaces/{hub_namespace}/eventhubs/{hub_name}"
    );
    let table = format!("{a}-orders");
    tributary::cloud::Tables::ensure_table(&tributary::cloud::aws::AwsCloud::new(&aws), &table)
        .await
        .unwrap();
    let item = HashMap::from([
        (
            "pk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER#a-1".into()),
        ),
        (
            "sk".to_owned(),
            aws_sdk_dynamodb::types::AttributeValue::S("ORDER".into()),
        ),
    ]);
    dynamodb
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("a's message")
        .send()
        .await
        .unwrap();
    let before = (
        queue_tags(&sqs, &queue_url).await,
        topic_tags(&sns, &topic_arn).await,
        fake.resource(&hub_id).unwrap()["properties"]["userMetadata"].clone(),
    );
    assert_eq!(before.0["tributary.dev/namespace"], a.as_str());
    assert_eq!(before.0["tributary.dev/cluster"], common::TEST_CLUSTER);

    // B's attempts, all at once.
    let queue_name = tributary::cloud::names::last_segment(&queue_url)
        .unwrap()
        .to_owned();
    let topic_name = tributary::cloud::names::last_segment(&topic_arn)
        .unwrap()
        .to_owned();
    let adopt =
        |field: &str, name: &str| format!("  provider: aws\n  adopt: true\n  aws: {{{field}: {name}}}\n");
    common::create_yaml(
        &client,
        &b,
        &yaml("Queue", "steal-queue", &adopt("name", &queue_name)),
    )
    .await;
    common::create_yaml(
        &client,
        &b,
        &yaml("Topic", "steal-topic", &adopt("name", &topic_name)),
    )
    .await;
    let steal_hub = format!(
        "  provider: azure\n  adopt: true\n  azure:\n    namespace: {hub_namespace}\n    hubName: {hub_name}\n    partitions: 2\n"
    );
    common::create_yaml(&client, &b, &yaml("DeviceStream", "steal-hub", &steal_hub)).await;
    let elsewhere = format!(
        "  provider: azure\n  azure:\n    subscriptionId: 00000000-0000-0000-0000-0000000000b2\n    resourceGroup: a-team\n    namespace: {hub_namespace}\n    partitions: 2\n"
    );
    common::create_yaml(&client, &b, &yaml("DeviceStream", "elsewhere", &elsewhere)).await;
    common::create_yaml(&client, &b, &yaml("Queue", "own", "  provider: aws\n  aws: {}\n")).await;
    common::create_yaml(
        &client,
        &b,
        &yaml("Queue", "a-orders", "  provider: aws\n  aws: {}\n"),
    )
    .await;
    let sink = format!(
        "  source: {{queueRef: {{name: own}}}}\n  processor: notification\n  sink: {{table: {table}}}\n"
    );
    common::create_yaml(&client, &b, &yaml("Consumer", "thief", &sink)).await;
    let image = "  source: {queueRef: {name: own}}\n  container: {image: evil.example.com/miner:1}\n";
    common::create_yaml(&client, &b, &yaml("Consumer", "miner", image)).await;
    let squatted: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "squat-worker"}, "data": {"owner": "someone else"}
    }))
    .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &b);
    config_maps
        .create(&PostParams::default(), &squatted)
        .await
        .unwrap();
    let squat = "  source: {queueRef: {name: own}}\n  processor: notification\n";
    common::create_yaml(&client, &b, &yaml("Consumer", "squat", squat)).await;

    let owner_a = |kind: &str, name: &str| format!("{kind} {a}/{name} of cluster {}", common::TEST_CLUSTER);
    refused(
        &client,
        &b,
        "Queue",
        "steal-queue",
        "OwnedByAnother",
        &owner_a("Queue", "orders"),
    )
    .await;
    refused(
        &client,
        &b,
        "Topic",
        "steal-topic",
        "OwnedByAnother",
        &owner_a("Topic", "events"),
    )
    .await;
    let hub_owner = owner_a("DeviceStream", "telemetry");
    refused(
        &client,
        &b,
        "DeviceStream",
        "steal-hub",
        "OwnedByAnother",
        &hub_owner,
    )
    .await;
    let field = "spec.azure.subscriptionId/resourceGroup";
    refused(&client, &b, "DeviceStream", "elsewhere", "Forbidden", field).await;
    refused(
        &client,
        &b,
        "Consumer",
        "thief",
        "Forbidden",
        &format!("spec.sink.table: \"{table}\""),
    )
    .await;
    refused(
        &client,
        &b,
        "Consumer",
        "miner",
        "Forbidden",
        "spec.container.image: \"evil.example.com/miner:1\"",
    )
    .await;
    let conflict = format!("ConfigMap {b}/squat-worker exists");
    refused(&client, &b, "Consumer", "squat", "ChildConflict", &conflict).await;

    // The name that collided under `<namespace>-<name>` is now B's own queue.
    let own = common::wait_reason(&client, &b, "Queue", "a-orders", "Available", CONVERGE).await;
    let own_url = own.data["status"]["url"].as_str().unwrap();
    assert_ne!(own_url, queue_url);
    assert!(own_url.ends_with(&format!("/{b}_a-orders")), "{own_url}");
    assert!(queue_url.ends_with(&format!("/{a}_orders")), "{queue_url}");
    println!(
        "DISTINCT Queue {b}/a-orders -> {own_url}; Queue {a}/orders -> {queue_url} (both were {b}-a-orders)"
    );

    // A's resources, tags and data untouched; the squatted ConfigMap too.
    let after = (
        queue_tags(&sqs, &queue_url).await,
        topic_tags(&sns, &topic_arn).await,
        fake.resource(&hub_id).unwrap()["properties"]["userMetadata"].clone(),
    );
    assert_eq!(after, before, "A's tags and marks");
    assert_eq!(visible_messages(&sqs, &queue_url).await, "1", "A's message");
    let items = dynamodb.scan().table_name(&table).send().await.unwrap();
    assert_eq!(items.count, 1, "A's table");
    let kept = config_maps.get("squat-worker").await.unwrap();
    assert_eq!(kept.data.unwrap()["owner"], "someone else");
    assert!(kept.metadata.owner_references.is_none());
    assert!(
        config_maps.get_opt("thief-worker").await.unwrap().is_none(),
        "nothing rendered"
    );

    // A policy change re-reconciles at once: a Forbidden object (which waits for a change of its own
    // spec otherwise) is admitted when the administrator allows its registry.
    let images = json!({"allowAdoption": true, "images": ["evil.example.com/*"]});
    common::tenant_policy(&client, &b, images).await;
    common::wait_reason(&client, &b, "Consumer", "miner", "Available", CONVERGE).await;
    println!("ADMITTED Consumer {b}/miner once TenantPolicy {b} listed evil.example.com/*");

    // Cleanup of what the test made outside the controllers.
    dynamodb.delete_table().table_name(&table).send().await.unwrap();
    controller_a.stop().await;
    controller_b.stop().await;
}
