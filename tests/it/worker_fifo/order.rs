//! Order within message groups through a crash: `FIFO_MESSAGES` messages (default 2,000) in `FIFO_GROUPS`
//! groups (default 100) on an ElasticMQ FIFO queue, drained by a real `tributary worker` process running
//! the notification processor (DynamoDB on moto), SIGKILLed once half are processed and restarted.
//!
//! The effect of message `i` of group `g` is the notification item `NOTIFICATION#Step<i>` of order `g`,
//! written once (a conditional put: a redelivery writes nothing) and stamped with the time it was written
//! (RFC 3339 with nanoseconds). Within a group the messages must have taken effect in sequence order:
//! sorted by their stamps, the items of a group read `Step0, Step1, …`. Counted: groups checked, items out
//! of order (a stamp earlier than its predecessor's), lost (no item), duplicates (deliveries the processor
//! found already done, from the workers' logs: what SIGKILL redelivered). The figures are printed
//! (`--nocapture`).
//!
//! ElasticMQ rather than moto for the queue: both keep the group rule (checked by the module's other
//! tests), ElasticMQ is the faster (2.6× on 300 messages in 20 groups with 8 receivers), and moto then only
//! serves DynamoDB. The worker reaches each through the SDK's service-specific endpoint variables.

use crate::support as common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use futures::StreamExt as _;
use tributary::worker::orders::{
    model::{Delivery, Item, OrderEvent, OrderRequest},
    table::OrderTable,
};

/// `FIFO_MESSAGES` and `FIFO_GROUPS`: the messages and the groups they are spread over.
fn size() -> (usize, usize) {
    let read = |name: &str, default: usize| {
        std::env::var(name).ok().map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
    };
    let (messages, groups) = (read("FIFO_MESSAGES", 2_000), read("FIFO_GROUPS", 100));
    assert!(groups > 0 && messages >= groups, "at least one message per group");
    (messages, groups)
}

fn order_id(group: usize) -> String {
    format!("o-fifo-{group:04}")
}

/// Message `step` of `group`: an order event whose kind names its step.
fn body(group: usize, step: usize) -> String {
    let request = OrderRequest {
        customer_id: "c-fifo".into(),
        items: vec![Item {
            sku: "sku-a".into(),
            quantity: 1,
            unit_price_cents: 100,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Standard,
        idempotency_key: None,
    };
    let event = OrderEvent::placed(&order_id(group), &request).followed_by(&format!("Step{step:05}"), None);
    serde_json::to_string(&event).unwrap()
}

/// Sends step after step, each step's messages of every group in batches of 10 (one per group) at once:
/// a group's messages go in sequence order.
async fn send_all(sqs: &aws_sdk_sqs::Client, url: &str, messages: usize, groups: usize) {
    let steps = messages.div_ceil(groups);
    let mut sent = 0;
    for step in 0..steps {
        let in_step: Vec<usize> = (0..groups).take(messages - sent).collect();
        sent += in_step.len();
        let batches = in_step.chunks(10).map(|chunk| {
            let entries: Vec<_> = chunk
                .iter()
                .map(|&group| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("g{group}"))
                        .message_body(body(group, step))
                        .message_group_id(order_id(group))
                        .message_deduplication_id(format!("{group}-{step}"))
                        .build()
                        .unwrap()
                })
                .collect();
            sqs.send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
        });
        let results: Vec<_> = futures::stream::iter(batches)
            .buffer_unordered(10)
            .collect()
            .await;
        for result in results {
            assert!(result.unwrap().failed.is_empty(), "every message sent");
        }
    }
}

/// A `tributary worker` process draining the FIFO queue with the notification processor.
struct Worker {
    child: Child,
    metrics_port: u16,
}

impl Worker {
    fn start(config: &Path, log: &Path) -> Self {
        let metrics_port = common::free_port();
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(common::tributary_bin())
            .args(["worker", "--log-format", "json", "--config"])
            .arg(config)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            // DynamoDB on moto, SQS on ElasticMQ.
            .env("AWS_ENDPOINT_URL", common::var("AWS_ENDPOINT_URL"))
            .env("AWS_ENDPOINT_URL_SQS", common::var("ELASTICMQ_ENDPOINT_URL"))
            .env("AWS_REGION", common::var("AWS_REGION"))
            .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
            .env("RUST_LOG", "warn,tributary::worker::orders::processors=info")
            .stdout(Stdio::null())
            .stderr(output)
            .spawn()
            .unwrap();
        Self { child, metrics_port }
    }

    async fn processed(&self) -> u64 {
        common::metric(self.metrics_port, "tributary_worker_messages_processed_total")
            .await
            .unwrap_or(0)
    }
}

/// A failing test must not leave a worker draining the test bed.
impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_config(dir: &Path, url: &str, table: &str) -> PathBuf {
    let config = dir.join("worker.yaml");
    let text = format!(
        "consumer: {{namespace: test, name: fifo-order}}\nprocessor: notification\nsource:\n  sqs:\n    \
         queueUrl: {url}\n    visibilityTimeoutSeconds: 10\n    receivers: 4\n    waitTimeSeconds: 1\n\
         sink: {{table: {table}}}\ndrainSeconds: 2\n"
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// Messages in the queue, visible or in flight.
async fn left(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

/// What the check found.
#[derive(Debug, Default)]
struct Figures {
    groups: usize,
    effects: usize,
    out_of_order: usize,
    lost: usize,
}

/// Reads each group's notification items and checks their stamps follow the steps.
async fn check(dynamodb: &aws_sdk_dynamodb::Client, table: &str, messages: usize, groups: usize) -> Figures {
    let mut figures = Figures::default();
    for group in 0..groups {
        let expected = (messages - group).div_ceil(groups);
        let mut stamped: Vec<(time::OffsetDateTime, usize)> = Vec::new();
        let mut pages = dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :sk)")
            .expression_attribute_values(":pk", AttributeValue::S(format!("ORDER#{}", order_id(group))))
            .expression_attribute_values(":sk", AttributeValue::S("NOTIFICATION#Step".into()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.unwrap();
            let step = item["sk"].as_s().unwrap()["NOTIFICATION#Step".len()..]
                .parse()
                .unwrap();
            let at = item["at"].as_s().unwrap();
            let at = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap();
            stamped.push((at, step));
        }
        stamped.sort();
        figures.groups += 1;
        figures.effects += stamped.len();
        figures.lost += expected.saturating_sub(stamped.len());
        figures.out_of_order += stamped.windows(2).filter(|w| w[1].1 < w[0].1).count();
        let steps: Vec<usize> = stamped.iter().map(|(_, step)| *step).collect();
        if steps.iter().enumerate().any(|(i, step)| i != *step) {
            eprintln!("group {group}: effects in the order {steps:?}");
        }
    }
    figures
}

/// Deliveries the notification processor found already done, in the workers' JSON logs.
fn duplicates(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("customer notified") && line.contains("\"duplicate\":true"))
        .count()
}

#[tokio::test]
async fn order_holds_within_groups_when_the_worker_is_killed_in_the_middle() {
    let (messages, groups) = size();
    // Alone when big: thousands of messages would hold up other tests' moto calls.
    let (_shared, _alone) = if messages > 2_000 {
        (None, Some(common::exclusive().await))
    } else {
        (Some(common::shared().await), None)
    };
    let sqs = aws_sdk_sqs::Client::new(&common::elasticmq_config().await);
    let aws = common::aws_config().await;
    let table_name = common::unique("fifo-orders");
    OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name.clone())
        .ensure()
        .await
        .unwrap();
    let url = super::fifo_queue(&sqs, "fifo-order", 10).await;
    let started = Instant::now();
    send_all(&sqs, &url, messages, groups).await;
    let sending = started.elapsed();

    let dir = std::env::temp_dir().join(common::unique("worker-fifo"));
    std::fs::create_dir_all(&dir).unwrap();
    let (config, log) = (write_config(&dir, &url, &table_name), dir.join("worker.log"));
    let started = Instant::now();
    let mut first = Worker::start(&config, &log);
    let half = (messages / 2) as u64;
    let bound = Duration::from_secs(120 + messages as u64 / 20);
    common::eventually("half the messages processed", bound, || {
        let worker = &first;
        async move { (worker.processed().await >= half).then_some(()) }
    })
    .await;
    first.child.kill().unwrap();
    let _ = first.child.wait();
    let killed_at = started.elapsed();
    let second = Worker::start(&config, &log);
    common::eventually("the queue drained", bound, || {
        let sqs = sqs.clone();
        let url = url.clone();
        async move { (left(&sqs, &url).await == 0).then_some(()) }
    })
    .await;
    let drained = started.elapsed();
    let after_restart = second.processed().await;
    drop(second);

    let figures = check(
        &aws_sdk_dynamodb::Client::new(&aws),
        &table_name,
        messages,
        groups,
    )
    .await;
    let duplicates = duplicates(&log);
    println!(
        "FIFO order: {messages} messages in {groups} groups (sent in {sending:.1?}); worker SIGKILLed at \
         {killed_at:.1?} after >= {half} processed, restarted, queue drained at {drained:.1?} \
         ({after_restart} processed after the restart); groups checked {}, effects {}, out of order {}, \
         lost {}, duplicate deliveries absorbed {duplicates}; log {}",
        figures.groups,
        figures.effects,
        figures.out_of_order,
        figures.lost,
        log.display()
    );
    assert_eq!(figures.groups, groups);
    assert_eq!(figures.lost, 0, "{figures:?}");
    assert_eq!(figures.out_of_order, 0, "{figures:?}");
    assert_eq!(figures.effects, messages, "one effect per message: {figures:?}");
}
