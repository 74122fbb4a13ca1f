//! The worker runtime on real SQS servers (ElasticMQ, and moto for the dead-letter path): messages are
//! processed once and deleted, failures are retried through the visibility timeout and dead-lettered with
//! their reason when the attempts are used up, malformed ones are dead-lettered at once, long work keeps
//! its messages invisible, and a shutdown releases unfinished messages to other workers.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tributary::{
    cloud::{
        aws::SqsWorkQueue,
        work_queue::{DEAD_LETTER_REASON, WorkQueue},
    },
    worker::{
        config::Retry,
        message::Message,
        metrics::WorkerMetrics,
        processor::{Outcome, Processor},
        runtime::{self, Settings},
    },
};

/// Answers by the body: `poison…` is rejected, `flaky…` fails on its first receive, `broken…` always
/// fails, `slow…` takes 4 s; everything else succeeds. Counts the calls per body.
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
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            Outcome::Done
        }
    }
}

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

async fn retries_and_dead_letters_on(aws: aws_config::SdkConfig) {
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // Visibility 10 s: a retry whose visibility change fails reappears after it (the runtime's
    // fallback), well within the wait below, so a slow server delays the test instead of failing it.
    let (url, dlq) = (queue(&sqs, "work", 10).await, queue(&sqs, "dead", 30).await);
    let mut bodies: Vec<String> = (0..40).map(|i| format!("ok {i:02}")).collect();
    bodies.extend((0..5).map(|i| format!("flaky {i}")));
    bodies.extend((0..3).map(|i| format!("poison {i}")));
    bodies.push("broken 0".into());
    send(&sqs, &url, &bodies).await;

    let processor = Scripted::default();
    let metrics = WorkerMetrics::new();
    let work_queue = SqsWorkQueue::new(sqs.clone(), url.clone(), Some(dlq.clone()));
    let (stop, shutdown) = stopper();
    let worker = tokio::spawn(runtime::run(
        work_queue,
        Arc::new(processor.clone()),
        settings(10, 5),
        metrics.clone(),
        shutdown,
    ));
    // 40 + 5 succeed; 3 rejected and 1 exhausted are dead-lettered.
    // A timeout says how far it got, and which messages were seen how often (a full suite has hung here
    // intermittently on moto; alone it settles in seconds).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(metrics.processed_total() == 45 && metrics.dead_lettered_total() == 4) {
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
    for body in &bodies {
        let expected = match body.split(' ').next().unwrap() {
            "flaky" => 2,
            "broken" => 3,
            _ => 1,
        };
        assert_eq!(calls[body], expected, "{body}");
    }
    assert!(drain(&sqs, &url).await.is_empty(), "nothing left in the queue");
    let dead = drain(&sqs, &dlq).await;
    let mut reasons: Vec<(String, serde_json::Value)> = dead
        .iter()
        .map(|m| {
            let attributes = m.message_attributes.clone().unwrap();
            assert_eq!(attributes["event"].string_value(), Some("OrderPlaced"), "kept");
            let reason = attributes[DEAD_LETTER_REASON].string_value().unwrap();
            (m.body.clone().unwrap(), serde_json::from_str(reason).unwrap())
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
    retries_and_dead_letters_on(common::elasticmq_config().await).await;
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_with_the_reason_on_moto() {
    retries_and_dead_letters_on(common::aws_config().await).await;
}

#[tokio::test]
async fn long_work_keeps_its_messages_and_shutdown_releases_unfinished_ones() {
    let sqs = aws_sdk_sqs::Client::new(&common::elasticmq_config().await);
    // Visibility 2 s, work 4 s: without the heartbeat another receiver would get the message again.
    let url = queue(&sqs, "slow", 2).await;
    send(&sqs, &url, &["slow a".to_owned(), "slow b".to_owned()]).await;
    let processor = Scripted::default();
    let metrics = WorkerMetrics::new();
    let run = |drain: u64, processor: Scripted, metrics: WorkerMetrics| {
        let work_queue = SqsWorkQueue::new(sqs.clone(), url.clone(), None);
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
    common::eventually("both done", Duration::from_secs(20), || {
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
    assert!(drain(&sqs, &url).await.is_empty());

    // Shut down 1 s into a 4 s job with 1 s to drain: the message is released, visible again at once.
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
    let sqs = aws_sdk_sqs::Client::new(&common::elasticmq_config().await);
    let url = queue(&sqs, "nodlq", 30).await;
    send(&sqs, &url, &["poison x".to_owned()]).await;
    let work_queue = SqsWorkQueue::new(sqs.clone(), url.clone(), None);
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
