//! The seam between the stream loop (`stream.rs`) and what settles each event by the batch's
//! deadline: [`Settle`], implemented by the device processor and, through [`OnStream`], by any
//! [`Processor`] of the queue runtime (processor `container`, delivering to the user's container). The
//! stream's bounds hold for every one of them: bytes per batch, settling within half the poll interval
//! (an event not settled by then stays in the stream, its partition rewound and paused), the attempts
//! remembered across passes, dead letters sent before the offset moves, stalls while they cannot be.

use std::{collections::BTreeMap, future::Future};

use rdkafka::{
    Message as _,
    message::{Headers as _, OwnedMessage},
};
use tokio::time::Instant;

use super::processor::{DeviceProcessor, Earlier, Letter, Letters, Settled};
use crate::{
    cloud::{Documents, MessageQueue},
    worker::{
        config::Retry,
        message::Message,
        metrics::{DeadLetterReason, WorkerMetrics},
        processor::{Outcome, Processor},
        queue::rfc3339_of_millis,
    },
};

/// What settles one event read from the stream.
pub trait Settle: Send + Sync {
    /// The Consumer, for logs.
    fn consumer(&self) -> &str;
    /// Counters, and the stalls `/readyz` reports.
    fn metrics(&self) -> &WorkerMetrics;
    /// Whether events that cannot be processed have a dead letter to go to.
    fn has_dead_letter(&self) -> bool;
    /// Settles `record` read from `origin`, after `earlier` passes, by `deadline`.
    fn settle(
        &self,
        record: &OwnedMessage,
        origin: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> impl Future<Output = Settled> + Send;
}

impl<D: Documents, Q: MessageQueue> Settle for DeviceProcessor<D, Q> {
    fn consumer(&self) -> &str {
        &self.consumer
    }
    fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }
    fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }
    async fn settle(
        &self,
        record: &OwnedMessage,
        origin: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> Settled {
        DeviceProcessor::settle(self, record, origin, earlier, deadline).await
    }
}

/// A queue [`Processor`] on the stream: each event handed over as a [`Message`] ([`message_of`]), its
/// `Retry` outcomes retried within the batch's deadline (then left in the stream with the attempts
/// remembered), `Reject` and exhausted attempts dead-lettered.
pub struct OnStream<P, Q> {
    /// The processor.
    pub processor: P,
    /// The Consumer, for logs and dead-letter reasons.
    pub consumer: String,
    /// The dead-letter queue, if the Consumer has one.
    pub dead_letter: Option<Q>,
    /// Attempts of a failing event.
    pub retry: Retry,
    /// Counters and stalls.
    pub metrics: WorkerMetrics,
}

impl<P: Processor, Q: MessageQueue> OnStream<P, Q> {
    fn letters(&self) -> Letters<'_, Q> {
        Letters {
            consumer: &self.consumer,
            dead_letter: self.dead_letter.as_ref(),
            retry: &self.retry,
            metrics: &self.metrics,
        }
    }

    /// Runs the processor on `record` until it is done, refused, out of attempts, or out of time.
    async fn attempts(
        &self,
        record: &OwnedMessage,
        origin: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> Settled {
        let started = Instant::now();
        if let Some(reason) = earlier.exhausted_reason(&self.retry) {
            let letter = Letter::new(
                record,
                origin,
                &reason,
                earlier.attempts,
                DeadLetterReason::Exhausted,
            );
            return self.letters().send(letter, deadline).await;
        }
        let mut attempt = earlier.attempts + 1;
        let Some(mut message) = message_of(record, attempt) else {
            let reason = "the event is not UTF-8 text, which this processor is handed";
            let letter = Letter::new(record, origin, reason, attempt, DeadLetterReason::Rejected);
            return self.letters().send(letter, deadline).await;
        };
        loop {
            let outcome = match tokio::time::timeout_at(deadline, self.processor.process(&message)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let last_error = "the processor did not finish before the batch's deadline".to_owned();
                    return Settled::Unsettled(Earlier {
                        attempts: attempt - 1,
                        last_error,
                    });
                }
            };
            let (reason, asked) = match outcome {
                Outcome::Done => {
                    self.metrics.processed(started.elapsed());
                    return Settled::Written;
                }
                Outcome::Reject(reason) => {
                    self.metrics.failed(started.elapsed());
                    let letter = Letter::new(record, origin, &reason, attempt, DeadLetterReason::Rejected);
                    return self.letters().send(letter, deadline).await;
                }
                Outcome::Retry(reason) => (reason, None),
                Outcome::RetryAfter { reason, seconds } => (reason, Some(seconds)),
            };
            self.metrics.failed(started.elapsed());
            if self.retry.exhausted(attempt) {
                let reason = format!("failed {attempt} times; last: {reason}");
                let letter = Letter::new(record, origin, &reason, attempt, DeadLetterReason::Exhausted);
                return self.letters().send(letter, deadline).await;
            }
            tracing::debug!(%reason, id = %message.id, attempt, "processing failed; retrying");
            let delay = self.retry.delay_seconds_asked(attempt, asked);
            if !self.letters().pause(delay, deadline).await {
                return Settled::Unsettled(Earlier {
                    attempts: attempt,
                    last_error: reason,
                });
            }
            attempt += 1;
            message.receive_count = attempt;
        }
    }
}

impl<P: Processor, Q: MessageQueue> Settle for OnStream<P, Q> {
    fn consumer(&self) -> &str {
        &self.consumer
    }
    fn metrics(&self) -> &WorkerMetrics {
        &self.metrics
    }
    fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }
    async fn settle(
        &self,
        record: &OwnedMessage,
        origin: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> Settled {
        self.metrics.received(1);
        let settled = self.attempts(record, origin, earlier, deadline).await;
        self.metrics.done();
        settled
    }
}

/// The header of the CloudEvents Kafka binding that carries an event's id.
pub const CE_ID: &str = "ce_id";

/// An event as the [`Message`] a queue processor sees, on its `attempt`: the id is the `ce_id` header
/// when the event has one, else `<topic>-<partition>-<offset>`; headers are attributes (a `ce_` prefix,
/// the CloudEvents Kafka binding's, taken off), the key is attribute `partitionkey`, the record's
/// timestamp is when it was sent. `None` when the payload is not UTF-8.
pub fn message_of(record: &OwnedMessage, attempt: u32) -> Option<Message> {
    let body = std::str::from_utf8(record.payload().unwrap_or_default())
        .ok()?
        .to_owned();
    let mut attributes = BTreeMap::new();
    let mut id = None;
    if let Some(key) = record.key().and_then(|k| std::str::from_utf8(k).ok()) {
        attributes.insert("partitionkey".to_owned(), key.to_owned());
    }
    for header in record.headers().into_iter().flat_map(|h| h.iter()) {
        let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else {
            continue;
        };
        if header.key == CE_ID {
            id = Some(value.to_owned());
            continue;
        }
        let name = header.key.strip_prefix("ce_").unwrap_or(header.key);
        attributes.insert(name.to_owned(), value.to_owned());
    }
    let id = id.unwrap_or_else(|| format!("{}-{}-{}", record.topic(), record.partition(), record.offset()));
    Some(Message {
        id,
        body,
        attributes,
        receive_count: attempt,
        sent_at: record
            .timestamp()
            .to_millis()
            .and_then(|ms| rfc3339_of_millis(&ms.to_string())),
        ..Message::default()
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::{
        Timestamp,
        message::{Header, OwnedHeaders},
    };

    use std::time::Duration;

    use super::*;

    fn record(headers: &[(&str, &str)], payload: &[u8]) -> OwnedMessage {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        OwnedMessage::new(
            Some(payload.to_vec()),
            Some(b"thermo-1".to_vec()),
            "telemetry".into(),
            Timestamp::CreateTime(1_796_569_200_000),
            2,
            7,
            Some(owned),
        )
    }

    #[test]
    fn an_event_becomes_a_message_with_its_position_as_id() {
        let message = message_of(&record(&[("region", "eu"), ("ce_type", "Reading")], b"{}"), 3).unwrap();
        assert_eq!(message.id, "telemetry-2-7");
        assert_eq!(message.body, "{}");
        assert_eq!(message.receive_count, 3);
        assert_eq!(message.attribute("region"), Some("eu"));
        assert_eq!(
            message.attribute("type"),
            Some("Reading"),
            "the binding's prefix is taken off"
        );
        assert_eq!(message.attribute("partitionkey"), Some("thermo-1"));
        assert_eq!(message.sent_at.as_deref(), Some("2026-12-06T15:00:00Z"));
    }

    /// Asks for `seconds` more (a 503 with `Retry-After`) on the first attempt, then is done.
    struct AsksForTime(u32);

    impl Processor for AsksForTime {
        fn name(&self) -> &'static str {
            "asks-for-time"
        }
        async fn process(&self, message: &Message) -> Outcome {
            if message.receive_count > 1 {
                return Outcome::Done;
            }
            let reason = "HTTP 503: busy".to_owned();
            Outcome::RetryAfter {
                reason,
                seconds: self.0,
            }
        }
    }

    fn on_stream(
        asked: u32,
        max_backoff_seconds: u32,
    ) -> OnStream<AsksForTime, crate::cloud::fake::FakeQueue> {
        OnStream {
            processor: AsksForTime(asked),
            consumer: "test/stream".into(),
            dead_letter: None,
            retry: Retry {
                max_attempts: 3,
                initial_backoff_seconds: 1,
                max_backoff_seconds,
            },
            metrics: WorkerMetrics::new(),
        }
    }

    #[tokio::test]
    async fn a_retry_on_the_stream_waits_what_was_asked_within_the_longest_backoff_and_the_deadline() {
        let record = record(&[], b"{}");
        let within = |millis| Instant::now() + Duration::from_millis(millis);
        // Asked for 3 s: past a deadline 2 s away (which the 1 s backoff fits), so the event is left in
        // the stream at once, its attempt remembered.
        let started = Instant::now();
        let settled = on_stream(3, 60)
            .attempts(&record, "telemetry", &Earlier::default(), within(2000))
            .await;
        assert!(
            matches!(settled, Settled::Unsettled(Earlier { attempts: 1, .. })),
            "{settled:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "no wait for nothing"
        );
        // Asked for an hour, bounded by the longest backoff (1 s): retried within the deadline, done.
        let started = Instant::now();
        let settled = on_stream(3600, 1)
            .attempts(&record, "telemetry", &Earlier::default(), within(3000))
            .await;
        assert_eq!(settled, Settled::Written);
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[test]
    fn an_event_with_a_cloudevents_id_keeps_it_and_a_binary_one_is_not_a_message() {
        let message = message_of(&record(&[("ce_id", "evt-9")], b"x"), 1).unwrap();
        assert_eq!(message.id, "evt-9");
        assert_eq!(message.attribute("id"), None);
        assert_eq!(message_of(&record(&[], &[0xff, 0xfe]), 1), None);
    }
}
