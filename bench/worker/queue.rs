//! The SQS side of the worker bench: a client for the test bed's server, filling the queue with the same
//! messages every round, its depth, and the bare aws-sdk receive/delete-batch loop the runtime is
//! compared with.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, QueueAttributeName, SendMessageBatchRequestEntry,
};

/// A client of `endpoint` with the test bed's region and credentials.
pub async fn client(endpoint: &str, env: &HashMap<String, String>) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(env["AWS_REGION"].clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            env["AWS_ACCESS_KEY_ID"].clone(),
            env["AWS_SECRET_ACCESS_KEY"].clone(),
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// The body of message `i`: ~300 bytes of JSON, like an order.
pub fn body(i: usize) -> String {
    format!("{{\"orderId\":\"o-{i}\",\"pad\":\"{}\"}}", "x".repeat(260))
}

/// Sends `count` messages (`body(i)`, one `event` attribute), 10 per call, 8 calls at a time.
pub async fn fill(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) {
    let indexes: Vec<usize> = (0..count).collect();
    for group in indexes.chunks(80) {
        let calls = group.chunks(10).map(|batch| {
            let entries = batch
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(body(i))
                        .message_attributes(
                            "event",
                            MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value("OrderPlaced")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap()
                })
                .collect();
            sqs.send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
        });
        for result in futures::future::join_all(calls).await {
            result.expect("send_message_batch");
        }
    }
}

/// (visible, in flight) messages of the queue.
pub async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (i64, i64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("get_queue_attributes")
        .attributes
        .unwrap_or_default();
    let get = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Waits (at most `bound`) until the queue holds nothing, visible or in flight; panics naming what is
/// left, since a round that starts on leftovers measures them, not the case.
pub async fn wait_empty(sqs: &aws_sdk_sqs::Client, url: &str, bound: Duration) {
    let until = Instant::now() + bound;
    loop {
        let left = depth(sqs, url).await;
        if left == (0, 0) {
            return;
        }
        assert!(
            Instant::now() < until,
            "the queue still holds {left:?} (visible, in flight) messages after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The bare loop: `receivers` tasks, each receive 10 (long poll) → delete batch, until `count` are
/// deleted. Every task's last receive is awaited, so none is left pending at the server.
pub async fn bare_loop(sqs: &aws_sdk_sqs::Client, url: &str, count: usize, receivers: usize) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..receivers)
        .map(|_| {
            let (sqs, url, done) = (sqs.clone(), url.to_owned(), done.clone());
            tokio::spawn(async move {
                while done.load(Relaxed) < count {
                    let received = sqs
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .message_attribute_names("All")
                        .send()
                        .await
                        .expect("receive");
                    let messages = received.messages.unwrap_or_default();
                    if messages.is_empty() {
                        continue;
                    }
                    let entries = messages
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                                .build()
                                .unwrap()
                        })
                        .collect();
                    sqs.delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("delete");
                    done.fetch_add(messages.len(), Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}
