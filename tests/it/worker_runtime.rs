//! The worker runtime on real queue servers (ElasticMQ; moto and Azurite's storage queues for the
//! dead-letter path): messages are processed once and deleted, failures are retried through the
//! visibility timeout and dead-lettered with their reason when the attempts are used up, malformed ones are
//! dead-lettered at once, long work keeps its messages invisible, and a shutdown releases unfinished
//! messages to other workers.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use azure_storage_queue::models::QueueMessage;
use tributary::{
    cloud::{
        MessageQueue,
        aws::SqsQueue,
        azure::{envelope, queue::StorageQueue},
        queue::{DEAD_LETTER_REASON, MessageAttribute},
    },
    worker::{
        config::Retry,
        message::Message,
        metrics::WorkerMetrics,
        processor::{Outcome, Processor},
        queue::WorkQueue,
        runtime::{self, Settings},
    },
};

/// Answers by the body: `poison…` is rejected, `flaky…` fails on its first receive, `broken…` always
/// fails, `slow…` takes [`SLOW`]; everything else succeeds. Counts the calls per body.
#[derive(Clone, Default)]
struct Scripted {
    calls: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Processor for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    async fn process(&self, message: &Message) -> Outcome {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(message.body.clone())
            .or_default() += 1;
        let body = message.body.as_str();
        if body.starts_with("poison") {
            Outcome::Reject(format!("{body} is malformed"))
        } else if body.starts_with("flaky") && message.receive_count == 1 {
            Outcome::Retry("first attempt fails".into())
        } else if body.starts_with("broken") {
            Outcome::Retry("the table is down".into())
        } else {
            if body.starts_with("slow") {
                tokio::time::sleep(SLOW).await;
            }
            Outcome::Done
        }
    }
}

/// Slow work: longer than the runtime's shortest hold on a message (a receive hides it for at least twice
/// the shortest heartbeat, whatever the queue's visibility timeout), so only heartbeats keep it hidden.
const SLOW: Duration = Duration::from_secs(tributary::worker::hold::MIN_HEARTBEAT.as_secs() * 2 + 2);

/// A shutdown signal for the runtime and the switch that fires it.
fn stopper() -> (
    tokio::sync::oneshot::Sender<()>,
    futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = futures::FutureExt::boxed(async {
        let _ = stopped.await;
    });
    (stop, futures::FutureExt::shared(shutdown))
}

fn settings(visibility: u64, drain: u64) -> Settings {
    Settings {
        consumer: "test/scripted".into(),
        receivers: 3,
        wait_seconds: 1,
        visibility_timeout: Duration::from_secs(visibility),
        retry: Retry {
            max_attempts: 3,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 2,
        },
        drain: Duration::from_secs(drain),
        max_receive_count: None,
    }
}

async fn queue(sqs: &aws_sdk_sqs::Client, prefix: &str, visibility: u64) -> String {
    sqs.create_queue()
        .queue_name(common::unique(prefix))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, bodies: &[String]) {
    for body in bodies {
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value("OrderPlaced")
            .build()
            .unwrap();
        sqs.send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("event", attribute)
            .send()
            .await
            .unwrap();
    }
}

/// Every message in a queue with its attributes, received and deleted.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    common::receive_messages(sqs, url).await
}

/// What a drained queue held: each message's body and string attributes.
type Drained = Vec<(String, BTreeMap<String, String>)>;

/// A work queue with its dead letter on one server, the bodies already sent to it, and a way to drain
/// the work queue (`false`) or the dead letter (`true`) afterwards.
struct Bed<Q> {
    queue: Q,
    drain: Box<dyn Fn(bool) -> futures::future::BoxFuture<'static, Drained>>,
}

async fn sqs_bed(aws: aws_config::SdkConfig, bodies: &[String]) -> Bed<WorkQueue<SqsQueue>> {
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Visibility 10 s: a retry whose visibility change fails reappears after it (the runtime's
    // fallback), well within the wait below, so a slow server delays the test instead of failing it.
    let (url, dlq) = (queue(&sqs, "work", 10).await, queue(&sqs, "dead", 30).await);
    send(&sqs, &url, bodies).await;
    let queue = WorkQueue::new(
        SqsQueue::new(sqs.clone(), url.clone()),
        Some(SqsQueue::new(sqs.clone(), dlq.clone())),
    );
    let drain = move |dead: bool| {
        let (sqs, url) = (sqs.clone(), if dead { dlq.clone() } else { url.clone() });
        futures::FutureExt::boxed(async move {
            drain(&sqs, &url)
                .await
                .into_iter()
                .map(|m| {
                    let attributes = m.message_attributes.unwrap_or_default().into_iter();
                    let strings = attributes.filter_map(|(k, v)| Some((k, v.string_value?)));
                    (m.body.unwrap(), strings.collect())
                })
                .collect()
        })
    };
    Bed {
        queue,
        drain: Box::new(drain),
    }
}

async fn azure_bed(bodies: &[String]) -> Bed<WorkQueue<StorageQueue>> {
    let service = common::azure_queue_service();
    let names = [common::unique("work"), common::unique("dead")].map(|n| n.to_lowercase());
    let [work, dead] = names.clone().map(|name| service.queue_client(&name).unwrap());
    for client in [&work, &dead] {
        client.create(None).await.unwrap();
    }
    let event = BTreeMap::from([(
        "event".to_owned(),
        MessageAttribute {
            data_type: "String".into(),
            string_value: Some("OrderPlaced".into()),
            binary_value: None,
        },
    )]);
    for body in bodies {
        let text = envelope::encode(body, &event);
        let message = QueueMessage {
            message_text: Some(text),
        };
        work.send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    let [runtime_work, runtime_dead] = names.map(|name| service.queue_client(&name).unwrap());
    let queue = WorkQueue::new(
        StorageQueue::new(runtime_work).with_visibility_timeout(Duration::from_secs(10)),
        Some(StorageQueue::new(runtime_dead).never_expiring()),
    );
    let (work, dead) = (Arc::new(work), Arc::new(dead));
    let drain = move |dead_letter: bool| {
        let client = if dead_letter { dead.clone() } else { work.clone() };
        futures::FutureExt::boxed(async move { common::azure_drain(&client).await })
    };
    Bed {
        queue,
        drain: Box::new(drain),
    }
}

/// The bodies of the shared dead-letter case: 40 succeed, 5 fail once, 3 are malformed, 1 always fails.
fn mixed_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = (0..40).map(|i| format!("ok {i:02}")).collect();
    bodies.extend((0..5).map(|i| format!("flaky {i}")));
    bodies.extend((0..3).map(|i| format!("poison {i}")));
    bodies.push("broken 0".into());
    bodies
}

async fn retries_and_dead_letters<Q: MessageQueue + Clone + 'static>(
    bed: Bed<WorkQueue<Q>>,
    bodies: &[String],
) {
    let processor = Scripted::default();
    let metrics = WorkerMetrics::new();
    let (stop, shutdown) = stopper();
    let worker = tokio::spawn(runtime::run(
        bed.queue,
        Arc::new(processor.clone()),
        settings(10, 5),
        metrics.clone(),
        shutdown,
    ));
    // 40 + 5 succeed; 3 rejected and 1 exhausted are dead-lettered. Waiting for at least those counts, so
    // a message processed twice fails the exact counts below instead of keeping this loop waiting (an
    // unpatched moto let two concurrent receives take one message: testbed/moto-patch.py). A timeout says
    // how far it got, and which messages were seen how often.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while metrics.processed_total() < 45 || metrics.dead_lettered_total() < 4 {
        if tokio::time::Instant::now() > deadline {
            let calls = processor.calls.lock().unwrap().clone();
            let missing: Vec<&String> = bodies.iter().filter(|b| !calls.contains_key(*b)).collect();
            panic!(
                "not settled after 120 s: processed {}, failed {}, dead-lettered {}; never processed: {missing:?}; calls: {calls:?}",
                metrics.processed_total(),
                metrics.failed_total(),
                metrics.dead_lettered_total(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).unwrap();
    worker.await.unwrap();

    let calls = processor.calls.lock().unwrap().clone();
    for body in bodies {
        let expected = match body.split(' ').next().unwrap() {
            "flaky" => 2,
            "broken" => 3,
            _ => 1,
        };
        assert_eq!(calls[body], expected, "{body}: calls {calls:?}");
    }
    assert!((bed.drain)(false).await.is_empty(), "nothing left in the queue");
    let mut reasons: Vec<(String, serde_json::Value)> = (bed.drain)(true)
        .await
        .into_iter()
        .map(|(body, attributes)| {
            assert_eq!(attributes["event"], "OrderPlaced", "kept");
            (
                body,
                serde_json::from_str(&attributes[DEAD_LETTER_REASON]).unwrap(),
            )
        })
        .collect();
    reasons.sort_by(|a, b| a.0.cmp(&b.0));
    let bodies: Vec<&str> = reasons.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["broken 0", "poison 0", "poison 1", "poison 2"]);
    assert_eq!(reasons[0].1["reason"], "failed 3 times; last: the table is down");
    assert_eq!(reasons[0].1["attempts"], 3);
    assert_eq!(reasons[1].1["reason"], "poison 0 is malformed");
    assert_eq!(reasons[1].1["consumer"], "test/scripted");
    assert_eq!(
        metrics.failed_total(),
        5 + 3 + 3,
        "5 flaky, 3 broken attempts, 3 rejections"
    );
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_with_the_reason_on_elasticmq() {
    let _bed = common::shared().await;
    let bodies = mixed_bodies();
    retries_and_dead_letters(sqs_bed(common::elasticmq_config().await, &bodies).await, &bodies).await;
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_with_the_reason_on_moto() {
    let _bed = common::shared().await;
    let bodies = mixed_bodies();
    retries_and_dead_letters(sqs_bed(common::aws_config().await, &bodies).await, &bodies).await;
}

/// A storage queue has no native dead-lettering: the runtime sends the message, its attributes (in the
/// envelope) and the reason to the dead-letter queue itself.
#[tokio::test]
async fn failures_are_retried_then_dead_lettered_with_the_reason_on_azurite() {
    let _bed = common::shared().await;
    let bodies = mixed_bodies();
    retries_and_dead_letters(azure_bed(&bodies).await, &bodies).await;
}

/// Waits until both slow messages are done, stops the runtime, and checks each was processed once (the
/// heartbeat kept it from another receive).
async fn stop_when_both_done_once(
    metrics: &WorkerMetrics,
    processor: &Scripted,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
) {
    common::eventually("both done", SLOW * 3, || {
        let metrics = metrics.clone();
        async move { (metrics.processed_total() == 2).then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let calls = processor.calls.lock().unwrap().clone();
    assert_eq!(
        calls.values().copied().collect::<Vec<_>>(),
        [1, 1],
        "processed once each: {calls:?}"
    );
}

#[tokio::test]
async fn long_work_keeps_its_messages_and_shutdown_releases_unfinished_ones() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::elasticmq_config().await);
    // Visibility 2 s (the runtime holds messages 10 s at least), work 12 s: without the heartbeat another
    // receiver would get the message again.
    let url = queue(&sqs, "slow", 2).await;
    send(&sqs, &url, &["slow a".to_owned(), "slow b".to_owned()]).await;
    let processor = Scripted::default();
    let metrics = WorkerMetrics::new();
    let run = |drain: u64, processor: Scripted, metrics: WorkerMetrics| {
        let work_queue = WorkQueue::new(SqsQueue::new(sqs.clone(), url.clone()), None);
        let (stop, shutdown) = stopper();
        let task = tokio::spawn(runtime::run(
            work_queue,
            Arc::new(processor),
            settings(2, drain),
            metrics,
            shutdown,
        ));
        (stop, task)
    };
    let (stop, task) = run(10, processor.clone(), metrics.clone());
    stop_when_both_done_once(&metrics, &processor, stop, task).await;
    assert!(drain(&sqs, &url).await.is_empty());

    // Shut down 1 s into a 12 s job with 1 s to drain: the message is released, visible again at once.
    send(&sqs, &url, &["slow c".to_owned()]).await;
    let processor = Scripted::default();
    let (stop, task) = run(1, processor.clone(), WorkerMetrics::new());
    common::eventually("the job started", Duration::from_secs(10), || {
        let calls = processor.calls.clone();
        async move { (!calls.lock().unwrap().is_empty()).then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let released = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(released.len(), 1, "released for another worker");
    assert_eq!(released[0].body.as_deref(), Some("slow c"));
}

#[tokio::test]
async fn without_a_dead_letter_a_rejected_message_stays_hidden_not_deleted() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::elasticmq_config().await);
    let url = queue(&sqs, "nodlq", 30).await;
    send(&sqs, &url, &["poison x".to_owned()]).await;
    let work_queue = WorkQueue::new(SqsQueue::new(sqs.clone(), url.clone()), None);
    assert!(!work_queue.has_dead_letter());
    let metrics = WorkerMetrics::new();
    let (stop, shutdown) = stopper();
    let task = tokio::spawn(runtime::run(
        work_queue,
        Arc::new(Scripted::default()),
        settings(30, 1),
        metrics.clone(),
        shutdown,
    ));
    common::eventually("the rejection", Duration::from_secs(10), || {
        let metrics = metrics.clone();
        async move { (metrics.failed_total() == 1).then_some(()) }
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let hidden = &attributes[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible];
    assert_eq!(hidden, "1", "kept in the queue, hidden");
    assert_eq!(metrics.dead_lettered_total(), 0);
}

/// On a storage queue every visibility update replaces the message's pop receipt: work longer than the
/// visibility timeout is kept hidden by heartbeats, and its delete uses the newest receipt.
#[tokio::test]
async fn long_work_on_a_storage_queue_is_kept_hidden_and_deleted_with_the_newest_receipt() {
    let _bed = common::shared().await;
    let service = common::azure_queue_service();
    let name = common::unique("slow").to_lowercase();
    let setup = service.queue_client(&name).unwrap();
    setup.create(None).await.unwrap();
    for body in ["slow a", "slow b"] {
        let message = QueueMessage {
            message_text: Some(body.to_owned()),
        };
        setup
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    // Visibility 2 s (the runtime holds messages 10 s at least), work 12 s: without the heartbeat another
    // receive would get the message again.
    let queue = WorkQueue::new(
        StorageQueue::new(service.queue_client(&name).unwrap())
            .with_visibility_timeout(Duration::from_secs(2)),
        None,
    );
    let processor = Scripted::default();
    let metrics = WorkerMetrics::new();
    let (stop, shutdown) = stopper();
    let task = tokio::spawn(runtime::run(
        queue,
        Arc::new(processor.clone()),
        settings(2, 10),
        metrics.clone(),
        shutdown,
    ));
    stop_when_both_done_once(&metrics, &processor, stop, task).await;
    // Both deletes went through with the receipts the heartbeats left: nothing comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(common::azure_drain(&setup).await.is_empty(), "deleted");
}
