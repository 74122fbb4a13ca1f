//! The Kafka endpoint in the Azure fake: consumer-group lag a test sets, and hub producers that keep the
//! events they were sent.

use super::{FakeAzure, State, error};
use crate::cloud::{
    ErrorKind, Result,
    azure::{
        kafka::{KafkaEndpoint, Lag},
        redrive::{Event, event_of},
    },
    queue::{BatchFailure, BatchOutcome, OutgoingMessage},
    traits::{ConsumerLag, HubProducer, HubProducers},
};

const KAFKA: &str = "kafka";

/// An event a producer sent, with where it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentEvent {
    /// The bootstrap servers of the producer.
    pub bootstrap: String,
    /// The event.
    pub event: Event,
}

/// A producer of one hub in the fake.
#[derive(Clone, Debug)]
pub struct FakeProducer {
    azure: FakeAzure,
    bootstrap: String,
    topic: String,
}

impl FakeAzure {
    /// `group` is `lag` behind on `topic` from now on.
    pub fn set_lag(&self, topic: &str, group: &str, lag: Lag) {
        let key = (topic.to_owned(), group.to_owned());
        self.lock().lags.insert(key, lag);
    }

    /// The events produced to `topic`, oldest first.
    pub fn events(&self, topic: &str) -> Vec<SentEvent> {
        self.lock().events.get(topic).cloned().unwrap_or_default()
    }
}

impl ConsumerLag for FakeAzure {
    async fn lag(&self, _endpoint: &KafkaEndpoint, topic: &str, group: &str) -> Result<Lag> {
        let resource = format!("{topic} in group {group}");
        let state = self.call(KAFKA, "Lag", &resource)?;
        let key = (topic.to_owned(), group.to_owned());
        let lag = state.lags.get(&key).cloned();
        lag.ok_or_else(|| error(ErrorKind::NotFound, KAFKA, "Lag", &resource, "UnknownTopic"))
    }
}

impl HubProducers for FakeAzure {
    type Producer = FakeProducer;

    fn producer(&self, endpoint: &KafkaEndpoint, topic: &str) -> Result<FakeProducer> {
        let resource = format!("{}/{topic}", endpoint.bootstrap_servers);
        drop(self.call(KAFKA, "CreateProducer", &resource)?);
        Ok(FakeProducer {
            azure: self.clone(),
            bootstrap: endpoint.bootstrap_servers.clone(),
            topic: topic.to_owned(),
        })
    }
}

/// What one message becomes: the event kept, or the failure the real producer reports for it.
fn produce(
    state: &mut State,
    bootstrap: &str,
    topic: &str,
    message: &OutgoingMessage,
) -> std::result::Result<(), BatchFailure> {
    let event = event_of(message).map_err(|detail| BatchFailure {
        entry_id: message.entry_id.clone(),
        code: "BodyTruncated".to_owned(),
        message: detail,
        sender_fault: true,
    })?;
    let sent = SentEvent {
        bootstrap: bootstrap.to_owned(),
        event,
    };
    state.events.entry(topic.to_owned()).or_default().push(sent);
    Ok(())
}

impl HubProducer for FakeProducer {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<BatchOutcome> {
        let resource = format!("{}/{}", self.bootstrap, self.topic);
        let mut state = self.azure.call(KAFKA, "Produce", &resource)?;
        Ok(messages
            .iter()
            .map(|m| {
                let sent = produce(&mut state, &self.bootstrap, &self.topic, m);
                (m.entry_id.clone(), sent)
            })
            .collect())
    }
}
