//! Smoke test of the Kafka broker through `rdkafka`, configured the way the device processor talks to the
//! Event Hubs Kafka endpoint: SASL_SSL with PLAIN, user `$ConnectionString`, password the connection string.
//! Creates a topic with several partitions, produces across them, consumes in a consumer group and commits
//! offsets, then checks the group's committed offsets.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{collections::BTreeSet, time::Duration};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{CommitMode, Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

const PARTITIONS: i32 = 4;
const MESSAGES: usize = 40;

fn event_hubs_like_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", common::var("KAFKA_BOOTSTRAP"))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", common::var("KAFKA_SASL_USERNAME"))
        .set("sasl.password", common::var("KAFKA_SASL_PASSWORD"))
        .set("ssl.ca.location", common::var("KAFKA_CA_FILE"));
    config
}

#[tokio::test]
async fn partitioned_topic_produce_consume_in_group_and_commit() {
    let _bed = common::shared().await;
    let topic = common::unique("telemetry");
    let group = common::unique("device-processor");

    let admin: AdminClient<DefaultClientContext> = event_hubs_like_config().create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = event_hubs_like_config()
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    for i in 0..MESSAGES {
        let key = format!("device-{}", i % 8);
        let payload = format!("{{\"seq\":{i}}}");
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let consumer: StreamConsumer = event_hubs_like_config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = BTreeSet::new();
    let mut partitions = BTreeSet::new();
    while seen.len() < MESSAGES {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a message within 30s")
            .unwrap();
        let payload: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        seen.insert(payload["seq"].as_u64().unwrap());
        partitions.insert(message.partition());
    }
    assert_eq!(seen.len(), MESSAGES, "every message consumed exactly once");
    assert!(
        partitions.len() > 1,
        "keys spread over several partitions, got {partitions:?}"
    );
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(&topic, p);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(
        total, MESSAGES as i64,
        "the group's committed offsets cover every message"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let _bed = common::shared().await;
    let admin: AdminClient<DefaultClientContext> = event_hubs_like_config()
        .set(
            "sasl.password",
            "Endpoint=sb://wrong/;SharedAccessKeyName=x;SharedAccessKey=y",
        )
        .create()
        .unwrap();
    let result = admin
        .create_topics(
            &[NewTopic::new(
                &common::unique("denied"),
                1,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(5))),
        )
        .await;
    assert!(
        result.is_err() || result.unwrap().iter().all(Result::is_err),
        "bad credentials must not create topics"
    );
}
