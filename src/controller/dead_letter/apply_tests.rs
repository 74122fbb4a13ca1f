//! The DeadLetter's apply decisions against the AWS fake: the queue with a redrive allow policy naming
//! its sources, and the redrive's steps, by SQS's message-move task (start, progress, done) and by the
//! receive/send/delete fallback where the server has no such task.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::{
    api::{common::ObjectRef, dead_letter::RedriveResult, queue::QueueStatus},
    cloud::{Attributes, Tags, fake::FakeAws, traits::MoveTaskStatus},
    controller::driver::testing::{Harness, object, with_status},
};

/// The SQS queue name of DeadLetter `shop/dlq`.
const NAME: &str = "shop_dlq";

fn dead_letter(spec: Value) -> DeadLetter {
    object("dlq", spec)
}

/// Queue `jobs`, whose dead letter is `dlq`, with its SQS queue, in the store: its (ARN, URL).
async fn source(h: &mut Harness) -> (String, String) {
    let url = h
        .cloud
        .create_queue("shop_jobs", &Attributes::new(), &Tags::new())
        .await
        .unwrap();
    let arn = h.cloud.queue_attributes(&url).await.unwrap()["QueueArn"].clone();
    let mut queue: Queue = object("jobs", json!({"aws": {}, "deadLetter": {"ref": {"name": "dlq"}}}));
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(url.clone()),
            arn: Some(arn.clone()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
    (arn, url)
}

/// The DeadLetter `dlq` applied once without a redrive, then asked for redrive `r1`: that object, and
/// the (ARN, URL) of its queue.
async fn created_then_asked_to_redrive(h: &Harness) -> (DeadLetter, String, String) {
    let status = h.apply(&dead_letter(json!({"aws": {}}))).await.unwrap().status;
    let (arn, url) = (
        status.observed.arn.clone().unwrap(),
        status.observed.url.clone().unwrap(),
    );
    let asked = dead_letter(json!({"aws": {}, "redrive": {"id": "r1", "maxMessagesPerSecond": 100}}));
    (with_status(&asked, status), arn, url)
}

#[tokio::test]
async fn a_dead_letter_is_created_letting_only_its_sources_redrive_to_it() {
    let mut h = Harness::new();
    let (source_arn, _) = source(&mut h).await;
    h.new_calls();
    let applied = h.apply(&dead_letter(json!({"aws": {}}))).await.unwrap();
    let url = applied.status.observed.url.clone().unwrap();
    assert_eq!(
        h.new_calls(),
        [
            format!("GetQueueUrl {NAME}"),
            format!("CreateQueue {NAME}"),
            format!("GetQueueAttributes {url}"),
        ]
    );
    let allow = h.cloud.queue_attributes(&url).await.unwrap()["RedriveAllowPolicy"].clone();
    let allow: Value = serde_json::from_str(&allow).unwrap();
    assert_eq!(
        allow,
        json!({"redrivePermission": "byQueue", "sourceQueueArns": [source_arn]})
    );
    assert_eq!(applied.status.last_redrive, None);
    assert_eq!(applied.requeue, None);
    assert_eq!(h.api.event_reasons(), ["Created"]);
}

#[tokio::test]
async fn without_a_move_task_the_fallback_moves_the_messages_back_to_their_source() {
    let mut h = Harness::new();
    let (source_arn, source_url) = source(&mut h).await;
    let (asked, arn, url) = created_then_asked_to_redrive(&h).await;
    let from_source = BTreeMap::from([("DeadLetterQueueSourceArn".to_owned(), source_arn)]);
    for body in ["a", "b", "c"] {
        h.cloud
            .messages(&url)
            .push(body, BTreeMap::new(), from_source.clone());
    }
    h.new_calls();
    let applied = h.apply(&asked).await.unwrap();
    let done = applied.status.last_redrive.clone().unwrap();
    assert_eq!((done.state.as_str(), done.moved), (redrive::states::COMPLETED, 3));
    assert!(
        h.new_calls().contains(&format!("StartMessageMoveTask {arn}")),
        "tried first"
    );
    let bodies: Vec<String> = h
        .cloud
        .messages(&source_url)
        .held()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    assert!(h.cloud.messages(&url).held().is_empty());
    assert_eq!(
        applied.status.observed.depth,
        Some(0),
        "the depth read again after moving"
    );
    assert_eq!(h.api.event_reasons(), ["Created", "Redrive"]);

    // A finished redrive is not started again.
    h.apply(&with_status(&asked, applied.status)).await.unwrap();
    assert!(
        !h.new_calls()
            .iter()
            .any(|c| c.starts_with("StartMessageMoveTask"))
    );
}

#[tokio::test]
async fn a_move_task_is_started_followed_and_finished() {
    let mut h = Harness::with_cloud(FakeAws::default().with_message_moves());
    source(&mut h).await;
    let (asked, arn, _) = created_then_asked_to_redrive(&h).await;
    let step = |result: Option<RedriveResult>| {
        let mut next = asked.clone();
        next.status.as_mut().unwrap().last_redrive = result;
        next
    };

    let started = h.apply(&asked).await.unwrap();
    let running = started.status.last_redrive.clone().unwrap();
    assert_eq!(
        (running.state.as_str(), running.moved),
        (redrive::states::RUNNING, 0)
    );
    assert_eq!(running.message.as_deref(), Some("SQS message-move task task-1"));
    assert_eq!(started.requeue, Some(std::time::Duration::from_secs(1)));
    assert_eq!(h.api.event_reasons(), ["Created", "Redrive"]);

    assert!(h.cloud.advance_message_move(&arn, MoveTaskStatus::Running, 4));
    h.new_calls();
    let progress = h.apply(&step(Some(running))).await.unwrap();
    let running = progress.status.last_redrive.clone().unwrap();
    assert_eq!(
        (running.state.as_str(), running.moved),
        (redrive::states::RUNNING, 4)
    );
    let calls = h.new_calls();
    assert!(
        calls.contains(&format!("ListMessageMoveTasks {arn}")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("StartMessageMoveTask")),
        "not started twice"
    );

    assert!(h.cloud.advance_message_move(&arn, MoveTaskStatus::Completed, 7));
    let done = h.apply(&step(Some(running))).await.unwrap();
    let result = done.status.last_redrive.clone().unwrap();
    assert_eq!(
        (result.state.as_str(), result.moved),
        (redrive::states::COMPLETED, 7)
    );
    assert_eq!(done.requeue, None);
    assert_eq!(h.api.event_reasons(), ["Created", "Redrive", "Redrive"]);
}

#[tokio::test]
async fn a_redrive_to_a_queue_without_an_sqs_queue_waits_for_it() {
    let mut h = Harness::new();
    let (mut asked, ..) = created_then_asked_to_redrive(&h).await;
    asked.spec.redrive.as_mut().unwrap().destination_ref = Some(ObjectRef {
        name: "elsewhere".into(),
    });
    h.store(object::<Queue>("elsewhere", json!({"aws": {}})));
    let waiting = h.apply(&asked).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting.condition_message().contains("Queue elsewhere"),
        "{waiting}"
    );
}

/// Found by the crash-point harness (tests/it/crash_points, redrive, the controller killed right after
/// the fallback's ReceiveMessage): the messages that receive hid were not seen by the next controller's
/// round, which called the redrive Completed while they were still in the dead letter.
#[tokio::test]
async fn messages_hidden_by_an_earlier_receive_keep_the_redrive_running_until_moved() {
    use crate::cloud::queue::{MessageQueue as _, Receive};
    let mut h = Harness::new();
    let (source_arn, source_url) = source(&mut h).await;
    let (asked, _, url) = created_then_asked_to_redrive(&h).await;
    let from_source = BTreeMap::from([("DeadLetterQueueSourceArn".to_owned(), source_arn)]);
    for body in ["a", "b"] {
        h.cloud
            .messages(&url)
            .push(body, BTreeMap::new(), from_source.clone());
    }
    // A round of a controller killed before its delete: one message received, hidden for a minute.
    let hidden = h
        .cloud
        .messages(&url)
        .receive(&Receive::to_move(1, 60))
        .await
        .unwrap();
    assert_eq!(hidden.len(), 1);

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
    assert_eq!(applied.requeue, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        h.cloud.messages(&source_url).held().len(),
        1,
        "the visible one moved"
    );
    assert_eq!(
        h.api.event_reasons(),
        ["Created"],
        "no Redrive Event: not finished"
    );
}
