//! What the worker runtime drains: a queue of the cloud's message-queue contract
//! ([`crate::cloud::queue::MessageQueue`]) and, if the Consumer has one, its dead letter. Each received
//! message becomes a [`Delivery`]: the [`Message`] a processor sees, and the message as it arrived, to
//! dead-letter it unchanged with the reason attached (on a FIFO dead-letter queue with its group, and a
//! deduplication id derived from its message id, so that a retried dead-letter send is not doubled).

use std::collections::BTreeMap;

use crate::{
    cloud::{
        Error, Operation, Result,
        queue::{
            MessageAttribute, MessageQueue, OutgoingMessage, Receive, ReceivedMessage, VisibilityChange,
            copy_deduplication_id, dead_letter_attributes,
        },
    },
    worker::message::Message,
};

/// One received message: what the processor sees, the handle to acknowledge it, and the message as it
/// arrived (to dead-letter it unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// What the processor sees.
    pub message: Message,
    /// The receipt handle of this delivery.
    pub receipt: String,
    /// The body as it arrived (an SNS envelope stays wrapped).
    pub raw_body: String,
    /// The message attributes as they arrived, with their data types.
    pub raw_attributes: BTreeMap<String, MessageAttribute>,
}

impl Delivery {
    /// The delivery of a received message: an SNS envelope is unwrapped for the processor, string and
    /// number attributes and their types are read, and the receive count is the queue's (1 if unknown).
    pub fn received(received: ReceivedMessage) -> Self {
        let strings = received
            .attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
            .collect();
        let receive_count = received.receive_count().unwrap_or(1);
        let group_id = received.group_id().map(str::to_owned);
        let mut message =
            Message::delivered(received.message_id, received.body.clone(), strings, receive_count)
                .with_types(&received.attributes);
        message.group_id = group_id;
        message.sent_at = received
            .system_attributes
            .get("SentTimestamp")
            .and_then(|millis| rfc3339_of_millis(millis));
        Self {
            message,
            receipt: received.receipt_handle,
            raw_body: received.body,
            raw_attributes: received.attributes,
        }
    }
}

/// `SentTimestamp` (milliseconds since the epoch) as an RFC 3339 time, if it is one.
pub fn rfc3339_of_millis(millis: &str) -> Option<String> {
    let millis: i128 = millis.parse().ok()?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(millis.checked_mul(1_000_000)?).ok()?;
    at.format(&time::format_description::well_known::Rfc3339).ok()
}

/// A queue drained by workers, and its dead letter. Clones share the clients.
#[derive(Clone, Debug)]
pub struct WorkQueue<Q> {
    source: Q,
    dead_letter: Option<Q>,
}

impl<Q: MessageQueue + Clone + 'static> WorkQueue<Q> {
    /// Drains `source`, dead-lettering to `dead_letter`.
    pub fn new(source: Q, dead_letter: Option<Q>) -> Self {
        Self { source, dead_letter }
    }

    /// Receives up to `max` messages, waiting up to `wait_seconds` for the first one, hidden for
    /// `hold_seconds`.
    pub async fn receive(&self, max: i32, wait_seconds: i32, hold_seconds: i32) -> Result<Vec<Delivery>> {
        let request = Receive::work(max, wait_seconds, Some(hold_seconds));
        let received = self.source.receive(&request).await?;
        Ok(received.into_iter().map(Delivery::received).collect())
    }

    /// Deletes up to 10 processed messages by receipt handle; returns the receipts that failed.
    pub async fn acknowledge(&self, receipts: Vec<String>) -> Result<Vec<String>> {
        let entries: Vec<(String, String)> = receipts
            .iter()
            .enumerate()
            .map(|(i, receipt)| (i.to_string(), receipt.clone()))
            .collect();
        let outcome = self.source.delete(&entries).await?;
        Ok(failed_receipts(
            &receipts,
            outcome.failed.iter().map(|f| f.entry_id.as_str()),
        ))
    }

    /// Makes each message visible again after its delay in seconds (0: at once), in one call for up to
    /// 10; returns the receipts that failed.
    pub async fn postpone(&self, entries: Vec<(String, i32)>) -> Result<Vec<String>> {
        let changes: Vec<VisibilityChange> = entries
            .iter()
            .enumerate()
            .map(|(i, (receipt, seconds))| VisibilityChange {
                entry_id: i.to_string(),
                receipt: receipt.clone(),
                seconds: *seconds,
            })
            .collect();
        let outcome = self.source.change_visibility(&changes).await?;
        let receipts: Vec<String> = entries.into_iter().map(|(receipt, _)| receipt).collect();
        Ok(failed_receipts(
            &receipts,
            outcome.failed.iter().map(|f| f.entry_id.as_str()),
        ))
    }

    /// Sends `delivery` unchanged to the dead-letter queue, with `reason` attached (see
    /// [`send_dead_letter`]).
    pub async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<()> {
        let Some(dead_letter) = &self.dead_letter else {
            return Err(Error::Invalid {
                operation: Operation::new("worker", "SendMessage", "(no dead-letter queue)"),
                detail: "the Consumer has no deadLetterRef".to_owned(),
            });
        };
        send_dead_letter(dead_letter, delivery, reason).await
    }

    /// Whether the source is a FIFO queue, whose message groups are processed in order.
    pub fn is_fifo(&self) -> bool {
        self.source.is_fifo()
    }

    /// Whether a dead-letter queue is configured.
    pub fn has_dead_letter(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// The queue's URL, recorded in dead-letter reasons so a redrive can send a message back to it.
    pub fn url(&self) -> &str {
        self.source.url()
    }
}

/// The receipts whose batch entry ids (their indexes) failed.
fn failed_receipts<'a>(receipts: &[String], failed_ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    failed_ids
        .filter_map(|id| id.parse::<usize>().ok())
        .filter_map(|i| receipts.get(i).cloned())
        .collect()
}

/// Sends `delivery` as it arrived to the dead-letter queue `queue`, with `reason` as the
/// [`crate::cloud::queue::DEAD_LETTER_REASON`] attribute where the queue's attribute limit allows.
pub async fn send_dead_letter<Q: MessageQueue>(queue: &Q, delivery: &Delivery, reason: &str) -> Result<()> {
    queue
        .send_one(&dead_letter_message(queue, delivery, reason))
        .await
}

/// The dead letter of `delivery`: its body and attributes with the reason; without the reason if that
/// does not fit `queue`; without any attribute (the body as it came, which fitted the queue it came from)
/// if even that does not. On a FIFO `queue` it is in the original's group (a message from a standard
/// queue has none: its message id is its group, ordered with nothing), and its deduplication id is
/// derived from the original's message id, so a send retried after an unknown outcome lands once.
fn dead_letter_message<Q: MessageQueue>(queue: &Q, delivery: &Delivery, reason: &str) -> OutgoingMessage {
    let id = &delivery.message.id;
    let (group_id, deduplication_id) = if queue.is_fifo() {
        let group = delivery.message.group_id.clone().unwrap_or_else(|| id.clone());
        (Some(group), Some(copy_deduplication_id("dead-letter", id)))
    } else {
        (None, None)
    };
    let message = |attributes| OutgoingMessage {
        entry_id: "0".to_owned(),
        body: delivery.raw_body.clone(),
        attributes,
        group_id: group_id.clone(),
        deduplication_id: deduplication_id.clone(),
    };
    let with_reason = message(dead_letter_attributes(
        &delivery.raw_attributes,
        reason,
        queue.attribute_limit(),
    ));
    if queue.fits(&with_reason) {
        return with_reason;
    }
    tracing::warn!(message_id = %delivery.message.id, %reason, "too large for the reason: dead-lettered without it");
    let without = message(delivery.raw_attributes.clone());
    if queue.fits(&without) {
        return without;
    }
    tracing::warn!(message_id = %delivery.message.id, "too large for its attributes: dead-lettered as the bare body");
    message(BTreeMap::new())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use super::*;
    use crate::{
        cloud::{
            fake::FakeQueue,
            queue::{DEAD_LETTER_REASON, reason_attribute},
        },
        worker::{
            config::Retry,
            metrics::WorkerMetrics,
            processor::{Outcome, Processor},
            runtime::{self, Settings},
        },
    };

    /// Answers by the body: `poison…` is rejected, `flaky…` fails on its first receive, `broken…` always
    /// fails; everything else succeeds. Counts the calls per body.
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
            } else if body.starts_with("broken") || (body.starts_with("flaky") && message.receive_count == 1)
            {
                Outcome::Retry("the table is down".into())
            } else {
                Outcome::Done
            }
        }
    }

    #[tokio::test]
    async fn the_runtime_on_the_fake_acknowledges_retries_and_dead_letters() {
        let (source, dead) = (FakeQueue::new("work"), FakeQueue::new("dead"));
        let event = BTreeMap::from([("event".to_owned(), reason_attribute("OrderPlaced"))]);
        for body in ["ok 1", "ok 2", "flaky 1", "poison 1", "broken 1"] {
            source.push(body, event.clone(), BTreeMap::new());
        }
        let settings = Settings {
            consumer: "test/scripted".into(),
            receivers: 2,
            wait_seconds: 1,
            visibility_timeout: Duration::from_secs(30),
            // No backoff: a retried message is visible again at once.
            retry: Retry {
                max_attempts: 3,
                initial_backoff_seconds: 0,
                max_backoff_seconds: 0,
            },
            drain: Duration::from_secs(1),
            max_receive_count: None,
        };
        let (processor, metrics) = (Scripted::default(), WorkerMetrics::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = futures::FutureExt::shared(futures::FutureExt::boxed(async {
            let _ = stopped.await;
        }));
        let queue = WorkQueue::new(source.clone(), Some(dead.clone()));
        let worker = tokio::spawn(runtime::run(
            queue,
            Arc::new(processor.clone()),
            settings,
            metrics.clone(),
            shutdown,
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while metrics.processed_total() < 3 || metrics.dead_lettered_total() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "not settled in 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(()).unwrap();
        worker.await.unwrap();

        assert!(source.held().is_empty(), "everything settled is deleted");
        let calls = processor.calls.lock().unwrap().clone();
        assert_eq!(calls["flaky 1"], 2);
        assert_eq!(calls["broken 1"], 3, "every attempt, then the dead letter");
        let mut dead_letters = dead.held();
        dead_letters.sort_by(|a, b| a.body.cmp(&b.body));
        let bodies: Vec<&str> = dead_letters.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["broken 1", "poison 1"]);
        for letter in &dead_letters {
            assert_eq!(letter.attributes["event"], event["event"], "kept");
            let reason = letter.attributes[DEAD_LETTER_REASON]
                .string_value
                .clone()
                .unwrap();
            let reason: serde_json::Value = serde_json::from_str(&reason).unwrap();
            assert_eq!(reason["queue"], "work", "where a redrive sends it back");
        }
    }

    #[test]
    fn a_dead_letter_keeps_the_reason_while_it_fits_and_the_body_always() {
        let delivery = |body: &str| Delivery {
            message: Message::delivered("m-1".into(), body.into(), BTreeMap::new(), 1),
            receipt: "r".into(),
            raw_body: body.into(),
            raw_attributes: BTreeMap::from([("event".to_owned(), reason_attribute("OrderPlaced"))]),
        };
        let queue = FakeQueue::new("dead").with_attribute_limit(Some(2));
        let letter = dead_letter_message(&queue, &delivery("{}"), "bad sku");
        assert_eq!(letter.attributes[DEAD_LETTER_REASON], reason_attribute("bad sku"));
        assert_eq!(letter.attributes["event"], reason_attribute("OrderPlaced"));

        let full = FakeQueue::new("dead").with_attribute_limit(Some(1));
        let letter = dead_letter_message(&full, &delivery("{}"), "bad sku");
        assert!(
            !letter.attributes.contains_key(DEAD_LETTER_REASON),
            "no slot left"
        );

        // Size counts the body, the attributes' names and values, as SQS counts it.
        let body = "0123456789";
        let without_reason = body.len() + "event".len() + "OrderPlaced".len();
        let small = FakeQueue::new("dead").with_max_bytes(without_reason);
        let letter = dead_letter_message(&small, &delivery(body), "why");
        assert_eq!(
            letter.attributes.keys().collect::<Vec<_>>(),
            ["event"],
            "too large for the reason"
        );
        let tiny = FakeQueue::new("dead").with_max_bytes(body.len());
        let letter = dead_letter_message(&tiny, &delivery(body), "why");
        assert_eq!(
            (letter.body.as_str(), letter.attributes.len()),
            (body, 0),
            "the body is never lost"
        );
    }

    #[test]
    fn a_sent_timestamp_becomes_an_rfc3339_time() {
        assert_eq!(
            rfc3339_of_millis("1796569200123").as_deref(),
            Some("2026-12-06T15:00:00.123Z")
        );
        assert_eq!(rfc3339_of_millis("soon"), None);
    }
}
