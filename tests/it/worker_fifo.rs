//! FIFO end to end on the test bed. SQS FIFO queues on ElasticMQ and moto (both keep SQS's group rule:
//! no message of a group is handed out while an earlier one of it is in flight; both refuse a send to a
//! FIFO queue without a group, as SQS does), DynamoDB and SNS on moto:
//! - a poisoned message is dead-lettered to a FIFO dead letter in its group, and its group goes on in order
//!   past it and past a retried message (the runtime in this process, on both servers);
//! - the processors publish each order's events in the order's group on a FIFO topic;
//! - `examples/orders-fifo` passes the API server's rules and the cross-object rules;
//! - order within groups holds over many messages with the worker process SIGKILLed in the middle
//!   ([`order`]).
#![allow(clippy::unwrap_used)]

mod order;

use crate::support as common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use tributary::{
    admission::{self, Referenced, Spec},
    api::{Consumer, DeadLetter, Queue, Subscription, Topic},
    cloud::{
        aws::{SnsPublisher, SqsQueue},
        queue::DEAD_LETTER_REASON,
    },
    worker::{
        config::Retry,
        message::Message,
        metrics::WorkerMetrics,
        orders::{
            model::{Delivery, Item, OrderEvent, OrderRequest, events},
            processors::Inventory,
            store::OrderStore,
            table::OrderTable,
        },
        processor::{Outcome, Processor},
        queue::WorkQueue,
        runtime::{self, Settings},
    },
};

/// A FIFO queue named `prefix…fifo` with this visibility timeout.
pub async fn fifo_queue(sqs: &aws_sdk_sqs::Client, prefix: &str, visibility: u32) -> String {
    sqs.create_queue()
        .queue_name(format!("{}.fifo", common::unique(prefix)))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// Records the bodies it sees per group, in order. `poison…` is rejected, `flaky…` fails the first time
/// it is processed (not received: a message held behind a failure is received again unprocessed);
/// everything else succeeds.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<BTreeMap<String, Vec<String>>>>,
}

impl Processor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn process(&self, message: &Message) -> Outcome {
        let group = message.group_id.clone().unwrap_or_default();
        let body = message.body.clone();
        let first = {
            let mut seen = self.seen.lock().unwrap();
            let group = seen.entry(group).or_default();
            group.push(body.clone());
            group.iter().filter(|b| **b == body).count() == 1
        };
        if body.starts_with("poison") {
            Outcome::Reject(format!("{body} is malformed"))
        } else if body.starts_with("flaky") && first {
            Outcome::Retry("first attempt fails".into())
        } else {
            Outcome::Done
        }
    }
}

fn settings() -> Settings {
    Settings {
        consumer: "test/fifo".into(),
        receivers: 3,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(30),
        retry: Retry {
            max_attempts: 3,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 1,
        },
        drain: Duration::from_secs(2),
        max_receive_count: None,
    }
}

/// The case on one server: group `customer-7` holds a poisoned and a flaky message, `customer-8` does not.
async fn poisoned_message_in_its_group(aws: aws_config::SdkConfig, server: &str) {
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (url, dlq) = (
        fifo_queue(&sqs, "work", 30).await,
        fifo_queue(&sqs, "dead", 30).await,
    );
    let seven = ["ok 1", "poison 2", "flaky 3", "ok 4"];
    for (i, body) in seven.iter().enumerate() {
        send(&sqs, &url, body, "customer-7", &format!("seven-{i}")).await;
        send(
            &sqs,
            &url,
            &format!("ok {i}"),
            "customer-8",
            &format!("eight-{i}"),
        )
        .await;
    }
    let queue = WorkQueue::new(
        SqsQueue::new(sqs.clone(), url.clone()),
        Some(SqsQueue::new(sqs.clone(), dlq.clone())),
    );
    assert!(queue.is_fifo());
    let (processor, metrics) = (Recorder::default(), WorkerMetrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async {
        let _ = stopped.await;
    }));
    let worker = tokio::spawn(runtime::run(
        queue,
        Arc::new(processor.clone()),
        settings(),
        metrics.clone(),
        shutdown,
    ));
    common::eventually(&format!("{server}: 7 processed, 1 dead-lettered"), Duration::from_secs(60), || {
        let metrics = metrics.clone();
        async move { (metrics.processed_total() == 7 && metrics.dead_lettered_total() == 1).then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    worker.await.unwrap();

    let seen = processor.seen.lock().unwrap().clone();
    let expected = ["ok 1", "poison 2", "flaky 3", "flaky 3", "ok 4"];
    assert_eq!(
        seen["customer-7"], expected,
        "{server}: in order, the retry before the rest"
    );
    assert_eq!(seen["customer-8"], ["ok 0", "ok 1", "ok 2", "ok 3"], "{server}");
    let letters = received_with_ids(&sqs, &dlq).await;
    assert_eq!(letters.len(), 1, "{server}: {letters:?}");
    let (body, attributes, reason) = &letters[0];
    assert_eq!(body, "poison 2", "{server}");
    assert_eq!(
        attributes.get("MessageGroupId").map(String::as_str),
        Some("customer-7"),
        "{server}"
    );
    let deduplication = attributes.get("MessageDeduplicationId").unwrap();
    assert!(
        deduplication.starts_with("dead-letter-"),
        "{server}: {deduplication}"
    );
    assert!(reason.contains("malformed"), "{server}: {reason}");
    assert!(
        common::receive_all(&sqs, &url).await.is_empty(),
        "{server}: all deleted"
    );
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str, group: &str, deduplication: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(deduplication)
        .send()
        .await
        .unwrap();
}

/// The messages in `url` (up to 10, not deleted): body, system attributes, the dead-letter reason attribute.
async fn received_with_ids(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<(String, BTreeMap<String, String>, String)> {
    let received = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    received
        .into_iter()
        .map(|m| {
            let system = m.attributes.unwrap_or_default().into_iter();
            let system = system.map(|(k, v)| (k.as_str().to_owned(), v)).collect();
            let reason = m
                .message_attributes
                .unwrap_or_default()
                .remove(DEAD_LETTER_REASON);
            let reason = reason.and_then(|r| r.string_value).unwrap_or_default();
            (m.body.unwrap_or_default(), system, reason)
        })
        .collect()
}

#[tokio::test]
async fn a_poisoned_message_is_dead_lettered_in_its_group_and_the_group_goes_on_in_order() {
    let _bed = common::shared().await;
    poisoned_message_in_its_group(common::elasticmq_config().await, "elasticmq").await;
    poisoned_message_in_its_group(common::aws_config().await, "moto").await;
}

#[tokio::test]
async fn the_processors_publish_each_order_in_its_group_on_a_fifo_topic() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let (sns, sqs) = (aws_sdk_sns::Client::new(&aws), aws_sdk_sqs::Client::new(&aws));
    let topic = sns
        .create_topic()
        .name(format!("{}.fifo", common::unique("orders")))
        .attributes("FifoTopic", "true")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let url = fifo_queue(&sqs, "reserved", 30).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(common::queue_arn(&sqs, &url).await)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), common::unique("orders"));
    table.ensure().await.unwrap();
    table.set_stock("sku-a", 10).await.unwrap();
    let inventory = Inventory::new(table.clone(), Some(SnsPublisher::new(sns.clone(), topic)));
    let request = OrderRequest {
        customer_id: "c1".into(),
        items: vec![Item {
            sku: "sku-a".into(),
            quantity: 1,
            unit_price_cents: 1000,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Standard,
        idempotency_key: None,
    };
    for order in ["o-fifo-1", "o-fifo-2"] {
        let placed = OrderEvent::placed(order, &request);
        assert!(table.create_order(&placed, "", None).await.unwrap());
        let body = serde_json::to_string(&placed).unwrap();
        let message = Message::delivered("m".into(), body, BTreeMap::new(), 1);
        assert_eq!(inventory.process(&message).await, Outcome::Done);
    }
    let letters = received_with_ids(&sqs, &url).await;
    let mut groups: Vec<(String, String)> = letters
        .iter()
        .map(|(body, system, _)| {
            let event: OrderEvent = serde_json::from_str(body).unwrap();
            assert_eq!(event.kind, events::RESERVED);
            (event.order_id, system["MessageGroupId"].clone())
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("o-fifo-1".into(), "o-fifo-1".into()),
            ("o-fifo-2".into(), "o-fifo-2".into())
        ],
        "each order's event in the order's group"
    );
}

#[tokio::test]
async fn the_fifo_order_example_passes_the_api_server_and_the_cross_object_rules() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "examples-orders-fifo").await;
    let mut objects = Vec::new();
    for file in common::example_files("orders-fifo") {
        objects.extend(common::yaml_objects(&std::fs::read_to_string(&file).unwrap()));
    }
    let dry = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut referenced = Referenced::default();
    for object in &objects {
        let kind = object.types.as_ref().unwrap().kind.clone();
        common::tributary_api(&client, &ns, &kind)
            .create(&dry, object)
            .await
            .unwrap_or_else(|e| panic!("dry run of {kind}: {e}"));
        let name = kube::ResourceExt::name_any(object);
        let value = serde_json::to_value(object).unwrap();
        match kind.as_str() {
            "Topic" => {
                referenced
                    .topics
                    .insert(name, Arc::new(serde_json::from_value(value).unwrap()));
            }
            "Queue" => {
                referenced
                    .queues
                    .insert(name, Arc::new(serde_json::from_value(value).unwrap()));
            }
            "DeadLetter" => {
                referenced
                    .dead_letters
                    .insert(name, Arc::new(serde_json::from_value(value).unwrap()));
            }
            _ => {}
        }
    }
    let fifo = |queue: &Queue| queue.spec.aws.as_ref().is_some_and(|aws| aws.fifo);
    assert!(referenced.queues.values().all(|q| fifo(q)) && referenced.queues.len() == 3);
    let mut checked = 0;
    for object in &objects {
        let kind = object.types.as_ref().unwrap().kind.clone();
        let value = serde_json::to_value(object).unwrap();
        let violations = match kind.as_str() {
            "Topic" => check::<Topic>(value, |o| admission::check(Spec::Topic(&o.spec), &referenced)),
            "Queue" => check::<Queue>(value, |o| admission::check(Spec::Queue(&o.spec), &referenced)),
            "DeadLetter" => check::<DeadLetter>(value, |o| {
                admission::check(Spec::DeadLetter(&o.spec), &referenced)
            }),
            "Subscription" => check::<Subscription>(value, |o| {
                admission::check(Spec::Subscription(&o.spec), &referenced)
            }),
            "Consumer" => {
                check::<Consumer>(value, |o| admission::check(Spec::Consumer(&o.spec), &referenced))
            }
            other => panic!("unexpected kind {other}"),
        };
        assert!(violations.is_empty(), "{kind}: {violations:?}");
        checked += 1;
    }
    assert_eq!(checked, objects.len());
}

fn check<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    rules: impl Fn(&T) -> Vec<admission::Violation>,
) -> Vec<admission::Violation> {
    rules(&serde_json::from_value(value).unwrap())
}
