//! The Topic's apply and cleanup decisions against the AWS fake: create, adopt, refuse, correct drift,
//! delete or keep.

use serde_json::{Value, json};

use super::*;
use crate::controller::driver::{
    ownership::{Owner, ownership_tags},
    testing::{CLUSTER, Harness, NAMESPACE, object, with_status},
};

/// The SNS topic name of Topic `shop/orders`.
const NAME: &str = "shop_orders";

fn topic(spec: Value) -> Topic {
    object("orders", spec)
}

/// The ownership tags of Topic `shop/orders` in this cluster.
fn ours() -> Tags {
    ownership_tags(&Owner {
        cluster: CLUSTER,
        kind: "Topic",
        namespace: NAMESPACE,
        name: "orders",
    })
}

/// `topic` as the watch brings it back after a reconcile that applied `status`: in sync.

#[tokio::test]
async fn a_new_topic_is_created_with_its_attributes_and_ownership_tags_in_one_call() {
    let h = Harness::new();
    let topic = topic(json!({"aws": {"displayName": "Orders"}, "tags": {"team": "shop"}}));
    let applied = h.apply(&topic).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [format!("FindTopic {NAME}"), format!("CreateTopic {NAME}")]
    );
    let arn = applied.status.arn.clone().unwrap();
    assert_eq!(applied.status.subscriptions_confirmed, Some(0));
    assert_eq!(
        h.cloud.topic_attributes(&arn).await.unwrap()["DisplayName"],
        "Orders"
    );
    let tags = h.cloud.topic_tags(&arn).await.unwrap();
    assert_eq!(tags["team"], "shop");
    assert!(
        ours().iter().all(|(key, value)| tags.get(key) == Some(value)),
        "{tags:?}"
    );
    assert_eq!(h.api.event_reasons(), ["Created"]);
    assert!(applied.not_ready.is_none());
}

#[tokio::test]
async fn a_topic_tagged_as_ours_is_taken_without_a_create_and_its_tags_brought_in_line() {
    let h = Harness::new();
    let mut tags = ours();
    tags.insert("stale".into(), "x".into());
    let arn = h
        .cloud
        .create_topic(NAME, &Attributes::new(), &tags)
        .await
        .unwrap();
    h.new_calls();
    let applied = h.apply(&topic(json!({"aws": {}}))).await.unwrap();
    assert_eq!(applied.status.arn.as_deref(), Some(arn.as_str()));
    assert_eq!(
        h.new_calls(),
        [
            format!("FindTopic {NAME}"),
            format!("ListTagsForResource {arn}"),
            format!("TagResource {arn}"),
            format!("UntagResource {arn}"),
        ]
    );
    let tags = h.cloud.topic_tags(&arn).await.unwrap();
    assert!(
        !tags.contains_key("stale"),
        "the spec is the whole truth of the tags"
    );
    assert!(h.api.event_reasons().is_empty(), "nothing to announce");
}

#[tokio::test]
async fn an_untagged_topic_is_adopted_only_when_asked_and_allowed() {
    let h = Harness::new();
    let arn = h
        .cloud
        .create_topic(NAME, &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let refused = h.apply(&topic(json!({"aws": {}}))).await.unwrap_err();
    assert_eq!(refused.reason(), "AlreadyExists");
    let adopt = topic(json!({"aws": {}, "adopt": true}));
    let forbidden = h.apply(&adopt).await.unwrap_err();
    assert_eq!(forbidden.reason(), "Forbidden", "{forbidden}");
    assert!(h.cloud.topic_tags(&arn).await.unwrap().is_empty(), "untouched");

    h.allow_adoption();
    let applied = h.apply(&adopt).await.unwrap();
    assert_eq!(applied.status.arn.as_deref(), Some(arn.as_str()));
    let tags = h.cloud.topic_tags(&arn).await.unwrap();
    assert!(
        ours().iter().all(|(key, value)| tags.get(key) == Some(value)),
        "{tags:?}"
    );
    assert_eq!(h.api.event_reasons(), ["Adopted"]);
}

#[tokio::test]
async fn a_topic_of_another_owner_is_refused_and_left_alone() {
    let h = Harness::new();
    let theirs = ownership_tags(&Owner {
        cluster: "other-cluster",
        kind: "Topic",
        namespace: NAMESPACE,
        name: "orders",
    });
    let arn = h
        .cloud
        .create_topic(NAME, &Attributes::new(), &theirs)
        .await
        .unwrap();
    h.allow_adoption();
    h.new_calls();
    let refused = h
        .apply(&topic(json!({"aws": {}, "adopt": true})))
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "OwnedByAnother");
    assert_eq!(refused.class(), crate::controller::driver::error::Class::Recheck);
    assert!(
        refused.condition_message().contains("of cluster other-cluster"),
        "{refused}"
    );
    assert_eq!(
        h.new_calls(),
        [format!("FindTopic {NAME}"), format!("ListTagsForResource {arn}")],
        "no tag, no create"
    );
    assert_eq!(h.cloud.topic_tags(&arn).await.unwrap(), theirs);
}

#[tokio::test]
async fn drift_is_set_back_once_with_an_event_and_then_left_in_peace() {
    let h = Harness::new();
    let topic = topic(json!({"aws": {"displayName": "Orders"}}));
    let status = h.apply(&topic).await.unwrap().status;
    let arn = status.arn.clone().unwrap();
    let topic = with_status(&topic, status);
    h.cloud
        .set_topic_attribute(&arn, "DisplayName", "Changed by hand")
        .await
        .unwrap();
    h.new_calls();

    // Within the resync period nothing is asked.
    h.apply(&topic).await.unwrap();
    assert!(h.new_calls().is_empty());
    // At the resync the drift is found and set back.
    h.resync(&topic);
    h.apply(&topic).await.unwrap();
    let calls = h.new_calls();
    assert!(
        calls.contains(&format!("SetTopicAttributes {arn} DisplayName")),
        "{calls:?}"
    );
    assert_eq!(
        h.cloud.topic_attributes(&arn).await.unwrap()["DisplayName"],
        "Orders"
    );
    assert_eq!(h.api.event_reasons(), ["Created", "DriftCorrected"]);
    // In sync: the next check sets nothing.
    h.resync(&topic);
    h.new_calls();
    h.apply(&topic).await.unwrap();
    let calls = h.new_calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("SetTopicAttributes")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn an_immutable_difference_is_refused_not_set() {
    let h = Harness::new();
    let fifo = attributes::topic_attributes(&TopicAws {
        fifo: true,
        ..TopicAws::default()
    });
    h.cloud.create_topic(NAME, &fifo, &ours()).await.unwrap();
    let refused = h.apply(&topic(json!({"aws": {}}))).await.unwrap_err();
    assert_eq!(refused.reason(), "ImmutableChange");
    assert!(!h.new_calls().iter().any(|c| c.starts_with("SetTopicAttributes")));
}

#[tokio::test]
async fn deletion_keeps_a_retained_topic_and_deletes_only_what_is_still_ours() {
    let h = Harness::new();
    let retained = topic(json!({"aws": {}, "deletionPolicy": "Retain"}));
    let status = h.apply(&retained).await.unwrap().status;
    let arn = status.arn.clone().unwrap();
    h.cleanup(&with_status(&retained, status.clone())).await.unwrap();
    assert!(h.cloud.topic_attributes(&arn).await.is_ok(), "kept");
    assert_eq!(h.api.event_reasons(), ["Created", "Retained"]);

    // Retagged by someone else since: kept, with a Warning.
    let deleted = with_status(&topic(json!({"aws": {}})), status);
    let theirs = Tags::from([(
        crate::controller::driver::ownership::TAG_NAME.to_owned(),
        "someone-else".to_owned(),
    )]);
    h.cloud.tag_topic(&arn, &theirs).await.unwrap();
    h.cleanup(&deleted).await.unwrap();
    assert!(h.cloud.topic_attributes(&arn).await.is_ok(), "not ours any more");
    assert_eq!(
        h.api.event_reasons().last().map(String::as_str),
        Some("OwnershipLost")
    );

    h.cloud.tag_topic(&arn, &ours()).await.unwrap();
    h.new_calls();
    h.cleanup(&deleted).await.unwrap();
    assert_eq!(
        h.new_calls(),
        [format!("ListTagsForResource {arn}"), format!("DeleteTopic {arn}")],
        "ownership read again right before the delete"
    );
    assert!(h.cloud.topic_attributes(&arn).await.unwrap_err().is_not_found());
    assert_eq!(h.api.event_reasons().last().map(String::as_str), Some("Deleted"));
    // Gone already: nothing to do.
    h.cleanup(&deleted).await.unwrap();
}
