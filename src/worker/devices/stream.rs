//! The device processor's loop: read a batch from the consumer group, settle every event in it (its
//! document upserted into Cosmos DB, or the event dead-lettered with the reason), and only then commit
//! the batch's offsets. A replica that dies mid-batch leaves its offsets uncommitted, so another replica
//! reads those events again; the upsert keyed by event id makes the second write land on the same
//! document, which is how at-least-once delivery gives exactly-once effects.

use std::{collections::BTreeMap, future::Future, time::Duration};

use anyhow::Context as _;
use base64::Engine as _;
use futures::{
    FutureExt as _, StreamExt as _,
    future::{FusedFuture as _, Shared},
};
use rdkafka::{
    Message as _, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::{Headers as _, OwnedMessage},
};
use tokio::time::Instant;

use super::telemetry::{self, Position};
use crate::{
    cloud::{
        ErrorKind,
        azure::{
            cosmos::CosmosContainer,
            kafka::{KafkaEndpoint, dead_letter as dead_letter_attributes},
            queue::StorageQueue,
        },
        queue::MessageAttribute,
    },
    worker::{
        config::{KafkaSource, Retry},
        message::Message,
        metrics::{DeadLetterReason, WorkerMetrics},
        queue::{Delivery, send_dead_letter},
        runtime::reason_json,
    },
};

/// Longest pause between two attempts of one write: the batch waits for it, and a consumer that stops
/// polling for `max.poll.interval.ms` is dropped from its group.
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// The most of an event's body a dead letter carries (base64 and the envelope's escaping must still fit
/// a 64 KiB Storage Queue message).
const MAX_DEAD_LETTER_BODY: usize = 24 * 1024;
/// How long a batch keeps filling once its first event is there.
const FILL: Duration = Duration::from_millis(20);

/// What settles an event.
pub struct DeviceProcessor {
    /// The Consumer, for documents, logs and dead-letter reasons.
    pub consumer: String,
    /// Where documents go.
    pub container: CosmosContainer,
    /// The container's partition key path.
    pub partition_key_path: String,
    /// The dead-letter Storage Queue, if the Consumer has one.
    pub dead_letter: Option<StorageQueue>,
    /// Attempts of a failing write.
    pub retry: Retry,
    /// Counters.
    pub metrics: WorkerMetrics,
}

/// Reads `source` until `shutdown`, then finishes the batch in hand (for at most `drain`) and commits it.
pub async fn run<S: Future<Output = ()> + Send + 'static>(
    source: &KafkaSource,
    endpoint: &KafkaEndpoint,
    processor: DeviceProcessor,
    shutdown: Shared<S>,
    drain: Duration,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = endpoint
        .client_config()
        .set("group.id", &source.consumer_group)
        .set("client.id", &processor.consumer)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            (source.session_timeout_seconds * 1000).to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            (source.session_timeout_seconds * 1000 / 10).to_string(),
        )
        .create()
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[&source.topic])
        .with_context(|| format!("cannot subscribe to {}", source.topic))?;
    let origin = format!("kafka://{}/{}", endpoint.bootstrap_servers, source.topic);
    if processor.dead_letter.is_none() {
        tracing::warn!(consumer = %processor.consumer, "no dead letter: events that cannot be processed are logged with their position and skipped");
    }
    // Fused: once it has fired, polling it again is not allowed (a `Shared` panics), and the loop
    // below asks `is_terminated` instead.
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    loop {
        let first = tokio::select! {
            () = &mut shutdown => break,
            next = consumer.recv() => next,
        };
        let mut batch = match first {
            Ok(message) => vec![message.detach()],
            Err(e) => match after_error(&consumer, &e, &source.topic).await {
                Some(message) => vec![message],
                None => continue,
            },
        };
        let until = Instant::now() + FILL;
        while batch.len() < source.max_batch {
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the stream failed mid-batch");
                    break;
                }
                Err(_) => break,
            }
        }
        let settled = futures::stream::iter(&batch)
            .for_each_concurrent(source.writers, |record| processor.settle(record, &origin));
        // Once asked to stop, the batch gets `drain` to finish; cut short, it is not committed and the
        // group hands it to another replica.
        tokio::select! {
            () = settled => {}
            () = async { (&mut shutdown).await; tokio::time::sleep(drain).await } => {
                tracing::warn!(events = batch.len(), "stopped before the batch was settled: its offsets stay uncommitted");
                return Ok(());
            }
        }
        // Asked to stop while this batch settled: commit it for sure, then stop.
        if shutdown.is_terminated() {
            commit(&consumer, &batch, CommitMode::Sync);
            break;
        }
        commit(&consumer, &batch, CommitMode::Async);
    }
    tracing::info!(topic = %source.topic, "stream reader stopped");
    Ok(())
}

/// After a read error: the errors queued behind it skipped, and the first event behind them if there is
/// one; else a pause before the next read.
async fn after_error(
    consumer: &StreamConsumer,
    error: &rdkafka::error::KafkaError,
    topic: &str,
) -> Option<OwnedMessage> {
    let (stale, message) = drain_errors(consumer);
    tracing::warn!(%error, stale, topic, "reading the stream failed; trying again");
    if message.is_none() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    message
}

/// The most queued errors read at once after an error (a bound on the loop, far above what an outage
/// queues between two reads).
const MAX_STALE_ERRORS: usize = 10_000;

/// Reads the errors already queued behind the one just read, without waiting: while the broker is away,
/// librdkafka queues an error for every failed connection attempt, several a second, and reading them one
/// per pause kept a worker reading errors minutes after the broker was back (found by the Kafka outage
/// test, tests/it/faults_outage.rs). Returns how many were skipped, and the first event found behind
/// them, if any.
fn drain_errors(consumer: &StreamConsumer) -> (usize, Option<OwnedMessage>) {
    for skipped in 0..MAX_STALE_ERRORS {
        match consumer.recv().now_or_never() {
            Some(Err(_)) => {}
            Some(Ok(message)) => return (skipped, Some(message.detach())),
            None => return (skipped, None),
        }
    }
    (MAX_STALE_ERRORS, None)
}

/// Commits, per partition of `batch`, the offset after its last event.
fn commit(consumer: &StreamConsumer, batch: &[OwnedMessage], mode: CommitMode) {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for record in batch {
        let entry = next.entry((record.topic(), record.partition())).or_default();
        *entry = (*entry).max(record.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        if let Err(e) = offsets.add_partition_offset(topic, partition, Offset::Offset(offset)) {
            tracing::warn!(error = %e, topic, partition, "cannot list the offset to commit");
        }
    }
    // A partition moved to another replica refuses the commit; that replica reads from the last
    // committed offset, and the upserts make the repeat harmless.
    if let Err(e) = consumer.commit(&offsets, mode) {
        tracing::info!(error = %e, "the commit was refused (a rebalance?): the events will be read again");
    }
}

impl DeviceProcessor {
    /// Settles one event: written, or dead-lettered with the reason. Returns only when one of them is
    /// done (a dead letter that cannot be sent is tried again), so committing after it loses nothing.
    async fn settle(&self, record: &OwnedMessage, origin: &str) {
        self.metrics.received(1);
        let started = Instant::now();
        let position = Position {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            enqueued_ms: record.timestamp().to_millis(),
        };
        let document = telemetry::document(
            record.payload(),
            &position,
            &self.partition_key_path,
            &self.consumer,
        );
        let document = match document {
            Ok(document) => document,
            Err(reason) => {
                self.metrics.failed(started.elapsed());
                self.dead_letter(record, origin, &reason, 1, DeadLetterReason::Rejected)
                    .await;
                self.metrics.done();
                return;
            }
        };
        let mut attempt = 1;
        loop {
            self.metrics.sink_write();
            let written = self
                .container
                .upsert(&document.partition_key, &document.id, &document.body)
                .await;
            match written {
                Ok(()) => {
                    self.metrics.processed(started.elapsed());
                    break;
                }
                // Only an answer about the document itself (400, 413) condemns it; a refused key, a
                // missing container or an outage is the sink's problem, retried like any failure.
                Err(e) if e.kind() == ErrorKind::Permanent && refuses_the_document(&e) => {
                    self.metrics.failed(started.elapsed());
                    let reason = format!("Cosmos DB refused the document: {e}");
                    self.dead_letter(record, origin, &reason, attempt, DeadLetterReason::Rejected)
                        .await;
                    break;
                }
                // No answer at all is an outage of the sink, not a problem of this event: it waits for
                // the sink (at most MAX_PAUSE between tries) instead of using up its attempts, which sent
                // every event of a longer Cosmos DB outage to the dead letter (found by the cosmium outage
                // test, tests/it/faults_outage.rs).
                Err(e) if self.retry.exhausted(attempt) && !is_outage(&e) => {
                    self.metrics.failed(started.elapsed());
                    let reason = format!("failed {attempt} times; last: {e}");
                    self.dead_letter(record, origin, &reason, attempt, DeadLetterReason::Exhausted)
                        .await;
                    break;
                }
                Err(e) => {
                    self.metrics.failed(started.elapsed());
                    tracing::debug!(error = %e, event = %document.id, attempt, "the write failed; retrying");
                    tokio::time::sleep(self.pause(attempt)).await;
                    attempt += 1;
                }
            }
        }
        self.metrics.done();
    }

    fn pause(&self, attempt: u32) -> Duration {
        Duration::from_secs(u64::from(self.retry.delay_seconds(attempt))).min(MAX_PAUSE)
    }

    async fn dead_letter(
        &self,
        record: &OwnedMessage,
        origin: &str,
        reason: &str,
        attempts: u32,
        kind: DeadLetterReason,
    ) {
        let at = format!("{}/{}/{}", record.topic(), record.partition(), record.offset());
        let Some(queue) = &self.dead_letter else {
            tracing::error!(position = %at, %reason, "the event cannot be processed and there is no dead letter: skipped");
            return;
        };
        let delivery = delivery(record, at.clone());
        let attached = reason_json(&self.consumer, origin, reason, attempts);
        let mut attempt = 1;
        while let Err(e) = send_dead_letter(queue, &delivery, &attached).await {
            tracing::warn!(error = %e, position = %at, "the dead letter could not be sent; trying again");
            tokio::time::sleep(self.pause(attempt)).await;
            attempt += 1;
        }
        self.metrics.dead_lettered(kind);
        tracing::info!(position = %at, %reason, "dead-lettered");
    }
}

/// Whether `error` says the service did not answer at all.
fn is_outage(error: &crate::cloud::Error) -> bool {
    matches!(error, crate::cloud::Error::Unreachable { .. })
}

fn refuses_the_document(error: &crate::cloud::Error) -> bool {
    matches!(
        error,
        crate::cloud::Error::Service {
            status: Some(400 | 413),
            ..
        }
    )
}

/// The event as a dead letter: its body as it came (base64 when it is not UTF-8, said by an attribute),
/// its key, headers and position as attributes.
fn delivery(record: &OwnedMessage, at: String) -> Delivery {
    let string = |value: String| MessageAttribute {
        data_type: "String".to_owned(),
        string_value: Some(value),
        binary_value: None,
    };
    let mut attributes = BTreeMap::new();
    let mut payload = record.payload().unwrap_or_default();
    // A Storage Queue message holds 64 KiB and an event may hold 1 MiB: a larger event is dead-lettered
    // with its first bytes and its size, and stays whole in the stream at its position for the
    // stream's retention. Sending it whole would be refused every time and stall the partition.
    if payload.len() > MAX_DEAD_LETTER_BODY {
        attributes.insert(
            dead_letter_attributes::TRUNCATED_FROM.to_owned(),
            string(payload.len().to_string()),
        );
        payload = &payload[..MAX_DEAD_LETTER_BODY];
    }
    let body = match std::str::from_utf8(payload) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            attributes.insert(
                dead_letter_attributes::ENCODING.to_owned(),
                string("base64".to_owned()),
            );
            base64::engine::general_purpose::STANDARD.encode(payload)
        }
    };
    if let Some(key) = record.key() {
        attributes.insert(
            dead_letter_attributes::KEY.to_owned(),
            string(String::from_utf8_lossy(key).into_owned()),
        );
    }
    if let Some(headers) = record.headers() {
        for header in headers.iter() {
            if let Some(value) = header.value {
                attributes.insert(
                    header.key.to_owned(),
                    string(String::from_utf8_lossy(value).into_owned()),
                );
            }
        }
    }
    attributes.insert(dead_letter_attributes::POSITION.to_owned(), string(at.clone()));
    Delivery {
        message: Message {
            id: at,
            body: body.clone(),
            receive_count: 1,
            ..Message::default()
        },
        receipt: String::new(),
        raw_body: body,
        raw_attributes: attributes,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rdkafka::{Timestamp, message::OwnedHeaders};

    use super::*;

    fn record(payload: Vec<u8>) -> OwnedMessage {
        let headers = OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "source",
            value: Some("gateway-1"),
        });
        OwnedMessage::new(
            Some(payload),
            Some(b"thermo-1".to_vec()),
            "telemetry".into(),
            Timestamp::CreateTime(1),
            2,
            7,
            Some(headers),
        )
    }

    #[test]
    fn a_dead_letter_keeps_the_body_key_headers_and_position() {
        let d = delivery(&record(b"{not json".to_vec()), "telemetry/2/7".into());
        assert_eq!(d.raw_body, "{not json");
        let attribute = |k: &str| d.raw_attributes[k].string_value.clone().unwrap();
        assert_eq!(attribute("kafka-key"), "thermo-1");
        assert_eq!(attribute("source"), "gateway-1");
        assert_eq!(attribute("kafka-position"), "telemetry/2/7");
        let binary = delivery(&record(vec![0xff, 0xfe]), "telemetry/2/7".into());
        assert_eq!(binary.raw_body, "//4=");
        assert_eq!(
            binary.raw_attributes["tributary-body-encoding"]
                .string_value
                .as_deref(),
            Some("base64")
        );
    }

    #[test]
    fn a_dead_letter_of_a_large_event_fits_a_storage_queue_message() {
        let d = delivery(&record(vec![b'x'; 1024 * 1024]), "telemetry/2/7".into());
        assert_eq!(d.raw_body.len(), MAX_DEAD_LETTER_BODY);
        assert_eq!(
            d.raw_attributes["tributary-body-truncated-from"]
                .string_value
                .as_deref(),
            Some("1048576")
        );
        let text = crate::cloud::azure::envelope::encode(&d.raw_body, &d.raw_attributes);
        assert!(text.len() < 64 * 1024, "{} bytes", text.len());
    }
}
