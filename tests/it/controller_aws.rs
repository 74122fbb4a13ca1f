//! The AWS controllers on the test bed and moto, running in this process (`common::start_controller`,
//! one namespace each, 3 s resync): the order example is applied and every cloud attribute checked
//! through the AWS SDK, orders are routed by the filters, a filter change changes delivery, deletion
//! honours `deletionPolicy`, existing queues are adopted or refused, drift is corrected, a restarted
//! controller converges without duplicates, a moto outage is reported and recovered from, and a
//! DeadLetter redrive moves messages back (message-move task on ElasticMQ, the fallback on moto).
#![allow(clippy::unwrap_used)]

mod lifecycle;
mod orders;
mod readiness;
mod redrive;
mod resilience;

use crate::support as common;

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_sqs::types::QueueAttributeName;
use kube::api::DynamicObject;

/// How long a test waits for the controller to converge.
const CONVERGE: Duration = Duration::from_secs(45);

/// The order example without its Consumers (tests/it/controller_consumer.rs runs those), as one YAML text.
fn order_example() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/orders");
    [
        "00-topic.yaml",
        "01-dead-letter.yaml",
        "02-queue-inventory.yaml",
        "02-queue-notifications.yaml",
        "02-queue-shipments.yaml",
        "03-subscriptions.yaml",
    ]
    .iter()
    .map(|file| std::fs::read_to_string(dir.join(file)).unwrap())
    .collect::<Vec<_>>()
    .join("\n---\n")
}

/// The objects of the order example: (kind, name).
const ORDER_OBJECTS: &[(&str, &str)] = &[
    ("Topic", "orders"),
    ("DeadLetter", "orders-dlq"),
    ("Queue", "inventory"),
    ("Queue", "notifications"),
    ("Queue", "shipments"),
    ("Subscription", "orders-to-notifications"),
    ("Subscription", "orders-to-inventory"),
    ("Subscription", "orders-to-shipments"),
];

/// Waits until every object of the order example is Ready=True and returns them by name.
async fn wait_orders_ready(client: &kube::Client, namespace: &str) -> BTreeMap<String, DynamicObject> {
    let mut objects = BTreeMap::new();
    for (kind, name) in ORDER_OBJECTS {
        let object = common::wait_reason(client, namespace, kind, name, "Available", CONVERGE).await;
        objects.insert((*name).to_owned(), object);
    }
    objects
}

/// A status field of an object, as text.
fn status_str(object: &DynamicObject, field: &str) -> String {
    object.data["status"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no status.{field} in {:?}", object.data["status"]))
        .to_owned()
}

/// Every attribute of an SQS queue.
async fn queue_attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeMap<String, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

/// The SNS subscriptions of a topic.
async fn topic_subscriptions(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> Vec<aws_sdk_sns::types::Subscription> {
    sns.list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .unwrap()
        .subscriptions
        .unwrap_or_default()
}

/// Receives and deletes everything in a queue until it stays empty for a second; returns the bodies,
/// sorted.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = common::receive_all(sqs, url).await;
    bodies.sort();
    bodies
}

use common::{has_event, queue_tags, topic_tags};
