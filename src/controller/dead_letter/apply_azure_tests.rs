//! The DeadLetter's apply decisions on `azure` against the Azure fake: its Storage Queue marked as ours,
//! and the redrive's receive/send/delete rounds back to the Storage Queue of the Queue the messages came
//! from, or to `destinationRef`; what cannot be routed stays, and the redrive says how to route it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::{
    api::queue::QueueStatus,
    cloud::queue::{DEAD_LETTER_REASON, reason_attribute},
    controller::driver::{
        ownership::Owner,
        testing::{CLUSTER, Harness, NAMESPACE, object, with_status},
    },
};

const ACCOUNT: &str = "acct";
const KEY: &str = "YWNjb3VudC1rZXk=";
/// The Storage Queues of DeadLetter `shop/dlq` and Queue `shop/jobs`, and the latter's URL.
const DLQ: &str = "shop-dlq";
const JOBS: &str = "shop-jobs";
const JOBS_URL: &str = "https://acct.queue.fake/shop-jobs";

fn location(name: &str) -> Value {
    json!({"storageAccount": ACCOUNT, "name": name, "accountKeySecretRef": {"name": "acct-key", "key": "key"}})
}

/// DeadLetter `dlq` on azure with `extra` spec fields; its key Secret in the API.
fn dead_letter(h: &Harness, extra: Value) -> DeadLetter {
    h.secret("acct-key", "key", KEY);
    h.azure.set_account_key(ACCOUNT, KEY);
    let mut spec = json!({"provider": "azure", "azure": location(DLQ)});
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    object("dlq", spec)
}

/// Queue `jobs` on azure whose dead letter is `dlq`, with its Storage Queue, in the store.
fn jobs(h: &mut Harness) {
    h.azure.add_storage_queue(ACCOUNT, JOBS, &[]);
    let mut queue: Queue = object(
        "jobs",
        json!({"provider": "azure", "azure": location(JOBS), "deadLetter": {"ref": {"name": "dlq"}}}),
    );
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(JOBS_URL.into()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
}

/// The DeadLetter applied once, then asked for redrive `r1`, with `bodies` dead-lettered from Queue
/// `jobs` by a worker.
async fn asked_to_redrive(h: &Harness, bodies: &[&str]) -> DeadLetter {
    let status = h.apply(&dead_letter(h, json!({}))).await.unwrap().status;
    let from_jobs = BTreeMap::from([(
        DEAD_LETTER_REASON.to_owned(),
        reason_attribute(&json!({"queue": JOBS_URL, "reason": "boom"}).to_string()),
    )]);
    for body in bodies {
        h.azure
            .storage_messages(ACCOUNT, DLQ)
            .push(body, from_jobs.clone(), BTreeMap::new());
    }
    let asked = dead_letter(h, json!({"redrive": {"id": "r1", "maxMessagesPerSecond": 100}}));
    with_status(&asked, status)
}

fn bodies(h: &Harness, queue: &str) -> Vec<String> {
    let held = h.azure.storage_messages(ACCOUNT, queue).held();
    held.into_iter().map(|m| m.body).collect()
}

#[tokio::test]
async fn an_azure_dead_letter_is_a_storage_queue_marked_as_the_dead_letters() {
    let h = Harness::new();
    let applied = h.apply(&dead_letter(&h, json!({}))).await.unwrap();
    let marks = crate::controller::resources::storage_queue::marks(&Owner {
        cluster: CLUSTER,
        kind: "DeadLetter",
        namespace: NAMESPACE,
        name: "dlq",
    });
    assert_eq!(h.azure.storage_queue_metadata(ACCOUNT, DLQ), Some(marks));
    assert_eq!(
        applied.status.observed.url.as_deref(),
        Some("https://acct.queue.fake/shop-dlq")
    );
    assert_eq!((applied.status.last_redrive, applied.requeue), (None, None));
    assert_eq!(h.api.event_reasons(), ["Created"]);
}

#[tokio::test]
async fn a_redrive_moves_the_messages_back_to_the_queue_they_came_from() {
    let mut h = Harness::new();
    jobs(&mut h);
    let asked = asked_to_redrive(&h, &["a", "b", "c"]).await;
    let applied = h.apply(&asked).await.unwrap();
    let done = applied.status.last_redrive.clone().unwrap();
    assert_eq!((done.state.as_str(), done.moved), (redrive::states::COMPLETED, 3));
    assert!(
        done.message
            .as_deref()
            .unwrap_or_default()
            .contains("receive/send/delete"),
        "{done:?}"
    );
    assert_eq!(bodies(&h, JOBS), ["a", "b", "c"]);
    assert!(bodies(&h, DLQ).is_empty(), "deleted once sent");
    assert_eq!(
        applied.status.observed.depth,
        Some(0),
        "the depth read again after moving"
    );
    assert_eq!(h.api.event_reasons(), ["Created", "Redrive"]);

    // A finished redrive is not run again.
    h.azure
        .storage_messages(ACCOUNT, DLQ)
        .push("later", BTreeMap::new(), BTreeMap::new());
    h.apply(&with_status(&asked, applied.status)).await.unwrap();
    assert_eq!(bodies(&h, DLQ), ["later"]);
}

/// Found by the crash-point harness (`azredrive`, killed right after a round's receive): a Storage Queue
/// counts hidden messages with the visible ones, and the redrive was called Completed with the messages
/// a killed controller had received still hidden in the dead letter, for good.
#[tokio::test]
async fn messages_hidden_by_an_earlier_receive_keep_an_azure_redrive_running_until_moved() {
    use crate::cloud::queue::{MessageQueue as _, Receive};
    let mut h = Harness::new();
    jobs(&mut h);
    let asked = asked_to_redrive(&h, &["a", "b"]).await;
    // A round of a controller killed before its delete: one message received, hidden for a minute.
    let dead = h.azure.storage_messages(ACCOUNT, DLQ);
    assert_eq!(dead.receive(&Receive::to_move(1, 60)).await.unwrap().len(), 1);

    let applied = h.apply(&asked).await.unwrap();
    let running = applied.status.last_redrive.clone().unwrap();
    assert_eq!(
        (running.state.as_str(), running.moved),
        (redrive::states::RUNNING, 1)
    );
    let message = running.message.unwrap_or_default();
    assert!(
        message.contains("1 messages in the dead letter are hidden"),
        "{message}"
    );
    assert_eq!(bodies(&h, JOBS).len(), 1, "the visible one moved");
    assert_eq!(h.api.event_reasons(), ["Created"], "not finished");
}

#[tokio::test]
async fn messages_with_nowhere_to_go_stay_and_the_redrive_says_how_to_route_them() {
    let h = Harness::new();
    let asked = asked_to_redrive(&h, &["a"]).await;
    let applied = h.apply(&asked).await.unwrap();
    let failed = applied.status.last_redrive.unwrap();
    assert_eq!(failed.state, redrive::states::FAILED);
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("set spec.redrive.destinationRef"),
        "{failed:?}"
    );
    assert_eq!(bodies(&h, DLQ), ["a"], "nothing lost");
}

#[tokio::test]
async fn a_redrive_destination_must_be_an_azure_queue_with_its_storage_queue() {
    let mut h = Harness::new();
    let mut asked = asked_to_redrive(&h, &["a"]).await;
    asked.spec.redrive.as_mut().unwrap().destination_ref = Some(crate::api::common::ObjectRef {
        name: "elsewhere".into(),
    });
    h.store(object::<Queue>("elsewhere", json!({"aws": {}})));
    let invalid = h.apply(&asked).await.unwrap_err();
    assert_eq!(invalid.reason(), "InvalidSpec");
    assert!(
        invalid
            .condition_message()
            .contains("spec.redrive.destinationRef: Queue elsewhere is on aws"),
        "{invalid}"
    );

    h.store(object::<Queue>(
        "elsewhere",
        json!({"provider": "azure", "azure": location("shop-elsewhere")}),
    ));
    let waiting = h.apply(&asked).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains("Queue elsewhere has no Storage Queue yet"),
        "{waiting}"
    );
    assert_eq!(bodies(&h, DLQ), ["a"], "nothing moved");
}

#[tokio::test]
async fn a_device_consumers_dead_letters_go_back_to_its_streams_hub_as_events() {
    let mut h = Harness::new();
    let bootstrap = "shop-ns.servicebus.windows.net:9093";
    let mut stream: crate::api::DeviceStream = object(
        "telemetry",
        json!({"provider": "azure", "azure": {"namespace": "shop-ns", "partitions": 4}}),
    );
    stream.status = Some(crate::api::device_stream::DeviceStreamStatus {
        kafka_endpoint: Some(bootstrap.into()),
        connection_secret_name: Some("telemetry-connection".into()),
        partitions: Some(4),
        hub_name: Some("telemetry-hub".into()),
        ..Default::default()
    });
    h.store(stream);
    h.store(object::<crate::api::Consumer>(
        "devices",
        json!({"source": {"deviceStreamRef": {"name": "telemetry"}}, "processor": "device",
               "deadLetterRef": {"name": "dlq"}}),
    ));
    h.secret(
        "telemetry-connection",
        "connectionString",
        "Endpoint=sb://shop-ns.servicebus.windows.net/;SharedAccessKey=x",
    );
    let status = h.apply(&dead_letter(&h, json!({}))).await.unwrap().status;
    let origin = format!("kafka://{bootstrap}/telemetry-hub");
    let from_hub = BTreeMap::from([(
        DEAD_LETTER_REASON.to_owned(),
        reason_attribute(&json!({"queue": origin, "reason": "timestamp: required"}).to_string()),
    )]);
    h.azure
        .storage_messages(ACCOUNT, DLQ)
        .push(r#"{"deviceId":"thermo-1"}"#, from_hub, BTreeMap::new());
    let asked = dead_letter(&h, json!({"redrive": {"id": "r1", "maxMessagesPerSecond": 100}}));
    let applied = h.apply(&with_status(&asked, status)).await.unwrap();
    let done = applied.status.last_redrive.unwrap();
    assert_eq!((done.state.as_str(), done.moved), (redrive::states::COMPLETED, 1));
    let events = h.azure.events("telemetry-hub");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].bootstrap, bootstrap);
    assert_eq!(events[0].event.payload, br#"{"deviceId":"thermo-1"}"#);
    assert!(bodies(&h, DLQ).is_empty());
}
