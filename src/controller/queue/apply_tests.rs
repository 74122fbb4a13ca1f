//! The Queue's apply and cleanup decisions against the AWS fake: the queue policy from the Subscriptions'
//! Topics (at creation, or added later), the redrive policy from the DeadLetter, the verified cache, and
//! the shared SQS queue code's refusals and deletes.

use serde_json::{Value, json};

use super::*;
use crate::{
    api::{DeadLetter, dead_letter::DeadLetterStatus, topic::TopicStatus},
    cloud::{Tags, Topics as _},
    controller::driver::{
        ownership::{Owner, ownership_tags},
        testing::{CLUSTER, Harness, NAMESPACE, object, with_status},
    },
};

/// The SQS queue name of Queue `shop/jobs`.
const NAME: &str = "shop_jobs";

fn queue(spec: Value) -> Queue {
    object("jobs", spec)
}

/// Topic `orders` with its SNS topic, and a Subscription of Queue `jobs` to it; the topic's ARN.
async fn subscribed_topic(h: &mut Harness) -> String {
    let arn = h
        .cloud
        .create_topic("shop_orders", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let mut topic: Topic = object("orders", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some(arn.clone()),
        ..TopicStatus::default()
    });
    h.store(topic);
    h.store(object::<Subscription>(
        "orders-to-jobs",
        json!({"topicRef": {"name": "orders"}, "queueRef": {"name": "jobs"}}),
    ));
    arn
}

#[tokio::test]
async fn a_queue_is_created_with_its_policy_when_its_topics_have_arns() {
    let mut h = Harness::new();
    let topic_arn = subscribed_topic(&mut h).await;
    h.new_calls();
    let applied = h.apply(&queue(json!({"aws": {}}))).await.unwrap();
    let url = applied.status.observed.url.clone().unwrap();
    assert_eq!(
        h.new_calls(),
        [
            format!("GetQueueUrl {NAME}"),
            format!("CreateQueue {NAME}"),
            format!("GetQueueAttributes {url}"),
        ],
        "created with its policy: nothing to set afterwards"
    );
    assert_eq!(applied.status.allowed_topics, std::slice::from_ref(&topic_arn));
    let policy = h.cloud.queue_attributes(&url).await.unwrap()[names::POLICY].clone();
    assert_eq!(attributes::allowed_topics(&policy), [topic_arn]);
    assert_eq!(h.api.event_reasons(), ["Created"]);
}

#[tokio::test]
async fn the_policy_is_added_when_a_subscription_appears_without_an_event() {
    let mut h = Harness::new();
    let first = queue(json!({"aws": {}}));
    let status = h.apply(&first).await.unwrap().status;
    assert!(status.allowed_topics.is_empty());
    let url = status.observed.url.clone().unwrap();
    let topic_arn = subscribed_topic(&mut h).await;
    h.new_calls();
    let applied = h.apply(&with_status(&first, status)).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [
            format!("SetQueueAttributes {url}"),
            format!("GetQueueAttributes {url}")
        ],
        "only the policy is set and read back"
    );
    assert_eq!(applied.status.allowed_topics, [topic_arn]);
    assert_eq!(
        h.api.event_reasons(),
        ["Created"],
        "the Subscription's news, not the Queue's"
    );
}

#[tokio::test]
async fn the_redrive_policy_names_the_dead_letter_once_it_has_an_arn() {
    let mut h = Harness::new();
    let jobs = queue(json!({"aws": {}, "deadLetter": {"ref": {"name": "dlq"}, "maxReceiveCount": 3}}));
    let missing = h.apply(&jobs).await.unwrap_err();
    assert_eq!(missing.reason(), "DependencyNotReady");
    let mut dead_letter: DeadLetter = object("dlq", json!({"aws": {}}));
    h.store(dead_letter.clone());
    let no_arn = h.apply(&jobs).await.unwrap_err();
    assert!(no_arn.condition_message().contains("no SQS ARN yet"), "{no_arn}");
    assert!(h.new_calls().is_empty(), "no cloud call while waiting");

    let dead_url = h
        .cloud
        .create_queue("shop_dlq", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let dead_arn = h.cloud.queue_attributes(&dead_url).await.unwrap()[names::QUEUE_ARN].clone();
    dead_letter.status = Some(DeadLetterStatus {
        observed: QueueObservation {
            url: Some(dead_url.clone()),
            arn: Some(dead_arn.clone()),
            ..QueueObservation::default()
        },
        ..DeadLetterStatus::default()
    });
    h.store(dead_letter);
    let applied = h.apply(&jobs).await.unwrap();
    let url = applied.status.observed.url.unwrap();
    let attributes = h.cloud.queue_attributes(&url).await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(&attributes[names::REDRIVE_POLICY]).unwrap();
    assert_eq!(
        policy,
        json!({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 3})
    );
    assert_eq!(h.cloud.dead_letter_sources(&dead_url).await.unwrap(), [url]);
}

#[tokio::test]
async fn within_the_resync_period_a_verified_queue_is_not_asked_again_but_a_spec_change_is_applied() {
    let h = Harness::new();
    let jobs = queue(json!({"aws": {}}));
    let status = h.apply(&jobs).await.unwrap().status;
    let url = status.observed.url.clone().unwrap();
    let jobs = with_status(&jobs, status);
    h.new_calls();
    let again = h.apply(&jobs).await.unwrap();
    assert!(h.new_calls().is_empty(), "no cloud call");
    let next = again.requeue.unwrap();
    assert!(next <= h.ctx.config.resync && next > h.ctx.config.resync - Duration::from_secs(10));

    let mut changed = jobs.clone();
    changed.spec.aws.as_mut().unwrap().visibility_timeout_seconds = 120;
    changed.metadata.generation = Some(2);
    h.apply(&changed).await.unwrap();
    let calls = h.new_calls();
    assert!(calls.contains(&format!("SetQueueAttributes {url}")), "{calls:?}");
    assert_eq!(
        h.cloud.queue_attributes(&url).await.unwrap()[names::VISIBILITY_TIMEOUT],
        "120"
    );
    assert_eq!(
        h.api.event_reasons(),
        ["Created", "Updated"],
        "a spec change, not drift"
    );
}

#[tokio::test]
async fn a_queue_of_another_owner_is_refused_and_never_deleted() {
    let h = Harness::new();
    let theirs = ownership_tags(&Owner {
        cluster: CLUSTER,
        kind: "Queue",
        namespace: NAMESPACE,
        name: "other",
    });
    let url = h
        .cloud
        .create_queue(NAME, &Attributes::new(), &theirs)
        .await
        .unwrap();
    let jobs = queue(json!({"aws": {}}));
    let refused = h.apply(&jobs).await.unwrap_err();
    assert_eq!(refused.reason(), "OwnedByAnother");
    assert!(
        refused.condition_message().contains("Queue shop/other"),
        "{refused}"
    );
    h.cleanup(&jobs).await.unwrap();
    assert!(h.cloud.queue_tags(&url).await.is_ok(), "kept");
    assert_eq!(h.api.event_reasons(), ["OwnershipLost"]);
}

#[tokio::test]
async fn deletion_keeps_a_retained_queue_and_deletes_our_own() {
    let h = Harness::new();
    let retained = queue(json!({"aws": {}, "deletionPolicy": "Retain"}));
    let status = h.apply(&retained).await.unwrap().status;
    let url = status.observed.url.clone().unwrap();
    h.cleanup(&with_status(&retained, status.clone())).await.unwrap();
    assert!(h.cloud.queue_tags(&url).await.is_ok(), "kept");

    let deleted = with_status(&queue(json!({"aws": {}})), status);
    h.new_calls();
    h.cleanup(&deleted).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [format!("ListQueueTags {url}"), format!("DeleteQueue {url}")]
    );
    assert_eq!(h.api.event_reasons(), ["Created", "Retained", "Deleted"]);
}
