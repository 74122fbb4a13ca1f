//! The relay's apply and cleanup decisions (a Subscription to a Queue on azure) against the AWS fake: the
//! relay queue created as the Subscription's with the Topic-only policy and 14 days of retention, an
//! unfiltered raw-envelope SNS subscription to it, the relay's worker objects owned by the Subscription
//! with the account key only as a Secret reference; a relay queue of another owner refused; cleanup
//! deleting only a relay queue still ours, and none with `Retain`.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use serde_json::{Value, json};

use super::{relay::relay_queue_name, *};
use crate::{
    api::{Topic, common::QueueObservation, queue::QueueStatus, topic::TopicStatus},
    cloud::{Tags, Topics as _},
    controller::driver::{
        ownership::ownership_tags,
        testing::{CLUSTER, Harness, NAMESPACE, object, path, with_status},
    },
};

const STORAGE_URL: &str = "https://acct.queue.fake/shop-jobs";
const RELAY: &str = "orders-to-jobs-relay";

/// Topic `orders` (its SNS topic made) and Queue `jobs` on azure with its Storage Queue, in the stores;
/// the topic's ARN.
async fn ends(h: &mut Harness, key: bool) -> String {
    let topic_arn = h
        .cloud
        .create_topic("shop_orders", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let mut topic: Topic = object("orders", json!({"aws": {}}));
    topic.status = Some(TopicStatus {
        arn: Some(topic_arn.clone()),
        ..TopicStatus::default()
    });
    h.store(topic);
    let mut azure = json!({"storageAccount": "acct", "name": "shop-jobs"});
    if key {
        azure["accountKeySecretRef"] = json!({"name": "acct-key", "key": "key"});
    }
    let mut queue: Queue = object("jobs", json!({"provider": "azure", "azure": azure}));
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(STORAGE_URL.to_owned()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
    h.new_calls();
    topic_arn
}

fn subscription(extra: Value) -> Subscription {
    let mut spec = json!({"topicRef": {"name": "orders"}, "queueRef": {"name": "jobs"},
                          "filter": {"policy": {"event": ["OrderShipped"]}}});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    object("orders-to-jobs", spec)
}

/// The paths of the children patched (server-side applied) so far, oldest first (Events left out).
fn patched_paths(h: &Harness) -> Vec<String> {
    h.api
        .sent()
        .into_iter()
        .filter(|s| s.method == ::http::Method::PATCH && !s.path.contains("/events/"))
        .map(|s| s.path)
        .collect()
}

#[tokio::test]
async fn the_relay_gets_its_queue_an_unfiltered_subscription_and_its_worker_objects() {
    let mut h = Harness::new();
    let topic_arn = ends(&mut h, true).await;
    let s = subscription(json!({}));
    let applied = h.apply(&s).await.unwrap();

    let relay_url = applied.status.relay_queue_url.clone().unwrap();
    assert_eq!(
        h.cloud.find_queue(&relay_queue_name(&s)).await.unwrap(),
        Some(relay_url.clone())
    );
    let attributes = h.cloud.queue_attributes(&relay_url).await.unwrap();
    assert_eq!(
        attributes["MessageRetentionPeriod"], "1209600",
        "14 days while Azure is away"
    );
    let allowed = crate::cloud::aws::attributes::allowed_topics(&attributes["Policy"]);
    assert_eq!(allowed, [topic_arn], "only the Topic may send");
    let owner = Owner {
        cluster: CLUSTER,
        kind: "Subscription",
        namespace: NAMESPACE,
        name: "orders-to-jobs",
    };
    let tags: BTreeMap<_, _> = h
        .cloud
        .queue_tags(&relay_url)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (key, value) in ownership_tags(&owner) {
        assert_eq!(tags.get(&key), Some(&value), "tag {key}");
    }

    let arn = applied.status.arn.clone().unwrap();
    let observed = h.cloud.subscription_attributes(&arn).await.unwrap().unwrap();
    assert!(
        observed.get("FilterPolicy").is_none_or(String::is_empty),
        "the relay filters, not SNS: {observed:?}"
    );
    assert_ne!(
        observed.get("RawMessageDelivery").map(String::as_str),
        Some("true"),
        "the envelope carries every attribute with its type"
    );
    assert!(
        applied
            .status
            .applied_filter_policy
            .unwrap()
            .contains("OrderShipped")
    );
    assert!(applied.not_ready.is_none());

    assert_eq!(
        patched_paths(&h),
        [
            path::<ConfigMap>(RELAY),
            path::<ServiceAccount>(RELAY),
            path::<NetworkPolicy>(RELAY),
            path::<Deployment>(RELAY),
        ]
    );
    for child in patched_paths(&h) {
        let body = h.api.patched(&child).unwrap();
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["kind"], "Subscription",
            "{child}"
        );
    }
    let config_map = h.api.patched(&path::<ConfigMap>(RELAY)).unwrap().to_string();
    assert!(
        config_map.contains(&relay_url) && config_map.contains(STORAGE_URL),
        "{config_map}"
    );
    let deployment = h.api.patched(&path::<Deployment>(RELAY)).unwrap();
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let key = env
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "AZURE_STORAGE_KEY")
        .unwrap();
    let reference = &key["valueFrom"]["secretKeyRef"];
    assert_eq!(
        (&reference["name"], &reference["key"]),
        (&json!("acct-key"), &json!("key"))
    );
    assert!(key.get("value").is_none(), "the key only as a reference");
    assert_eq!(
        h.api.event_reasons(),
        ["Created", "Created"],
        "the relay queue, the subscription"
    );
}

#[tokio::test]
async fn a_queue_without_its_account_key_or_storage_queue_stops_before_any_cloud_call() {
    let mut h = Harness::new();
    ends(&mut h, false).await;
    let error = h.apply(&subscription(json!({}))).await.unwrap_err();
    assert!(matches!(error, Error::InvalidSpec { .. }), "{error:?}");
    assert!(
        error.condition_message().contains("accountKeySecretRef"),
        "{error}"
    );

    let mut queue: Queue = object(
        "jobs",
        json!({"provider": "azure", "azure": {"storageAccount": "acct"}}),
    );
    queue.status = None;
    h.store(queue);
    let error = h.apply(&subscription(json!({}))).await.unwrap_err();
    assert!(matches!(error, Error::DependencyNotReady { .. }), "{error:?}");
    assert!(
        error.condition_message().contains("no Storage Queue yet"),
        "{error}"
    );
    assert!(h.new_calls().is_empty());
    assert!(patched_paths(&h).is_empty());
}

#[tokio::test]
async fn a_relay_queue_of_another_owner_is_refused_and_left_alone() {
    let mut h = Harness::new();
    ends(&mut h, true).await;
    let s = subscription(json!({}));
    let other = Owner {
        cluster: "another-cluster",
        kind: "Subscription",
        namespace: NAMESPACE,
        name: "orders-to-jobs",
    };
    let url = h
        .cloud
        .create_queue(&relay_queue_name(&s), &Attributes::new(), &ownership_tags(&other))
        .await
        .unwrap();
    h.new_calls();
    let error = h.apply(&s).await.unwrap_err();
    assert!(matches!(error, Error::OwnedByAnother { .. }), "{error:?}");
    assert_eq!(
        h.new_calls(),
        [
            format!("GetQueueUrl {}", relay_queue_name(&s)),
            format!("ListQueueTags {url}")
        ],
        "read, never written"
    );
    assert!(patched_paths(&h).is_empty());

    // Deleting the Subscription leaves that queue too.
    h.cleanup(&s).await.unwrap();
    assert!(h.cloud.find_queue(&relay_queue_name(&s)).await.unwrap().is_some());
    assert!(h.api.event_reasons().contains(&"OwnershipLost".to_owned()));
}

#[tokio::test]
async fn cleanup_deletes_the_relay_queue_unless_retained() {
    let mut h = Harness::new();
    ends(&mut h, true).await;
    let retained = subscription(json!({"deletionPolicy": "Retain"}));
    let applied = h.apply(&retained).await.unwrap();
    h.new_calls();
    h.cleanup(&with_status(&retained, applied.status)).await.unwrap();
    assert!(h.new_calls().is_empty(), "Retain: no call");
    assert!(
        h.cloud
            .find_queue(&relay_queue_name(&retained))
            .await
            .unwrap()
            .is_some()
    );

    let s = subscription(json!({}));
    let s = with_status(&s, h.apply(&s).await.unwrap().status);
    let arn = s.status.as_ref().unwrap().arn.clone().unwrap();
    h.cleanup(&s).await.unwrap();
    assert!(h.cloud.find_queue(&relay_queue_name(&s)).await.unwrap().is_none());
    assert!(
        h.cloud.subscription_attributes(&arn).await.unwrap().is_none(),
        "unsubscribed"
    );
}
