//! What the device processor does with one event, over the [`Documents`] and [`MessageQueue`]
//! capabilities (Cosmos DB and a Storage Queue in production, fakes in the unit tests): its document
//! upserted (keyed by event id, so a redelivered event overwrites its own document), or the event
//! dead-lettered with the reason when it is invalid, refused by the store, or out of attempts. Every
//! retry ends at the batch's deadline: an event not settled by then is [`Settled::Unsettled`] and stays
//! in the stream, so the stream loop never misses its poll interval and never commits past it.

use std::collections::BTreeMap;

use base64::Engine as _;
use rdkafka::{
    Message as _,
    message::{Headers as _, OwnedMessage},
};
use tokio::time::{Duration, Instant};

use super::telemetry::{self, Position};
use crate::{
    cloud::{
        Documents, ErrorKind, MessageQueue, azure::kafka::dead_letter as dead_letter_attributes,
        queue::MessageAttribute,
    },
    worker::{
        config::Retry,
        message::Message,
        metrics::{DeadLetterReason, WorkerMetrics},
        queue::{Delivery, send_dead_letter},
        runtime::reason_json,
    },
};

/// Longest pause between two attempts of one write or dead letter inside a batch.
const MAX_PAUSE: Duration = Duration::from_secs(30);
/// The most of an event's body a dead letter carries (base64 and the envelope's escaping must still fit
/// a 64 KiB Storage Queue message).
pub(super) const MAX_DEAD_LETTER_BODY: usize = 24 * 1024;

/// What settles an event.
pub struct DeviceProcessor<D, Q> {
    /// The Consumer, for documents, logs and dead-letter reasons.
    pub consumer: String,
    /// Where documents go.
    pub documents: D,
    /// The container's partition key path.
    pub partition_key_path: String,
    /// The dead-letter queue, if the Consumer has one.
    pub dead_letter: Option<Q>,
    /// Attempts of a failing write.
    pub retry: Retry,
    /// Counters, and the stalls `/readyz` reports.
    pub metrics: WorkerMetrics,
}

/// How an event ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Its document was written (the device processor), or its processor was done with it (any other).
    Written,
    /// It was dead-lettered, for this reason.
    DeadLettered(DeadLetterReason),
    /// It could not be processed and there is no dead letter: logged with its position and skipped.
    Skipped,
    /// Neither written nor dead-lettered by the deadline: it stays in the stream to be read again.
    Unsettled(Earlier),
}

impl Settled {
    /// Whether the event is done with, so its offset may be committed.
    pub fn is_done(&self) -> bool {
        !matches!(self, Self::Unsettled(_))
    }
}

/// What earlier passes over an event left: the attempts of its write, and the last failure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Earlier {
    /// Writes attempted so far.
    pub attempts: u32,
    /// The last failure, for the dead-letter reason.
    pub last_error: String,
}

impl Earlier {
    /// The dead-letter reason of an event whose attempts ran out in earlier passes (how many, and the last
    /// failure), or none while `retry` allows another: one rule and one wording for the device processor
    /// and any processor on the stream.
    pub fn exhausted_reason(&self, retry: &Retry) -> Option<String> {
        (self.attempts > 0 && retry.exhausted(self.attempts))
            .then(|| format!("failed {} times; last: {}", self.attempts, self.last_error))
    }
}

/// `topic/partition` of a record: what a stall names.
pub fn part_of(record: &OwnedMessage) -> String {
    format!("{}/{}", record.topic(), record.partition())
}

impl<D: Documents, Q: MessageQueue> DeviceProcessor<D, Q> {
    /// Settles one event read from `origin`, after `earlier` passes, by `deadline`.
    pub async fn settle(
        &self,
        record: &OwnedMessage,
        origin: &str,
        earlier: &Earlier,
        deadline: Instant,
    ) -> Settled {
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
        let settled = match document {
            Err(reason) => {
                self.metrics.failed(started.elapsed());
                let letter = Letter::new(record, origin, &reason, 1, DeadLetterReason::Rejected);
                self.dead_letter(letter, deadline).await
            }
            Ok(_) if let Some(reason) = earlier.exhausted_reason(&self.retry) => {
                let letter = Letter::new(
                    record,
                    origin,
                    &reason,
                    earlier.attempts,
                    DeadLetterReason::Exhausted,
                );
                self.dead_letter(letter, deadline).await
            }
            Ok(document) => {
                self.write(record, origin, &document, earlier, deadline, started)
                    .await
            }
        };
        self.metrics.done();
        settled
    }

    /// Upserts `document`, retrying a failure until it succeeds, is refused, runs out of attempts (both
    /// dead-lettered) or would outlast `deadline` (unsettled).
    async fn write(
        &self,
        record: &OwnedMessage,
        origin: &str,
        document: &telemetry::Document,
        earlier: &Earlier,
        deadline: Instant,
        started: Instant,
    ) -> Settled {
        let mut attempt = earlier.attempts + 1;
        // Tries in an outage, which do not count as attempts but still lengthen the pause.
        let mut unanswered = 0;
        loop {
            self.metrics.sink_write();
            let upsert = self
                .documents
                .upsert(&document.partition_key, &document.id, &document.body);
            let error = match tokio::time::timeout_at(deadline, upsert).await {
                Ok(Ok(())) => {
                    self.metrics.processed(started.elapsed());
                    return Settled::Written;
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    // No answer in time is no answer: like an outage, it is not one of the attempts.
                    let last_error = "the write did not finish before the batch's deadline".to_owned();
                    return Settled::Unsettled(Earlier {
                        attempts: attempt - 1,
                        last_error,
                    });
                }
            };
            self.metrics.failed(started.elapsed());
            // Only an answer about the document itself (400, 413) condemns it; a refused key, a missing
            // container or an outage is the store's problem, retried like any failure.
            if error.kind() == ErrorKind::Permanent && refuses_the_document(&error) {
                let reason = format!("Cosmos DB refused the document: {error}");
                let letter = Letter::new(record, origin, &reason, attempt, DeadLetterReason::Rejected);
                return self.dead_letter(letter, deadline).await;
            }
            // No answer at all is an outage of the sink, not a problem of this event: the event waits for
            // the sink (at most MAX_PAUSE between tries) and the try does not count as one of its attempts,
            // not even across batches; counting them sent every event of a longer Cosmos DB outage to the
            // dead letter (found by the cosmium outage test, tests/it/faults_outage.rs).
            let outage = is_outage(&error);
            if !outage && self.retry.exhausted(attempt) {
                let reason = format!("failed {attempt} times; last: {error}");
                let letter = Letter::new(record, origin, &reason, attempt, DeadLetterReason::Exhausted);
                return self.dead_letter(letter, deadline).await;
            }
            tracing::debug!(error = %error, event = %document.id, attempt, outage, "the write failed; retrying");
            if !self.pause_before(attempt + unanswered, deadline).await {
                return Settled::Unsettled(Earlier {
                    attempts: if outage { attempt - 1 } else { attempt },
                    last_error: error.to_string(),
                });
            }
            if outage {
                unanswered += 1;
            } else {
                attempt += 1;
            }
        }
    }

    /// What sends this processor's dead letters.
    fn letters(&self) -> Letters<'_, Q> {
        Letters {
            consumer: &self.consumer,
            dead_letter: self.dead_letter.as_ref(),
            retry: &self.retry,
            metrics: &self.metrics,
        }
    }

    async fn pause_before(&self, attempt: u32, deadline: Instant) -> bool {
        self.letters().pause_before(attempt, deadline).await
    }

    async fn dead_letter(&self, letter: Letter<'_>, deadline: Instant) -> Settled {
        self.letters().send(letter, deadline).await
    }
}

/// What sends the dead letters of events read from the stream, whichever processor settles them: the
/// event with its key, headers and position, the reason attached, retried until the batch's deadline.
pub struct Letters<'a, Q> {
    /// The Consumer, for the reason and logs.
    pub consumer: &'a str,
    /// The dead-letter queue, if the Consumer has one.
    pub dead_letter: Option<&'a Q>,
    /// The retry delays between sends.
    pub retry: &'a Retry,
    /// Counters and stalls.
    pub metrics: &'a WorkerMetrics,
}

impl<Q: MessageQueue> Letters<'_, Q> {
    /// Sleeps the retry delay after `attempt`, unless that would reach `deadline` (then returns false at
    /// once: the event is left for a later pass rather than the batch outliving its poll interval).
    pub async fn pause_before(&self, attempt: u32, deadline: Instant) -> bool {
        self.pause(self.retry.delay_seconds(attempt), deadline).await
    }

    /// Sleeps `seconds` (at most the longest pause), unless that would reach `deadline` (then returns
    /// false at once).
    pub async fn pause(&self, seconds: u32, deadline: Instant) -> bool {
        let pause = Duration::from_secs(u64::from(seconds)).min(MAX_PAUSE);
        if Instant::now() + pause >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        true
    }

    /// Sends `letter` (or, without a dead letter, logs it and skips the event), retrying until it is accepted or `deadline` comes. Each failure counts and marks
    /// the partition stalled (so `/readyz` fails, naming it) until a dead letter of it is sent.
    pub async fn send(&self, letter: Letter<'_>, deadline: Instant) -> Settled {
        let at = format!(
            "{}/{}/{}",
            letter.record.topic(),
            letter.record.partition(),
            letter.record.offset()
        );
        let Some(queue) = self.dead_letter else {
            tracing::error!(position = %at, reason = %letter.reason, "the event cannot be processed and there is no dead letter: skipped");
            return Settled::Skipped;
        };
        let part = part_of(letter.record);
        let delivery = delivery(letter.record, at.clone());
        let attached = reason_json(self.consumer, letter.origin, letter.reason, letter.attempts);
        let mut attempt = 1;
        loop {
            let error = match tokio::time::timeout_at(deadline, send_dead_letter(queue, &delivery, &attached))
                .await
            {
                Ok(Ok(())) => break,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the send did not finish before the batch's deadline".to_owned(),
            };
            tracing::warn!(%error, position = %at, "the dead letter could not be sent");
            let stalled = format!(
                "the dead letter of offset {} cannot be sent: {error}",
                letter.record.offset()
            );
            self.metrics.stalls().dead_letter_failed(&part, stalled);
            if !self.pause_before(attempt, deadline).await {
                let last_error = format!("the dead letter could not be sent: {error}");
                return Settled::Unsettled(Earlier {
                    attempts: letter.attempts,
                    last_error,
                });
            }
            attempt += 1;
        }
        self.metrics.stalls().clear(&part);
        self.metrics.dead_lettered(letter.kind);
        tracing::info!(position = %at, reason = %letter.reason, "dead-lettered");
        Settled::DeadLettered(letter.kind)
    }
}

/// A dead letter to send: the event, where it was read, why, after how many attempts.
pub struct Letter<'a> {
    record: &'a OwnedMessage,
    origin: &'a str,
    reason: &'a str,
    attempts: u32,
    kind: DeadLetterReason,
}

impl<'a> Letter<'a> {
    /// The dead letter of `record` read from `origin`, for `reason`, after `attempts`, counted as `kind`.
    pub fn new(
        record: &'a OwnedMessage,
        origin: &'a str,
        reason: &'a str,
        attempts: u32,
        kind: DeadLetterReason,
    ) -> Self {
        Self {
            record,
            origin,
            reason,
            attempts,
            kind,
        }
    }
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

/// Whether `error` says the service did not answer at all.
fn is_outage(error: &crate::cloud::Error) -> bool {
    matches!(error, crate::cloud::Error::Unreachable { .. })
}

#[cfg(test)]
#[path = "processor_tests.rs"]
mod tests;
