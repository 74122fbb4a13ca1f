//! The AWS cloud layer against moto (`make testbed-up`): topics, queues and subscriptions are created,
//! found (adopted), updated until the attribute diff settles, tagged and deleted twice; a filtered
//! subscription delivers only matching messages; a dead-letter queue receives a message after
//! `maxReceiveCount` receives and is redriven both ways; errors are classified.
#![allow(clippy::unwrap_used)]

mod redrive;

use crate::support as common;

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use tributary::{
    api::{dead_letter::DeadLetterAws, queue::QueueAws, topic::TopicAws},
    cloud::{
        ErrorKind, MessageQueue, QueueMessages, Queues, Subscriptions, Tags, Topics,
        aws::{
            AwsCloud,
            attributes::{self, RedriveTarget},
            compare::diff,
            is_message_move_unsupported,
        },
        queue::Receive,
        redrive::{Destination, move_messages},
        traits::{MessageAttribute, MoveRequest, MoveTaskStatus, OutgoingMessage, ReceivedMessage},
    },
    filter::{Policy, Scope},
};

async fn cloud() -> AwsCloud {
    AwsCloud::new(&common::aws_config().await)
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn queue_aws(fifo: bool) -> QueueAws {
    QueueAws {
        name: None,
        fifo,
        content_based_deduplication: false,
        visibility_timeout_seconds: 30,
        message_retention_seconds: 345_600,
        delay_seconds: 0,
        receive_wait_time_seconds: 0,
        maximum_message_size_bytes: 262_144,
        kms_master_key_id: None,
    }
}

async fn queue_arn(cloud: &AwsCloud, url: &str) -> String {
    cloud.queue_attributes(url).await.unwrap()["QueueArn"].clone()
}

async fn create_queue(cloud: &AwsCloud, prefix: &str, fifo: bool) -> (String, String) {
    let name = format!("{}{}", common::unique(prefix), if fifo { ".fifo" } else { "" });
    let desired = attributes::queue_attributes(&queue_aws(fifo), None);
    let url = cloud.create_queue(&name, &desired, &Tags::new()).await.unwrap();
    let arn = queue_arn(cloud, &url).await;
    (url, arn)
}

/// Receives everything currently in the queue (deleting it), short-polling until an empty answer.
async fn drain(cloud: &AwsCloud, url: &str) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let batch = cloud
            .message_queue(url)
            .receive(&Receive::to_move(10, 30))
            .await
            .unwrap();
        if batch.is_empty() {
            return all;
        }
        let receipts: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("d{i}"), m.receipt_handle.clone()))
            .collect();
        cloud.message_queue(url).delete(&receipts).await.unwrap();
        all.extend(batch);
    }
}

#[tokio::test]
async fn topic_is_created_adopted_updated_tagged_and_deleted_twice() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let name = common::unique("topic");
    assert_eq!(cloud.find_topic(&name).await.unwrap(), None);

    let mut spec = TopicAws {
        display_name: Some("Orders".into()),
        ..TopicAws::default()
    };
    let desired = attributes::topic_attributes(&spec);
    let arn = cloud
        .create_topic(&name, &desired, &tags(&[("team", "shop")]))
        .await
        .unwrap();
    assert_eq!(
        cloud
            .find_topic(&name)
            .await
            .unwrap()
            .map(|(arn, _)| arn)
            .as_deref(),
        Some(arn.as_str()),
        "adopt by name"
    );
    assert_eq!(
        cloud.create_topic(&name, &desired, &Tags::new()).await.unwrap(),
        arn,
        "idempotent"
    );
    assert!(diff(&desired, &cloud.topic_attributes(&arn).await.unwrap()).is_empty());

    spec.display_name = Some("Orders v2".into());
    let desired = attributes::topic_attributes(&spec);
    let changes = diff(&desired, &cloud.topic_attributes(&arn).await.unwrap());
    assert_eq!(
        changes.to_set,
        vec![("DisplayName".to_owned(), "Orders v2".to_owned())]
    );
    for (attribute, value) in &changes.to_set {
        cloud.set_topic_attribute(&arn, attribute, value).await.unwrap();
    }
    assert!(
        diff(&desired, &cloud.topic_attributes(&arn).await.unwrap()).is_empty(),
        "settles"
    );

    assert_eq!(cloud.topic_tags(&arn).await.unwrap(), tags(&[("team", "shop")]));
    cloud.tag_topic(&arn, &tags(&[("tier", "gold")])).await.unwrap();
    cloud.untag_topic(&arn, &["team".to_owned()]).await.unwrap();
    assert_eq!(cloud.topic_tags(&arn).await.unwrap(), tags(&[("tier", "gold")]));

    cloud.delete_topic(&arn).await.unwrap();
    cloud.delete_topic(&arn).await.unwrap();
    assert_eq!(cloud.find_topic(&name).await.unwrap(), None);
    let gone = cloud.topic_attributes(&arn).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
}

#[tokio::test]
async fn a_fifo_topic_reports_its_type_as_an_immutable_difference() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let name = format!("{}.fifo", common::unique("topic"));
    let fifo = TopicAws {
        fifo: true,
        content_based_deduplication: true,
        ..TopicAws::default()
    };
    let arn = cloud
        .create_topic(&name, &attributes::topic_attributes(&fifo), &Tags::new())
        .await
        .unwrap();
    let observed = cloud.topic_attributes(&arn).await.unwrap();
    assert!(diff(&attributes::topic_attributes(&fifo), &observed).is_empty());
    let changes = diff(&attributes::topic_attributes(&TopicAws::default()), &observed);
    assert_eq!(changes.immutable.len(), 1, "{changes:?}");
    assert_eq!(changes.immutable[0].name, "FifoTopic");
    cloud.delete_topic(&arn).await.unwrap();
}

#[tokio::test]
async fn queue_is_created_adopted_updated_tagged_counted_and_deleted_twice() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let name = common::unique("queue");
    assert_eq!(cloud.find_queue(&name).await.unwrap(), None);

    let mut spec = queue_aws(false);
    let desired = attributes::queue_attributes(&spec, None);
    let url = cloud
        .create_queue(&name, &desired, &tags(&[("team", "shop")]))
        .await
        .unwrap();
    assert_eq!(
        cloud.find_queue(&name).await.unwrap().as_deref(),
        Some(url.as_str()),
        "adopt by name"
    );
    assert!(diff(&desired, &cloud.queue_attributes(&url).await.unwrap()).is_empty());

    spec.visibility_timeout_seconds = 120;
    spec.delay_seconds = 5;
    let desired = attributes::queue_attributes(&spec, None);
    let changes = diff(&desired, &cloud.queue_attributes(&url).await.unwrap());
    assert_eq!(changes.to_set.len(), 2, "{changes:?}");
    cloud
        .set_queue_attributes(&url, &changes.to_set_map())
        .await
        .unwrap();
    let observed = cloud.queue_attributes(&url).await.unwrap();
    assert_eq!(observed["VisibilityTimeout"], "120");
    assert!(diff(&desired, &observed).is_empty(), "settles");
    assert!(observed.contains_key("QueueArn") && observed.contains_key("ApproximateNumberOfMessages"));

    assert_eq!(cloud.queue_tags(&url).await.unwrap(), tags(&[("team", "shop")]));
    cloud.tag_queue(&url, &tags(&[("tier", "gold")])).await.unwrap();
    cloud.untag_queue(&url, &["team".to_owned()]).await.unwrap();
    assert_eq!(cloud.queue_tags(&url).await.unwrap(), tags(&[("tier", "gold")]));

    cloud
        .set_queue_attributes(&url, &[("DelaySeconds".to_owned(), "0".to_owned())].into())
        .await
        .unwrap();
    let messages: Vec<_> = (0..3).map(|i| outgoing(&format!("e{i}"), "x", None)).collect();
    cloud.message_queue(&url).send(&messages).await.unwrap();
    let stats = cloud.queue_stats(&url).await.unwrap();
    assert_eq!((stats.visible, stats.oldest_message_age_seconds), (3, None));

    cloud.delete_queue(&url).await.unwrap();
    cloud.delete_queue(&url).await.unwrap();
    assert_eq!(cloud.find_queue(&name).await.unwrap(), None);
    assert_eq!(
        cloud.queue_attributes(&url).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_filtered_subscription_delivers_only_matching_messages_through_the_queue_policy() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let sns = aws_sdk_sns::Client::new(&common::aws_config().await);
    let topic = cloud
        .create_topic(&common::unique("orders"), &Default::default(), &Tags::new())
        .await
        .unwrap();
    let (queue_url, queue_arn) = create_queue(&cloud, "shipments", false).await;
    let policy = attributes::queue_policy(&queue_arn, &[topic.as_str()]).unwrap();
    cloud
        .set_queue_attributes(&queue_url, &[("Policy".to_owned(), policy.clone())].into())
        .await
        .unwrap();
    let wanted = [("Policy".to_owned(), policy)].into();
    assert!(diff(&wanted, &cloud.queue_attributes(&queue_url).await.unwrap()).is_empty());

    let filter = Policy::parse(&json!({"event": ["OrderPlaced"]}), Scope::MessageAttributes).unwrap();
    let desired = attributes::subscription_attributes(true, Some(&filter));
    assert_eq!(cloud.find_subscription(&topic, &queue_arn).await.unwrap(), None);
    let arn = cloud.subscribe(&topic, &queue_arn, &desired).await.unwrap();
    assert_eq!(
        cloud
            .find_subscription(&topic, &queue_arn)
            .await
            .unwrap()
            .as_deref(),
        Some(arn.as_str())
    );
    assert_eq!(
        cloud.subscribe(&topic, &queue_arn, &desired).await.unwrap(),
        arn,
        "idempotent"
    );
    let observed = cloud.subscription_attributes(&arn).await.unwrap().unwrap();
    assert!(diff(&desired, &observed).is_empty(), "{observed:?}");

    for (event, body) in [("OrderPlaced", "placed"), ("OrderCancelled", "cancelled")] {
        common::publish(&sns, &topic, body, &[("event", "String", event)]).await;
    }
    let delivered = common::eventually("the matching message", Duration::from_secs(10), || async {
        Some(drain(&cloud, &queue_url).await).filter(|messages| !messages.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bodies: Vec<_> = delivered
        .iter()
        .chain(&drain(&cloud, &queue_url).await)
        .map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, ["placed"]);
    assert_eq!(
        delivered[0].attributes["event"].string_value.as_deref(),
        Some("OrderPlaced")
    );

    // Removing the filter is setting an empty policy; the diff then settles.
    let unfiltered = attributes::subscription_attributes(true, None);
    for (name, value) in diff(
        &unfiltered,
        &cloud.subscription_attributes(&arn).await.unwrap().unwrap(),
    )
    .to_set
    {
        cloud
            .set_subscription_attribute(&arn, &name, &value)
            .await
            .unwrap();
    }
    assert!(
        diff(
            &unfiltered,
            &cloud.subscription_attributes(&arn).await.unwrap().unwrap()
        )
        .is_empty()
    );

    cloud.unsubscribe(&arn).await.unwrap();
    cloud.unsubscribe(&arn).await.unwrap();
    assert_eq!(cloud.subscription_attributes(&arn).await.unwrap(), None);
    cloud.delete_topic(&topic).await.unwrap();
    cloud.delete_queue(&queue_url).await.unwrap();
}

fn outgoing(id: &str, body: &str, group: Option<&str>) -> OutgoingMessage {
    let attribute = |data_type: &str, string: Option<&str>, binary: Option<&[u8]>| MessageAttribute {
        data_type: data_type.to_owned(),
        string_value: string.map(str::to_owned),
        binary_value: binary.map(<[u8]>::to_vec),
    };
    OutgoingMessage {
        entry_id: id.to_owned(),
        body: body.to_owned(),
        attributes: BTreeMap::from([
            ("event".to_owned(), attribute("String", Some("OrderPlaced"), None)),
            ("total".to_owned(), attribute("Number", Some("250"), None)),
            (
                "blob".to_owned(),
                attribute("Binary", None, Some(&[0, 1, 2, 255])),
            ),
        ]),
        group_id: group.map(str::to_owned),
        deduplication_id: group.map(|_| format!("dedup-{id}")),
    }
}

#[tokio::test]
async fn invalid_requests_are_permanent_with_the_aws_message() {
    let _bed = common::shared().await;
    let cloud = cloud().await;
    let mut bad = attributes::queue_attributes(&queue_aws(false), None);
    bad.insert("MaximumMessageSize".into(), "10".into());
    let error = cloud
        .create_queue(&common::unique("bad"), &bad, &Tags::new())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent, "{error}");
    assert_eq!(error.code(), Some("InvalidAttributeValue"), "{error}");

    let error = cloud
        .create_topic("not a valid name!", &Default::default(), &Tags::new())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Permanent, Some("InvalidParameter")),
        "{error}"
    );
    assert!(error.to_string().contains("CreateTopic"), "{error}");

    let topic = cloud
        .create_topic(&common::unique("t"), &Default::default(), &Tags::new())
        .await
        .unwrap();
    let (queue_url, queue_arn) = create_queue(&cloud, "q", false).await;
    let subscription = cloud
        .subscribe(&topic, &queue_arn, &Default::default())
        .await
        .unwrap();
    let error = cloud
        .set_subscription_attribute(&subscription, "Bogus", "1")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent, "{error}");
    cloud.delete_topic(&topic).await.unwrap();
    cloud.delete_queue(&queue_url).await.unwrap();
}

#[tokio::test]
async fn a_server_nobody_listens_on_is_transient() {
    let _bed = common::shared().await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:1")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "a", "b", None, None, "test",
        ))
        .load()
        .await;
    let cloud = AwsCloud::new(&config);
    let error = cloud.find_queue("anything").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
    let error = cloud.find_topic("anything").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("no answer") && text.contains("Connection refused"),
        "{text}"
    );
}
