//! The Subscription's apply and cleanup decisions against the AWS fake: subscribe with the filter policy,
//! write a drifted policy back once (and leave an equal one alone), Ready only once the Queue's policy lets
//! the Topic send, unsubscribe only from a queue that is still ours.

use serde_json::{Value, json};

use super::*;
use crate::{
    api::{Topic, common::QueueObservation, queue::QueueStatus, topic::TopicStatus},
    cloud::{Tags, Topics as _},
    controller::driver::{
        ownership::{TAG_NAME, ownership_tags},
        testing::{CLUSTER, Harness, NAMESPACE, object, with_status},
    },
};

/// The cloud ends of Topic `orders` and Queue `jobs`.
struct Ends {
    topic_arn: String,
    queue_arn: String,
    queue_url: String,
}

/// Topic `orders` and Queue `jobs` with their SNS topic and SQS queue (ours), in the stores; the Queue's
/// status lists `allowed` as the topics its policy lets send.
async fn ends(h: &mut Harness, allowed: bool) -> Ends {
    let topic_arn = h
        .cloud
        .create_topic("shop_orders", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let owner = Owner {
        cluster: CLUSTER,
        kind: "Queue",
        namespace: NAMESPACE,
        name: "jobs",
    };
    let queue_url = h
        .cloud
        .create_queue("shop_jobs", &Attributes::new(), &ownership_tags(&owner))
        .await
        .unwrap();
    let queue_arn = h.cloud.queue_attributes(&queue_url).await.unwrap()["QueueArn"].clone();
    let ends = Ends {
        topic_arn,
        queue_arn,
        queue_url,
    };
    store_ends(h, &ends, allowed);
    h.new_calls();
    ends
}

fn store_ends(h: &mut Harness, ends: &Ends, allowed: bool) {
    let mut topic: Topic = object("orders", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some(ends.topic_arn.clone()),
        ..TopicStatus::default()
    });
    h.store(topic);
    let mut queue: Queue = object("jobs", json!({"aws": {}}));
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(ends.queue_url.clone()),
            arn: Some(ends.queue_arn.clone()),
            ..QueueObservation::default()
        },
        allowed_topics: if allowed {
            vec![ends.topic_arn.clone()]
        } else {
            Vec::new()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
}

fn subscription(filter: Value) -> Subscription {
    object(
        "orders-to-jobs",
        json!({"topicRef": {"name": "orders"}, "queueRef": {"name": "jobs"}, "filter": {"policy": filter}}),
    )
}

#[tokio::test]
async fn subscribes_with_its_filter_and_is_ready_only_once_the_queue_policy_lists_the_topic() {
    let mut h = Harness::new();
    let ends = ends(&mut h, false).await;
    let s = subscription(json!({"event": ["OrderShipped", "OrderPlaced"]}));
    let applied = h.apply(&s).await.unwrap();
    let arn = applied.status.arn.clone().unwrap();
    assert_eq!(
        h.new_calls(),
        [
            format!("Subscribe {} {}", ends.topic_arn, ends.queue_arn),
            format!("GetSubscriptionAttributes {arn}"),
        ]
    );
    let observed = h.cloud.subscription_attributes(&arn).await.unwrap().unwrap();
    let canonical = applied.status.applied_filter_policy.clone().unwrap();
    assert_eq!(observed["FilterPolicy"], canonical);
    assert_eq!(observed["RawMessageDelivery"], "true");
    assert_eq!(applied.not_ready.unwrap().reason, QUEUE_POLICY_PENDING);
    assert_eq!(h.api.event_reasons(), ["Created"]);

    // The Queue wrote its policy and read it back: Ready, without asking the cloud again.
    store_ends(&mut h, &ends, true);
    h.new_calls();
    let applied = h.apply(&with_status(&s, applied.status)).await.unwrap();
    assert!(applied.not_ready.is_none());
    assert!(h.new_calls().is_empty());
}

#[tokio::test]
async fn a_drifted_filter_is_written_back_once_and_an_equal_one_is_left_alone() {
    let mut h = Harness::new();
    ends(&mut h, true).await;
    let s = subscription(json!({"event": ["OrderPlaced", "OrderShipped"]}));
    let status = h.apply(&s).await.unwrap().status;
    let arn = status.arn.clone().unwrap();
    let s = with_status(&s, status);
    h.cloud
        .set_subscription_attribute(&arn, "FilterPolicy", r#"{"event":["Other"]}"#)
        .await
        .unwrap();
    h.new_calls();

    h.resync(&s);
    h.apply(&s).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [
            format!("GetSubscriptionAttributes {arn}"),
            format!("SetSubscriptionAttributes {arn} FilterPolicy"),
            format!("GetSubscriptionAttributes {arn}"),
        ]
    );
    assert_eq!(h.api.event_reasons(), ["Created", "DriftCorrected"]);
    // No loop: the next check writes nothing, nor for the same policy spelled otherwise.
    h.resync(&s);
    h.apply(&s).await.unwrap();
    assert_eq!(h.new_calls(), [format!("GetSubscriptionAttributes {arn}")]);
    h.cloud
        .set_subscription_attribute(
            &arn,
            "FilterPolicy",
            r#"{"event": ["OrderShipped", "OrderPlaced"]}"#,
        )
        .await
        .unwrap();
    h.resync(&s);
    h.new_calls();
    h.apply(&s).await.unwrap();
    assert_eq!(h.new_calls(), [format!("GetSubscriptionAttributes {arn}")]);
    assert_eq!(h.api.event_reasons().len(), 2);
}

#[tokio::test]
async fn without_a_topic_arn_it_waits_and_calls_nothing() {
    let mut h = Harness::new();
    let s = subscription(json!({"event": ["OrderPlaced"]}));
    let missing = h.apply(&s).await.unwrap_err();
    assert_eq!(missing.reason(), "DependencyNotReady");
    assert!(
        missing
            .condition_message()
            .contains("Topic orders does not exist"),
        "{missing}"
    );
    h.store(object::<Topic>("orders", json!({"aws": {}})));
    h.store(object::<Queue>("jobs", json!({"aws": {}})));
    let no_arn = h.apply(&s).await.unwrap_err();
    assert!(no_arn.condition_message().contains("no SNS ARN yet"), "{no_arn}");
    assert!(h.cloud.calls().is_empty());
}

#[tokio::test]
async fn cleanup_unsubscribes_only_from_a_queue_still_ours() {
    let mut h = Harness::new();
    let ends = ends(&mut h, true).await;
    let s = subscription(json!({"event": ["OrderPlaced"]}));
    let s = with_status(&s, h.apply(&s).await.unwrap().status);
    let arn = s.status.as_ref().and_then(|s| s.arn.clone()).unwrap();

    let theirs = Tags::from([(TAG_NAME.to_owned(), "someone-else".to_owned())]);
    h.cloud.tag_queue(&ends.queue_url, &theirs).await.unwrap();
    h.cleanup(&s).await.unwrap();
    assert!(
        h.cloud.subscription_attributes(&arn).await.unwrap().is_some(),
        "kept"
    );
    assert_eq!(
        h.api.event_reasons().last().map(String::as_str),
        Some("OwnershipLost")
    );

    let ours = Tags::from([(TAG_NAME.to_owned(), "jobs".to_owned())]);
    h.cloud.tag_queue(&ends.queue_url, &ours).await.unwrap();
    h.cleanup(&s).await.unwrap();
    assert!(
        h.cloud.subscription_attributes(&arn).await.unwrap().is_none(),
        "unsubscribed"
    );
    assert_eq!(h.api.event_reasons().last().map(String::as_str), Some("Deleted"));
}
