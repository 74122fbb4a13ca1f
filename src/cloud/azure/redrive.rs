//! Redrive on Azure. A Storage Queue has no message-move task, so a dead letter is moved back by the same
//! receive/send/delete rounds as SQS's fallback ([`crate::cloud::redrive::move_messages`]):
//! [`StorageRedrive`] is [`QueueMessages`] over the dead-letter queue and the places its messages came
//! from: Storage Queues (the envelope carries the attributes back) and Event Hubs, through the Kafka
//! endpoint (the event as it came, with its key and headers), where the device processor reads it again.
//!
//! A message is deleted from the dead letter only after its destination accepted it, so a crash between
//! the two leaves a duplicate, never a loss. An event the dead letter holds only the start of (it was
//! larger than a queue message) cannot be sent back: it is reported as failed and stays.

use std::{collections::BTreeMap, time::Duration};

use azure_storage_queue::{
    QueueClient,
    models::{QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions, QueueMessage},
};
use base64::Engine as _;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

use super::{envelope, error::from_azure, kafka::dead_letter as attrs, work_queue::STORAGE_QUEUE};
use crate::cloud::{
    Error, Operation, Result,
    traits::{
        BatchFailure, BatchOutcome, MessageAttribute, MoveRequest, MoveTask, OutgoingMessage, QueueMessages,
        ReceivedMessage,
    },
    work_queue::DEAD_LETTER_REASON,
};

/// How long a redriven event may wait for room in the producer's queue (its delivery is bounded by the
/// producer's `message.timeout.ms`, [`DELIVERY_TIMEOUT_MS`]).
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a redriven event may wait for the broker's acknowledgement before it counts as not moved:
/// well inside the 60 s the dead letter hides it for.
pub const DELIVERY_TIMEOUT_MS: &str = "30000";

/// Where a dead letter's messages can go back to.
pub enum Target {
    /// A Storage Queue (a signed client), and the time to live its messages get (`-1`: never expire).
    Queue {
        /// The queue.
        client: QueueClient,
        /// The Queue's `messageTtlSeconds`.
        ttl_seconds: i64,
    },
    /// An Event Hub through its Kafka endpoint.
    Hub {
        /// A producer signed in to the hub's namespace.
        producer: FutureProducer,
        /// The hub (Kafka topic).
        topic: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Queue { client, .. } => write!(f, "Queue({})", super::work_queue::unsigned(client.url())),
            Self::Hub { topic, .. } => write!(f, "Hub({topic})"),
        }
    }
}

/// A dead-letter Storage Queue and its destinations, by the address a worker records as a message's
/// origin (an unsigned queue URL, or `kafka://<bootstrap>/<hub>`).
pub struct StorageRedrive {
    dead_letter: QueueClient,
    url: String,
    targets: BTreeMap<String, Target>,
}

impl std::fmt::Debug for StorageRedrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageRedrive")
            .field("url", &self.url)
            .field("targets", &self.targets)
            .finish()
    }
}

impl StorageRedrive {
    /// Moves from `dead_letter` (signed) to `targets`.
    pub fn new(dead_letter: QueueClient, targets: BTreeMap<String, Target>) -> Self {
        let url = super::work_queue::unsigned(dead_letter.url());
        Self {
            dead_letter,
            url,
            targets,
        }
    }

    fn operation(&self, name: &'static str) -> Operation {
        Operation::new(STORAGE_QUEUE, name, &self.url)
    }
}

/// The runtime's receipt of a received message: its id and pop receipt.
fn receipt_of(id: &str, pop_receipt: &str) -> String {
    format!("{id}\n{pop_receipt}")
}

fn failure(entry_id: &str, code: &str, message: String, sender_fault: bool) -> BatchFailure {
    BatchFailure {
        entry_id: entry_id.to_owned(),
        code: code.to_owned(),
        message,
        sender_fault,
    }
}

/// The batch outcome of one call per message.
fn outcome_of(results: Vec<(&String, Result<()>)>, call: &str) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    for (entry, result) in results {
        match result {
            Ok(()) => outcome.succeeded.push(entry.clone()),
            Err(e) => outcome.failed.push(failure(entry, call, e.to_string(), false)),
        }
    }
    outcome
}

/// The attributes a message goes back with: the dead-letter reason is history, not part of it.
fn returning(attributes: &BTreeMap<String, MessageAttribute>) -> BTreeMap<String, MessageAttribute> {
    let mut attributes = attributes.clone();
    attributes.remove(DEAD_LETTER_REASON);
    attributes
}

/// An event as it was read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its bytes.
    pub payload: Vec<u8>,
    /// Its key.
    pub key: Option<String>,
    /// Its headers.
    pub headers: Vec<(String, String)>,
}

/// The event a device dead letter holds, as it was read from the stream; or why it cannot be sent back.
pub fn event_of(message: &OutgoingMessage) -> std::result::Result<Event, String> {
    let value = |name: &str| message.attributes.get(name).and_then(|a| a.string_value.clone());
    if let Some(size) = value(attrs::TRUNCATED_FROM) {
        return Err(format!(
            "the dead letter holds only the start of this {size}-byte event; the whole event is in the \
             stream at {}",
            value(attrs::POSITION).unwrap_or_default()
        ));
    }
    let payload = if value(attrs::ENCODING).as_deref() == Some("base64") {
        base64::engine::general_purpose::STANDARD
            .decode(message.body.as_bytes())
            .map_err(|e| format!("the body is marked base64 but is not: {e}"))?
    } else {
        message.body.clone().into_bytes()
    };
    let headers = returning(&message.attributes)
        .into_iter()
        .filter(|(name, _)| !attrs::ALL.contains(&name.as_str()))
        .filter_map(|(name, attribute)| Some((name, attribute.string_value?)))
        .collect();
    Ok(Event {
        payload,
        key: value(attrs::KEY),
        headers,
    })
}

impl Target {
    async fn send(&self, message: &OutgoingMessage) -> std::result::Result<(), BatchFailure> {
        let id = &message.entry_id;
        match self {
            Self::Queue { client, ttl_seconds } => {
                let operation = Operation::new(
                    STORAGE_QUEUE,
                    "SendMessage",
                    super::work_queue::unsigned(client.url()),
                );
                let text = envelope::encode(&message.body, &returning(&message.attributes));
                let content = QueueMessage {
                    message_text: Some(text),
                }
                .try_into()
                .map_err(|e| failure(id, "Encoding", from_azure(operation.clone(), e).to_string(), true))?;
                let options = QueueClientSendMessageOptions {
                    message_time_to_live: Some(i32::try_from(*ttl_seconds).unwrap_or(i32::MAX)),
                    ..Default::default()
                };
                client
                    .send_message(content, Some(options))
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        let error = from_azure(operation, e);
                        let permanent = error.kind() == crate::cloud::ErrorKind::Permanent;
                        failure(id, "SendMessage", error.to_string(), permanent)
                    })
            }
            Self::Hub { producer, topic } => {
                let Event {
                    payload,
                    key,
                    headers,
                } = event_of(message).map_err(|m| failure(id, "BodyTruncated", m, true))?;
                let mut kafka_headers = OwnedHeaders::new();
                for (name, value) in &headers {
                    kafka_headers = kafka_headers.insert(Header {
                        key: name,
                        value: Some(value.as_bytes()),
                    });
                }
                let mut record = FutureRecord::<str, [u8]>::to(topic)
                    .payload(&payload)
                    .headers(kafka_headers);
                if let Some(key) = key.as_deref() {
                    record = record.key(key);
                }
                producer
                    .send(record, PRODUCE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| failure(id, "Produce", format!("producing to {topic}: {e}"), false))
            }
        }
    }
}

impl QueueMessages for StorageRedrive {
    async fn start_message_move(&self, _: &MoveRequest) -> Result<String> {
        Err(Error::Unsupported {
            operation: self.operation("StartMessageMoveTask"),
            detail: "a Storage Queue has no message-move task".to_owned(),
        })
    }

    /// The envelope of a Storage Queue message and the headers of a Kafka record have no such limit.
    fn attribute_limit(&self) -> Option<usize> {
        None
    }

    async fn message_moves(&self, _: &str) -> Result<Vec<MoveTask>> {
        Ok(Vec::new())
    }

    async fn receive_messages(
        &self,
        _: &str,
        max: i32,
        visibility_timeout_seconds: i32,
    ) -> Result<Vec<ReceivedMessage>> {
        let operation = self.operation("ReceiveMessages");
        let options = QueueClientReceiveMessagesOptions {
            number_of_messages: Some(max.clamp(1, 32)),
            visibility_timeout: Some(visibility_timeout_seconds),
            ..Default::default()
        };
        let received = self
            .dead_letter
            .receive_messages(Some(options))
            .await
            .map_err(|e| from_azure(operation.clone(), e))?
            .into_model()
            .map_err(|e| from_azure(operation, e))?;
        Ok(received
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|message| {
                let (id, pop_receipt) = (message.message_id?, message.pop_receipt?);
                let (body, attributes) =
                    envelope::decode(message.message_text.as_deref().unwrap_or_default());
                Some(ReceivedMessage {
                    receipt_handle: receipt_of(&id, &pop_receipt),
                    message_id: id,
                    body,
                    attributes,
                    system_attributes: BTreeMap::new(),
                })
            })
            .collect())
    }

    async fn send_messages(&self, url: &str, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let Some(target) = self.targets.get(url) else {
            return Err(Error::Invalid {
                operation: Operation::new(STORAGE_QUEUE, "SendMessage", url),
                detail: "not a destination of this dead letter".to_owned(),
            });
        };
        let sent = futures::future::join_all(messages.iter().map(|m| target.send(m))).await;
        let mut outcome = BatchOutcome::default();
        for (message, result) in messages.iter().zip(sent) {
            match result {
                Ok(()) => outcome.succeeded.push(message.entry_id.clone()),
                Err(failure) => outcome.failed.push(failure),
            }
        }
        Ok(outcome)
    }

    async fn release_messages(&self, _: &str, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let updates = receipts.iter().map(|(entry, receipt)| async move {
            let (id, pop_receipt) = receipt.split_once('\n').unwrap_or((receipt, ""));
            let result = self.dead_letter.update_message(id, pop_receipt, 0, None).await;
            (
                entry,
                result
                    .map(|_| ())
                    .map_err(|e| from_azure(self.operation("UpdateMessage"), e)),
            )
        });
        Ok(outcome_of(
            futures::future::join_all(updates).await,
            "UpdateMessage",
        ))
    }

    async fn delete_messages(&self, _: &str, receipts: &[(String, String)]) -> Result<BatchOutcome> {
        let deletes = receipts.iter().map(|(entry, receipt)| async move {
            let (id, pop_receipt) = receipt.split_once('\n').unwrap_or((receipt, ""));
            let result = self.dead_letter.delete_message(id, pop_receipt, None).await;
            (
                entry,
                result
                    .map(|_| ())
                    .map_err(|e| from_azure(self.operation("DeleteMessage"), e)),
            )
        });
        Ok(outcome_of(
            futures::future::join_all(deletes).await,
            "DeleteMessage",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn string(value: &str) -> MessageAttribute {
        crate::cloud::work_queue::reason_attribute(value)
    }

    fn outgoing(body: &str, attributes: &[(&str, &str)]) -> OutgoingMessage {
        OutgoingMessage {
            entry_id: "m0".into(),
            body: body.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), string(v)))
                .collect(),
            group_id: None,
            deduplication_id: None,
        }
    }

    #[test]
    fn a_device_dead_letter_goes_back_as_the_event_it_was() {
        let message = outgoing(
            r#"{"eventId":"e-1"}"#,
            &[
                (attrs::KEY, "thermo-1"),
                (attrs::POSITION, "telemetry/2/7"),
                (DEAD_LETTER_REASON, r#"{"reason":"timestamp: required"}"#),
                ("traceparent", "00-abc-def-01"),
            ],
        );
        let Event {
            payload,
            key,
            headers,
        } = event_of(&message).unwrap();
        assert_eq!(payload, br#"{"eventId":"e-1"}"#);
        assert_eq!(key.as_deref(), Some("thermo-1"));
        assert_eq!(
            headers,
            vec![("traceparent".to_owned(), "00-abc-def-01".to_owned())]
        );

        let binary = outgoing("AAEC/w==", &[(attrs::ENCODING, "base64")]);
        assert_eq!(event_of(&binary).unwrap().payload, vec![0, 1, 2, 255]);
        let broken = outgoing("not base64!", &[(attrs::ENCODING, "base64")]);
        assert!(event_of(&broken).unwrap_err().contains("marked base64"));
    }

    #[test]
    fn a_truncated_event_is_not_sent_back() {
        let message = outgoing(
            "{\"eventId\"",
            &[(attrs::TRUNCATED_FROM, "100000"), (attrs::POSITION, "t/0/9")],
        );
        let error = event_of(&message).unwrap_err();
        assert!(
            error.contains("100000-byte event") && error.contains("t/0/9"),
            "{error}"
        );
    }

    #[test]
    fn the_reason_does_not_go_back() {
        let attributes = BTreeMap::from([
            (DEAD_LETTER_REASON.to_owned(), string("{}")),
            ("event".to_owned(), string("OrderPlaced")),
        ]);
        assert_eq!(returning(&attributes).keys().collect::<Vec<_>>(), vec!["event"]);
    }
}
