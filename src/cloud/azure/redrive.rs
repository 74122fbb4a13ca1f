//! Redrive on Azure. A Storage Queue has no message-move task, so a dead letter is moved back by the same
//! receive/send/delete rounds as SQS's fallback ([`crate::cloud::redrive::move_messages`]):
//! [`StorageRedrive`] is the dead-letter queue (a [`StorageQueue`]) and the [`Destinations`] its messages
//! came from: Storage Queues (the envelope carries the attributes back) and Event Hubs, through the Kafka
//! endpoint (the event as it came, with its key and headers), where the device processor reads it again.
//!
//! A message is deleted from the dead letter only after its destination accepted it, so a crash between
//! the two leaves a duplicate, never a loss. An event the dead letter holds only the start of (it was
//! larger than a queue message) cannot be sent back: it is reported as failed and stays.

use std::{collections::BTreeMap, time::Duration};

use base64::Engine as _;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};

use super::{
    account::STORAGE_QUEUE,
    kafka::{self, KafkaAdmin, KafkaEndpoint, dead_letter as attrs},
    queue::StorageQueue,
};
use crate::cloud::{
    Error, Operation, Result,
    queue::{
        BatchFailure, BatchOutcome, DEAD_LETTER_REASON, MessageAttribute, MessageQueue, OutgoingMessage,
    },
    redrive::{Destinations, Mover},
    traits::{HubProducer, HubProducers},
};
use crate::operate::Fence;

/// How long a redriven event may wait for room in the producer's queue (its delivery is bounded by the
/// producer's `message.timeout.ms`, [`DELIVERY_TIMEOUT_MS`]).
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a redriven event may wait for the broker's acknowledgement before it counts as not moved:
/// well inside the 60 s the dead letter hides it for.
pub const DELIVERY_TIMEOUT_MS: &str = "30000";

/// Where a dead letter's messages can go back to: a Storage Queue (sending with the Queue's
/// `messageTtlSeconds`), or an Event Hub through its Kafka endpoint.
pub enum Target<Q = StorageQueue, P = KafkaProducer> {
    /// A Storage Queue.
    Queue(Q),
    /// An Event Hub.
    Hub(P),
}

impl<Q: MessageQueue, P> std::fmt::Debug for Target<Q, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Queue(queue) => write!(f, "Queue({})", queue.url()),
            Self::Hub(_) => write!(f, "Hub"),
        }
    }
}

/// A producer of one Event Hub, through its Kafka endpoint; it sends nothing while its fence is closed.
pub struct KafkaProducer {
    producer: FutureProducer,
    topic: String,
    fence: Fence,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KafkaProducer({})", self.topic)
    }
}

/// Producers whose deliveries are bounded by [`DELIVERY_TIMEOUT_MS`].
impl HubProducers for KafkaAdmin {
    type Producer = KafkaProducer;

    fn producer(&self, endpoint: &KafkaEndpoint, topic: &str) -> Result<KafkaProducer> {
        kafka::fenced(&self.fence, || Operation::new("kafka", "CreateProducer", topic))?;
        let producer = endpoint
            .client_config()
            .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
            .create()
            .map_err(|e| Error::Invalid {
                operation: Operation::new("kafka", "CreateProducer", topic),
                detail: e.to_string(),
            })?;
        Ok(KafkaProducer {
            producer,
            topic: topic.to_owned(),
            fence: self.fence.clone(),
        })
    }
}

/// Each event on its own, concurrently; none while the fence is closed (the batch fails unsent, and the
/// dead letters stay where they are).
impl HubProducer for KafkaProducer {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        kafka::fenced(&self.fence, || Operation::new("kafka", "Produce", &self.topic))?;
        let sent = messages.iter().map(|m| produce(&self.producer, &self.topic, m));
        let sent = futures::future::join_all(sent).await;
        let ids = messages.iter().map(|m| m.entry_id.clone());
        Ok(ids.zip(sent).collect())
    }
}

/// A dead-letter Storage Queue and its destinations, by the address a worker records as a message's
/// origin (an unsigned queue URL, or `kafka://<bootstrap>/<hub>`).
#[derive(Debug)]
pub struct StorageRedrive<Q: MessageQueue = StorageQueue, P = KafkaProducer> {
    dead_letter: Q,
    targets: BTreeMap<String, Target<Q, P>>,
}

impl<Q: MessageQueue, P> StorageRedrive<Q, P> {
    /// Moves from `dead_letter` to `targets`.
    pub fn new(dead_letter: Q, targets: BTreeMap<String, Target<Q, P>>) -> Self {
        Self { dead_letter, targets }
    }
}

fn failure(entry_id: &str, code: &str, message: String, sender_fault: bool) -> BatchFailure {
    BatchFailure {
        entry_id: entry_id.to_owned(),
        code: code.to_owned(),
        message,
        sender_fault,
    }
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

/// Produces the event a device dead letter holds back to its hub.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    message: &OutgoingMessage,
) -> std::result::Result<(), BatchFailure> {
    let id = &message.entry_id;
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

/// Every URL is this dead letter's: a redrive of it moves from its own queue.
impl<Q: MessageQueue + Clone, P: HubProducer> Mover for StorageRedrive<Q, P> {
    type Queue = Q;

    fn dead_letter_queue(&self, _url: &str) -> Q {
        self.dead_letter.clone()
    }
}

impl<Q: MessageQueue, P: HubProducer> Destinations for StorageRedrive<Q, P> {
    async fn send_to(&self, url: &str, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        match self.targets.get(url) {
            Some(Target::Queue(queue)) => queue.send(messages).await,
            Some(Target::Hub(producer)) => producer.send(messages).await,
            None => Err(Error::Invalid {
                operation: Operation::new(STORAGE_QUEUE, "SendMessage", url),
                detail: "not a destination of this dead letter".to_owned(),
            }),
        }
    }

    /// The envelope of a Storage Queue message and the headers of a Kafka record have no such limit.
    fn attribute_limit(&self, _url: &str) -> Option<usize> {
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn string(value: &str) -> MessageAttribute {
        crate::cloud::queue::reason_attribute(value)
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
