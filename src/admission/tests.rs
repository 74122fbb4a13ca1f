use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::api::{Consumer, DeadLetter, DeviceStream, Queue, Subscription, Topic};

fn spec<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid spec")
}

fn topic(fifo: bool) -> Arc<Topic> {
    Arc::new(Topic::new("t", spec(json!({"aws": {"fifo": fifo}}))))
}

fn sqs_queue(name: &str, fifo: bool) -> Arc<Queue> {
    Arc::new(Queue::new(
        name,
        spec(json!({"provider": "aws", "aws": {"fifo": fifo}})),
    ))
}

fn storage_queue(name: &str, account: &str) -> Arc<Queue> {
    Arc::new(Queue::new(
        name,
        spec(json!({"provider": "azure", "azure": {"storageAccount": account}})),
    ))
}

fn sqs_dead_letter(fifo: bool) -> Arc<DeadLetter> {
    Arc::new(DeadLetter::new(
        "dlq",
        spec(json!({"provider": "aws", "aws": {"fifo": fifo}})),
    ))
}

fn azure_dead_letter(account: &str) -> Arc<DeadLetter> {
    Arc::new(DeadLetter::new(
        "dlq",
        spec(json!({"provider": "azure", "azure": {"storageAccount": account}})),
    ))
}

fn with_dead_letter(dead_letter: Arc<DeadLetter>) -> Referenced {
    let mut referenced = Referenced::default();
    referenced.dead_letters.insert("dlq".into(), dead_letter);
    referenced
}

fn fields(violations: &[Violation]) -> Vec<&'static str> {
    violations.iter().map(|v| v.field).collect()
}

#[test]
fn a_queues_dead_letter_must_match_its_provider_and_type() {
    let fifo_queue: QueueSpec = spec(json!({"aws": {"fifo": true}, "deadLetter": {"ref": {"name": "dlq"}}}));
    let standard_queue: QueueSpec = spec(json!({"aws": {}, "deadLetter": {"ref": {"name": "dlq"}}}));
    let check_with =
        |queue: &QueueSpec, dead_letter| check(Spec::Queue(queue), &with_dead_letter(dead_letter));

    assert!(check_with(&fifo_queue, sqs_dead_letter(true)).is_empty());
    assert!(check_with(&standard_queue, sqs_dead_letter(false)).is_empty());
    let violations = check_with(&fifo_queue, sqs_dead_letter(false));
    assert_eq!(fields(&violations), ["spec.deadLetter.ref"]);
    assert!(
        violations[0].rule.contains("dead letter to be FIFO"),
        "{}",
        violations[0]
    );
    assert!(!check_with(&standard_queue, sqs_dead_letter(true)).is_empty());
    let violations = check_with(&standard_queue, azure_dead_letter("acct"));
    assert!(violations[0].rule.contains("same provider"), "{}", violations[0]);
}

#[test]
fn a_storage_queues_dead_letter_must_be_in_its_account() {
    let queue: QueueSpec = spec(
        json!({"provider": "azure", "azure": {"storageAccount": "acct"}, "deadLetter": {"ref": {"name": "dlq"}}}),
    );
    assert!(check(Spec::Queue(&queue), &with_dead_letter(azure_dead_letter("acct"))).is_empty());
    let violations = check(Spec::Queue(&queue), &with_dead_letter(azure_dead_letter("other")));
    assert!(
        violations[0].rule.contains("storage account other"),
        "{}",
        violations[0]
    );
    assert!(!check(Spec::Queue(&queue), &with_dead_letter(sqs_dead_letter(false))).is_empty());
}

#[test]
fn references_that_do_not_exist_yet_are_no_violation() {
    let queue: QueueSpec = spec(json!({"aws": {"fifo": true}, "deadLetter": {"ref": {"name": "dlq"}}}));
    assert_eq!(
        references(Spec::Queue(&queue)),
        [Reference::DeadLetter("dlq".into())]
    );
    assert!(check(Spec::Queue(&queue), &Referenced::default()).is_empty());
    let subscription = Subscription::new(
        "s",
        spec(json!({"topicRef": {"name": "t"}, "queueRef": {"name": "q"}})),
    );
    assert!(check(Spec::Subscription(&subscription.spec), &Referenced::default()).is_empty());
}

fn subscription_to(topic_fifo: bool, queue: Arc<Queue>) -> Vec<Violation> {
    let subscription = Subscription::new(
        "s",
        spec(json!({"topicRef": {"name": "t"}, "queueRef": {"name": "q"}})),
    );
    let mut referenced = Referenced::default();
    referenced.topics.insert("t".into(), topic(topic_fifo));
    referenced.queues.insert("q".into(), queue);
    check(Spec::Subscription(&subscription.spec), &referenced)
}

#[test]
fn a_standard_topic_cannot_deliver_to_a_fifo_queue_but_a_fifo_topic_may_deliver_to_a_standard_one() {
    assert!(subscription_to(true, sqs_queue("q", true)).is_empty());
    assert!(subscription_to(false, sqs_queue("q", false)).is_empty());
    assert!(
        subscription_to(true, sqs_queue("q", false)).is_empty(),
        "allowed by SNS since 2023"
    );
    assert!(
        subscription_to(true, storage_queue("q", "acct")).is_empty(),
        "the relay queue is standard"
    );
    let violations = subscription_to(false, sqs_queue("q", true));
    assert_eq!(fields(&violations), ["spec.queueRef"]);
}

fn consumer(value: Value) -> Consumer {
    Consumer::new("c", spec(value))
}

#[test]
fn a_consumers_dead_letter_must_be_on_its_sources_provider() {
    let on_queue = consumer(
        json!({"source": {"queueRef": {"name": "q"}}, "image": "x", "deadLetterRef": {"name": "dlq"}}),
    );
    let mut referenced = with_dead_letter(azure_dead_letter("acct"));
    referenced.queues.insert("q".into(), sqs_queue("q", true));
    let violations = check(Spec::Consumer(&on_queue.spec), &referenced);
    assert_eq!(fields(&violations), ["spec.deadLetterRef"]);

    // The workers dead-letter themselves: a standard dead letter for a FIFO source is fine.
    referenced
        .dead_letters
        .insert("dlq".into(), sqs_dead_letter(false));
    assert!(check(Spec::Consumer(&on_queue.spec), &referenced).is_empty());

    referenced.queues.insert("q".into(), storage_queue("q", "acct"));
    referenced
        .dead_letters
        .insert("dlq".into(), azure_dead_letter("other"));
    assert!(
        check(Spec::Consumer(&on_queue.spec), &referenced)[0]
            .rule
            .contains("account")
    );
}

#[test]
fn a_device_consumer_needs_an_azure_dead_letter_and_an_existing_consumer_group() {
    let device = consumer(json!({
        "source": {"deviceStreamRef": {"name": "ds", "consumerGroup": "readers"}},
        "processor": "device", "deadLetterRef": {"name": "dlq"}
    }));
    let stream = |groups: Value| {
        Arc::new(DeviceStream::new(
            "ds",
            spec(json!({"azure": {"namespace": "plant-ns", "consumerGroups": groups}})),
        ))
    };
    let mut referenced = with_dead_letter(sqs_dead_letter(false));
    referenced.device_streams.insert("ds".into(), stream(json!([])));
    let violations = check(Spec::Consumer(&device.spec), &referenced);
    assert_eq!(
        fields(&violations),
        ["spec.source.deviceStreamRef.consumerGroup", "spec.deadLetterRef"]
    );
    referenced
        .device_streams
        .insert("ds".into(), stream(json!(["readers"])));
    referenced
        .dead_letters
        .insert("dlq".into(), azure_dead_letter("any"));
    assert!(check(Spec::Consumer(&device.spec), &referenced).is_empty());
    let default_group =
        consumer(json!({"source": {"deviceStreamRef": {"name": "ds"}}, "processor": "device"}));
    assert!(check(Spec::Consumer(&default_group.spec), &referenced).is_empty());
}

#[test]
fn a_redrive_stays_on_the_dead_letters_provider() {
    let dead_letter: DeadLetterSpec = spec(json!({
        "provider": "aws", "aws": {}, "redrive": {"id": "r1", "destinationRef": {"name": "q"}}
    }));
    assert_eq!(
        references(Spec::DeadLetter(&dead_letter)),
        [Reference::Queue("q".into())]
    );
    let mut referenced = Referenced::default();
    referenced.queues.insert("q".into(), sqs_queue("q", false));
    assert!(check(Spec::DeadLetter(&dead_letter), &referenced).is_empty());
    referenced.queues.insert("q".into(), storage_queue("q", "acct"));
    let violations = check(Spec::DeadLetter(&dead_letter), &referenced);
    assert_eq!(fields(&violations), ["spec.redrive.destinationRef"]);
}

#[test]
fn a_standard_dead_letter_keeping_messages_no_longer_than_its_source_is_a_warning_not_a_refusal() {
    let queue: QueueSpec =
        spec(json!({"aws": {"messageRetentionSeconds": 1_209_600}, "deadLetter": {"ref": {"name": "dlq"}}}));
    let short = Arc::new(DeadLetter::new(
        "dlq",
        spec(json!({"provider": "aws", "aws": {"messageRetentionSeconds": 345_600}})),
    ));
    let referenced = with_dead_letter(short);
    assert!(check(Spec::Queue(&queue), &referenced).is_empty());
    let warnings = warnings(Spec::Queue(&queue), &referenced);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with("spec.deadLetter.ref: DeadLetter dlq keeps messages 345600 s"),
        "{warnings:?}"
    );
    let default_retention: QueueSpec = spec(json!({"aws": {}, "deadLetter": {"ref": {"name": "dlq"}}}));
    let longer = with_dead_letter(sqs_dead_letter(false));
    assert!(super::warnings(Spec::Queue(&default_retention), &longer).is_empty());
}

#[test]
fn a_consumer_cannot_drain_a_queue_with_a_visibility_timeout_of_zero() {
    let consumer: ConsumerSpec =
        spec(json!({"source": {"queueRef": {"name": "work"}}, "processor": "inventory"}));
    let with_queue = |queue: Value| {
        let mut referenced = Referenced::default();
        referenced
            .queues
            .insert("work".into(), Arc::new(Queue::new("work", spec(queue))));
        check(Spec::Consumer(&consumer), &referenced)
    };
    assert!(with_queue(json!({"provider": "aws", "aws": {"visibilityTimeoutSeconds": 1}})).is_empty());
    let violations =
        with_queue(json!({"provider": "aws", "aws": {"fifo": true, "visibilityTimeoutSeconds": 0}}));
    assert_eq!(fields(&violations), ["spec.source.queueRef"]);
    assert!(
        violations[0]
            .rule
            .contains("Queue work has spec.aws.visibilityTimeoutSeconds 0"),
        "{}",
        violations[0]
    );
    let violations = with_queue(
        json!({"provider": "azure", "azure": {"storageAccount": "acct", "visibilityTimeoutSeconds": 0}}),
    );
    assert!(
        violations[0]
            .rule
            .contains("spec.azure.visibilityTimeoutSeconds 0"),
        "{}",
        violations[0]
    );
    assert!(
        check(Spec::Consumer(&consumer), &Referenced::default()).is_empty(),
        "a Queue not created yet is waited for"
    );
}
