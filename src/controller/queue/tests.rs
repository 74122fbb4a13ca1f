//! Pure tests of the Queue reconciler's validate and build steps.

use serde_json::json;

use super::*;
use crate::api::{common::ObjectRef, queue::QueueSpec, subscription::SubscriptionSpec, topic::TopicStatus};

fn queue_aws(fifo: bool) -> QueueAws {
    QueueAws {
        fifo,
        visibility_timeout_seconds: 60,
        message_retention_seconds: 345_600,
        receive_wait_time_seconds: 20,
        maximum_message_size_bytes: 262_144,
        ..QueueAws::default()
    }
}

fn subscription(name: &str, topic: &str, queue: &str) -> Subscription {
    Subscription::new(
        name,
        SubscriptionSpec {
            topic_ref: ObjectRef { name: topic.into() },
            queue_ref: ObjectRef { name: queue.into() },
            ..SubscriptionSpec::default()
        },
    )
}

fn topic(name: &str, arn: Option<&str>) -> Topic {
    let mut topic = Topic::new(name, Default::default());
    topic.status = arn.map(|arn| TopicStatus {
        arn: Some(arn.into()),
        ..TopicStatus::default()
    });
    topic
}

#[test]
fn only_topics_with_a_live_subscription_to_this_queue_and_an_arn_may_send() {
    let mut deleting = subscription("d", "gone", "q");
    deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    let subscriptions = [
        subscription("a", "orders", "q"),
        subscription("b", "orders", "q"),
        subscription("c", "returns", "q"),
        subscription("e", "pending", "q"),
        subscription("f", "other", "elsewhere"),
        deleting,
    ];
    let topics = [
        topic("orders", Some("arn:aws:sns:us-east-1:1:orders")),
        topic("returns", Some("arn:aws:sns:us-east-1:1:returns")),
        topic("pending", None),
        topic("other", Some("arn:aws:sns:us-east-1:1:other")),
        topic("gone", Some("arn:aws:sns:us-east-1:1:gone")),
    ];
    assert_eq!(
        subscribed_topic_arns("q", &subscriptions, &topics),
        [
            "arn:aws:sns:us-east-1:1:orders",
            "arn:aws:sns:us-east-1:1:returns"
        ]
    );
}

#[test]
fn desired_attributes_carry_the_redrive_and_the_policy() {
    let target = RedriveTarget {
        dead_letter_arn: "arn:aws:sqs:us-east-1:1:dlq".into(),
        max_receive_count: 5,
    };
    let topics = vec!["arn:aws:sns:us-east-1:1:orders".to_owned()];
    let desired = desired_attributes(
        &queue_aws(false),
        Some(&target),
        "arn:aws:sqs:us-east-1:1:q",
        &topics,
    );
    let redrive: serde_json::Value = serde_json::from_str(&desired["RedrivePolicy"]).unwrap();
    assert_eq!(
        redrive,
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 5})
    );
    let policy: serde_json::Value = serde_json::from_str(&desired["Policy"]).unwrap();
    assert_eq!(
        policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!(["arn:aws:sns:us-east-1:1:orders"])
    );
    assert_eq!(desired["VisibilityTimeout"], "60");
    let no_topics = desired_attributes(&queue_aws(false), None, "arn:q", &[]);
    assert_eq!(no_topics["Policy"], "");
    assert_eq!(no_topics["RedrivePolicy"], "");
}

#[test]
fn the_queue_name_defaults_to_namespace_underscore_name_unless_one_is_recorded() {
    let mut queue = Queue::new("inventory", QueueSpec::default());
    queue.metadata.namespace = Some("shop".into());
    assert_eq!(queue_name(&queue, &queue_aws(false)), "shop_inventory");
    assert_eq!(queue_name(&queue, &queue_aws(true)), "shop_inventory.fifo");
    // A queue created under the old default keeps its name.
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some("http://127.0.0.1:4566/000000000000/shop-inventory".into()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    assert_eq!(queue_name(&queue, &queue_aws(false)), "shop-inventory");
}

#[test]
fn a_new_queue_no_subscription_names_waits_only_what_is_left_of_the_settle() {
    let settle = Duration::from_secs(2);
    assert_eq!(
        settle_left(Some(SignedDuration::from_millis(500)), settle),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        settle_left(Some(SignedDuration::from_secs(2)), settle),
        None,
        "settled"
    );
    assert_eq!(
        settle_left(Some(SignedDuration::from_secs(9)), settle),
        None,
        "older"
    );
    assert_eq!(settle_left(None, settle), None, "no creation time: no wait");
    // A clock behind the API server's makes the age negative: no wait.
    assert_eq!(settle_left(Some(SignedDuration::from_secs(-3)), settle), None);
    assert_eq!(
        settle_left(Some(SignedDuration::from_millis(100)), Duration::ZERO),
        None,
        "quiet start off"
    );
}
