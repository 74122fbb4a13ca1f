//! The Azure sources' references, resolved from the watch stores before any cloud call: a Storage Queue
//! source (its Queue's URL, account key and dead letter) and a DeviceStream source (the stream, its
//! consumer group, the Cosmos DB sink and its key, the dead letter's key). Each refusal or wait names the
//! field and the object, and nothing is applied.

use super::*;
use crate::api::{DeviceStream, device_stream::DeviceStreamStatus};

/// The URL of the Storage Queue of Queue `jobs` on azure.
const STORAGE_URL: &str = "http://127.0.0.1:10001/acct/shop-jobs";

/// Queue `jobs` on azure in account `acct` with `extra` spec fields, provisioned (`url`) or not.
fn storage_queue(extra: Value, url: Option<&str>) -> Queue {
    let mut spec = json!({"provider": "azure", "azure": {"storageAccount": "acct"}});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    let mut queue: Queue = object("jobs", spec);
    queue.status = url.map(|url| QueueStatus {
        observed: QueueObservation {
            url: Some(url.to_owned()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    queue
}

/// The account key Secret reference of account `acct`.
fn key() -> Value {
    json!({"storageAccount": "acct", "accountKeySecretRef": {"name": "acct-key", "key": "key"}})
}

/// The error of applying `consumer`, with nothing applied and no cloud call made.
async fn refused(h: &Harness, consumer: &Consumer) -> Error {
    let error = apply(h, consumer).await.unwrap_err();
    assert!(h.new_calls().is_empty(), "{error}: no cloud call");
    assert!(patched_paths(h).is_empty(), "{error}: nothing applied");
    error
}

#[tokio::test]
async fn a_storage_queue_source_waits_for_its_url_and_needs_the_account_key() {
    let mut h = Harness::new();
    h.store(storage_queue(json!({}), None));
    let waiting = refused(&h, &of_jobs()).await;
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("spec.source.queueRef: Queue jobs has no Storage Queue yet"),
        "{waiting}"
    );

    h.store(storage_queue(json!({}), Some(STORAGE_URL)));
    let keyless = refused(&h, &of_jobs()).await;
    assert_eq!(keyless.reason(), "InvalidSpec");
    assert!(
        keyless
            .condition_message()
            .contains("Queue jobs has no spec.azure.accountKeySecretRef"),
        "{keyless}"
    );
}

#[tokio::test]
async fn a_storage_queue_sources_dead_letter_must_exist_in_the_same_account() {
    let mut h = Harness::new();
    let queue = storage_queue(
        json!({"azure": key(), "deadLetter": {"ref": {"name": "dlq"}}}),
        Some(STORAGE_URL),
    );
    h.store(queue);
    let waiting = refused(&h, &of_jobs()).await;
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("spec.source.queueRef (the Queue's deadLetter.ref): DeadLetter dlq does not exist"),
        "{waiting}"
    );

    h.store(object::<DeadLetter>(
        "dlq",
        json!({"provider": "azure", "azure": {"storageAccount": "other"}}),
    ));
    let elsewhere = refused(&h, &of_jobs()).await;
    assert_eq!(elsewhere.reason(), "InvalidSpec");
    assert!(
        elsewhere
            .condition_message()
            .contains("DeadLetter dlq must be a Storage Queue in account acct"),
        "{elsewhere}"
    );

    h.store(object::<DeadLetter>(
        "dlq",
        json!({"provider": "azure", "azure": {"storageAccount": "acct"}}),
    ));
    let unprovisioned = refused(&h, &of_jobs()).await;
    assert_eq!(unprovisioned.reason(), "DependencyNotReady");
    assert!(
        unprovisioned
            .condition_message()
            .contains("DeadLetter dlq has no Storage Queue yet"),
        "{unprovisioned}"
    );
}

/// DeviceStream `telemetry` with the consumer group `devices`, ready (endpoint, Secret, partitions) or not.
fn stream(ready: bool) -> DeviceStream {
    let mut stream: DeviceStream = object(
        "telemetry",
        json!({"provider": "azure", "azure": {"namespace": "shop-ns", "partitions": 4,
               "consumerGroups": ["devices"]}}),
    );
    stream.status = ready.then(|| DeviceStreamStatus {
        kafka_endpoint: Some("shop-ns.servicebus.windows.net:9093".into()),
        connection_secret_name: Some("telemetry-connection".into()),
        partitions: Some(4),
        ..DeviceStreamStatus::default()
    });
    stream
}

/// A device Consumer of DeviceStream `telemetry` in group `group`, with `sink`.
fn device(group: &str, sink: Value) -> Consumer {
    consumer(json!({
        "source": {"deviceStreamRef": {"name": "telemetry", "consumerGroup": group}},
        "processor": "device",
        "sink": sink,
    }))
}

/// A Cosmos DB sink at `endpoint`, with its key Secret or without.
fn cosmos(endpoint: &str, with_key: bool) -> Value {
    let mut cosmos = json!({"endpoint": endpoint, "database": "devices", "container": "readings"});
    if with_key {
        cosmos["keySecretRef"] = json!({"name": "cosmos-key", "key": "key"});
    }
    json!({"cosmos": cosmos})
}

#[tokio::test]
async fn a_device_consumer_waits_for_its_stream_by_name_and_its_group_must_be_on_it() {
    let mut h = Harness::new();
    let consumer = device("devices", cosmos("https://acct.documents.azure.com", true));
    let missing = refused(&h, &consumer).await;
    assert_eq!(missing.reason(), "DependencyNotReady");
    let expected = "spec.source.deviceStreamRef: DeviceStream telemetry does not exist or is not ready yet";
    assert!(missing.condition_message().contains(expected), "{missing}");

    h.store(stream(false));
    let unready = refused(&h, &consumer).await;
    assert!(unready.condition_message().contains(expected), "{unready}");

    let stranger = device("billing", cosmos("https://acct.documents.azure.com", true));
    let invalid = refused(&h, &stranger).await;
    assert_eq!(invalid.reason(), "InvalidSpec");
    assert!(
        invalid
            .condition_message()
            .contains("spec.source.deviceStreamRef.consumerGroup: billing is not a consumer group"),
        "{invalid}"
    );
}

#[tokio::test]
async fn a_device_consumers_cosmos_sink_needs_its_key_and_an_allowed_endpoint() {
    let mut h = Harness::new();
    h.store(stream(true));
    let keyless = refused(
        &h,
        &device("devices", cosmos("https://acct.documents.azure.com", false)),
    )
    .await;
    assert_eq!(keyless.reason(), "InvalidSpec");
    assert!(
        keyless
            .condition_message()
            .contains("spec.sink.cosmos.keySecretRef is required"),
        "{keyless}"
    );

    h.policy(json!({"cosmosEndpoints": ["https://shop-*.documents.azure.com"]}));
    let elsewhere = refused(
        &h,
        &device("devices", cosmos("https://acct.documents.azure.com", true)),
    )
    .await;
    assert_eq!(elsewhere.reason(), "Forbidden");
    assert!(
        elsewhere
            .condition_message()
            .contains("spec.sink.cosmos.endpoint: \"https://acct.documents.azure.com\""),
        "{elsewhere}"
    );
}

#[tokio::test]
async fn a_device_consumers_dead_letter_is_waited_for_and_needs_its_account_key() {
    let mut h = Harness::new();
    h.store(stream(true));
    let mut with_dead_letter = device("devices", cosmos("https://acct.documents.azure.com", true));
    with_dead_letter.spec.dead_letter_ref = Some(crate::api::common::ObjectRef { name: "dlq".into() });
    let waiting = refused(&h, &with_dead_letter).await;
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("spec.deadLetterRef: DeadLetter dlq does not exist"),
        "{waiting}"
    );

    let mut keyless: DeadLetter = object(
        "dlq",
        json!({"provider": "azure", "azure": {"storageAccount": "acct"}}),
    );
    keyless.status = Some(DeadLetterStatus {
        observed: QueueObservation {
            url: Some("http://127.0.0.1:10001/acct/shop-dlq".into()),
            ..QueueObservation::default()
        },
        ..DeadLetterStatus::default()
    });
    h.store(keyless);
    let keyless = refused(&h, &with_dead_letter).await;
    assert_eq!(keyless.reason(), "DependencyNotReady");
    assert!(
        keyless
            .condition_message()
            .contains("DeadLetter dlq has no accountKeySecretRef"),
        "{keyless}"
    );
}
