//! Tests of the Azure fake: the rules it keeps and what a test can script.

use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::cloud::{
    ConsumerLag as _, EventHubsAdmin as _, HubProducer as _, HubProducers as _, MessageQueue as _,
    StorageQueueAdmin as _, StorageQueueMessages as _, Tags,
    azure::{
        arm::Provisioned,
        event_hubs::{HubAddress, HubSettings},
        kafka::{KafkaEndpoint, dead_letter},
        storage_queues::Account,
    },
    queue::{OutgoingMessage, reason_attribute},
};

fn at() -> HubAddress {
    HubAddress {
        subscription: "sub".into(),
        resource_group: "plant".into(),
        namespace: "plant-hubs".into(),
        hub: "telemetry".into(),
    }
}

fn settings(partitions: i32, retention_hours: i32) -> HubSettings {
    HubSettings {
        partitions,
        retention_hours,
        mark: "ours".into(),
    }
}

fn account(key: &str) -> Account {
    Account {
        name: "acct".into(),
        key: key.into(),
    }
}

fn endpoint() -> KafkaEndpoint {
    KafkaEndpoint {
        bootstrap_servers: "broker:9093".into(),
        security_protocol: "SASL_SSL".into(),
        username: "$ConnectionString".into(),
        password: "secret".into(),
        ca_file: None,
    }
}

#[tokio::test]
async fn a_namespace_reports_its_state_for_the_scripted_reads_then_succeeded() {
    let azure = FakeAzure::default();
    assert_eq!(azure.namespace_state(&at()).await.unwrap(), None);
    azure.add_namespace(&at(), "Activating");
    azure.activate_after(&at(), 2);
    let mut states = Vec::new();
    for _ in 0..3 {
        states.push(azure.namespace_state(&at()).await.unwrap().unwrap());
    }
    assert_eq!(states, ["Activating", "Activating", "Succeeded"]);

    azure.slow_puts(1);
    let other = HubAddress {
        namespace: "other".into(),
        ..at()
    };
    let created = azure
        .create_namespace(&other, "westeurope", &Tags::new())
        .await
        .unwrap();
    assert!(matches!(created, Provisioned::Pending { ref state } if state == "Activating"));
    assert_eq!(
        azure.namespace_state(&other).await.unwrap().unwrap(),
        "Activating"
    );
    assert_eq!(azure.namespace_state(&other).await.unwrap().unwrap(), "Succeeded");
    assert_eq!(azure.namespace(&other).unwrap().0, "westeurope");
}

#[tokio::test]
async fn hubs_need_their_namespace_and_never_shrink() {
    let azure = FakeAzure::default();
    let missing = azure.put_hub(&at(), &settings(4, 24)).await.unwrap_err();
    assert!(missing.is_not_found());
    azure.add_namespace(&at(), "Succeeded");
    azure.put_hub(&at(), &settings(4, 24)).await.unwrap();
    let hub = azure.hub(&at()).await.unwrap().unwrap();
    assert_eq!((hub.partitions, hub.retention_hours), (4, Some(24)));
    assert_eq!(hub.mark.as_deref(), Some("ours"));
    let shrink = azure.put_hub(&at(), &settings(2, 24)).await.unwrap_err();
    assert_eq!(shrink.kind(), ErrorKind::Permanent);
    assert_eq!(shrink.code(), Some("PartitionCountCannotDecrease"));
    azure.put_hub(&at(), &settings(8, 48)).await.unwrap();
    assert_eq!(azure.hub_at(&at()).unwrap().partitions, 8);
}

#[tokio::test]
async fn consumer_groups_keys_and_deletes() {
    let azure = FakeAzure::default();
    azure.add_hub(&at(), FakeHub::new(2, 24, None));
    assert_eq!(azure.consumer_groups(&at()).await.unwrap(), ["$Default"]);
    azure.create_consumer_group(&at(), "readers").await.unwrap();
    azure.create_consumer_group(&at(), "readers").await.unwrap();
    assert_eq!(
        azure.consumer_groups(&at()).await.unwrap(),
        ["$Default", "readers"]
    );
    let connection = azure.listen_connection_string(&at()).await.unwrap();
    assert!(connection.contains("EntityPath=telemetry"), "{connection}");
    assert!(azure.hub_at(&at()).unwrap().listen_rule);

    azure.slow_deletes(1);
    assert!(!azure.delete_hub(&at()).await.unwrap(), "still running");
    assert!(azure.delete_hub(&at()).await.unwrap());
    assert!(azure.delete_hub(&at()).await.unwrap(), "gone is success");
    assert_eq!(azure.hub(&at()).await.unwrap(), None);
}

#[tokio::test]
async fn calls_are_recorded_and_injected_failures_fail_the_next_call_only() {
    let azure = FakeAzure::default();
    azure.fail_next("GetHub", ErrorKind::Transient);
    let failed = azure.hub(&at()).await.unwrap_err();
    assert_eq!(failed.kind(), ErrorKind::Transient);
    assert_eq!(azure.hub(&at()).await.unwrap(), None);
    assert_eq!(
        azure.calls(),
        ["GetHub plant-hubs/telemetry", "GetHub plant-hubs/telemetry"]
    );
}

#[tokio::test]
async fn storage_queues_keep_metadata_refuse_other_creates_and_wrong_keys() {
    let azure = FakeAzure::default();
    azure.set_account_key("acct", "right");
    let marks = HashMap::from([("tributary_name".to_owned(), "orders".to_owned())]);
    let refused = azure.create(&account("wrong"), "q", &marks).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Permanent);
    azure.create(&account("right"), "q", &marks).await.unwrap();
    azure.create(&account("right"), "q", &marks).await.unwrap();
    let conflict = azure
        .create(&account("right"), "q", &HashMap::new())
        .await
        .unwrap_err();
    assert_eq!(conflict.kind(), ErrorKind::Permanent);

    let observed = azure.observe(&account("right"), "q").await.unwrap().unwrap();
    assert_eq!((observed.messages, observed.metadata), (0, marks));
    azure.set_message_count("acct", "q", 7, Some(30));
    let stats = azure.stats(&account("right"), "q", 7).await.unwrap();
    assert_eq!((stats.visible, stats.oldest_message_age_seconds), (7, Some(30)));

    azure.delete(&account("right"), "q").await.unwrap();
    azure.delete(&account("right"), "q").await.unwrap();
    assert_eq!(azure.observe(&account("right"), "q").await.unwrap(), None);
    assert_eq!(
        azure.queue_url("acct", "q").unwrap().as_str(),
        "https://acct.queue.fake/q"
    );
}

#[tokio::test]
async fn a_queues_messages_count_in_its_depth_and_remember_their_ttl() {
    let azure = FakeAzure::default();
    azure.add_storage_queue("acct", "q", &[]);
    let messages = azure.storage_queue(&account("k"), "q", Some(-1)).unwrap();
    messages.push("one", BTreeMap::new(), BTreeMap::new());
    let observed = azure.observe(&account("k"), "q").await.unwrap().unwrap();
    assert_eq!(observed.messages, 1);
    assert_eq!(azure.message_ttl("acct", "q"), Some(Some(-1)));
    assert_eq!(messages.attribute_limit(), None, "Azure has no attribute limit");
}

#[tokio::test]
async fn lag_is_what_the_test_set_and_producers_keep_events_or_refuse_truncated_ones() {
    let azure = FakeAzure::default();
    let unknown = azure.lag(&endpoint(), "telemetry", "readers").await.unwrap_err();
    assert!(unknown.is_not_found());
    let lag = Lag {
        partitions: 4,
        total: 12,
    };
    azure.set_lag("telemetry", "readers", lag.clone());
    assert_eq!(azure.lag(&endpoint(), "telemetry", "readers").await.unwrap(), lag);

    let producer = azure.producer(&endpoint(), "telemetry").unwrap();
    let message = |id: &str, attributes: &[(&str, &str)]| OutgoingMessage {
        entry_id: id.into(),
        body: "{}".into(),
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), reason_attribute(v)))
            .collect(),
        group_id: None,
        deduplication_id: None,
    };
    let whole = message("m0", &[(dead_letter::KEY, "thermo-1")]);
    let truncated = message("m1", &[(dead_letter::TRUNCATED_FROM, "300000")]);
    let outcome = producer.send(&[whole, truncated]).await.unwrap();
    assert_eq!(outcome.succeeded, ["m0"]);
    assert_eq!(outcome.failed[0].code, "BodyTruncated");
    let events = azure.events("telemetry");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event.key.as_deref(), Some("thermo-1"));
    assert_eq!(events[0].bootstrap, "broker:9093");
}
