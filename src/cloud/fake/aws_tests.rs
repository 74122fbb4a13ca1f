//! Tests of the AWS fake: the rules it keeps.

use super::*;
use crate::cloud::{MessageQueue as _, attributes_of, queue::reason_attribute};

#[tokio::test]
async fn creates_are_idempotent_conflicts_permanent_and_deletes_twice_fine() {
    let aws = FakeAws::default();
    let desired = attributes_of(&[("DisplayName", "Orders")]);
    let arn = aws.create_topic("orders", &desired, &Tags::new()).await.unwrap();
    assert_eq!(
        aws.create_topic("orders", &desired, &Tags::new()).await.unwrap(),
        arn
    );
    let other = attributes_of(&[("DisplayName", "Other")]);
    let conflict = aws
        .create_topic("orders", &other, &Tags::new())
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Permanent);
    assert_eq!(
        aws.find_topic("orders").await.unwrap().map(|(a, _)| a),
        Some(arn.clone())
    );
    aws.delete_topic(&arn).await.unwrap();
    aws.delete_topic(&arn).await.unwrap();
    let gone = aws.topic_attributes(&arn).await.unwrap_err();
    assert!(gone.is_not_found());
    assert_eq!(aws.calls()[0], "CreateTopic orders");
}

#[tokio::test]
async fn a_dead_letter_knows_its_sources_and_stats_count_its_messages() {
    let aws = FakeAws::default();
    let dead = aws
        .create_queue("dead", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let policy = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"3"}}"#,
        queue_arn("dead")
    );
    let work = aws
        .create_queue(
            "work",
            &attributes_of(&[("RedrivePolicy", &policy)]),
            &Tags::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        aws.dead_letter_sources(&dead).await.unwrap(),
        std::slice::from_ref(&work)
    );
    aws.set_queue_attributes(&work, &attributes_of(&[("RedrivePolicy", "")]))
        .await
        .unwrap();
    assert!(
        aws.dead_letter_sources(&dead).await.unwrap().is_empty(),
        "cleared"
    );

    let messages = aws.message_queue(&dead);
    messages.push(
        "a",
        BTreeMap::from([("x".to_owned(), reason_attribute("y"))]),
        BTreeMap::new(),
    );
    messages.push("b", BTreeMap::new(), BTreeMap::new());
    let _ = messages
        .receive(&crate::cloud::queue::Receive::work(1, 0, None))
        .await
        .unwrap();
    let stats = aws.queue_stats(&dead).await.unwrap();
    assert_eq!((stats.visible, stats.in_flight), (1, 1));
}

#[tokio::test]
async fn a_subscription_is_found_by_its_ends_and_loses_its_filter() {
    let aws = FakeAws::default();
    let topic = aws
        .create_topic("t", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let filtered = attributes_of(&[("FilterPolicy", r#"{"a":["b"]}"#)]);
    let arn = aws.subscribe(&topic, "arn:q", &filtered).await.unwrap();
    assert_eq!(aws.subscribe(&topic, "arn:q", &filtered).await.unwrap(), arn);
    assert_eq!(
        aws.find_subscription(&topic, "arn:q").await.unwrap(),
        Some(arn.clone())
    );
    aws.set_subscription_attribute(&arn, "FilterPolicy", "")
        .await
        .unwrap();
    let attributes = aws.subscription_attributes(&arn).await.unwrap().unwrap();
    assert!(!attributes.contains_key("FilterPolicy"));
    aws.delete_topic(&topic).await.unwrap();
    assert_eq!(
        aws.subscription_attributes(&arn).await.unwrap(),
        None,
        "gone with its topic"
    );
}
