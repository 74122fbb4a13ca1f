//! The capability a worker needs from a queue: receive with long polling, acknowledge (delete) in
//! batches, postpone (change visibility) for retries and heartbeats, and send a message on to a dead-letter
//! queue with the reason. SQS implements it in `aws::work_queue`; an Azure Storage Queue will beside it.

use std::{collections::BTreeMap, future::Future};

use super::{Result, traits::MessageAttribute};
use crate::worker::message::Message;

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

/// A queue drained by workers. Clones share the client.
pub trait WorkQueue: Clone + Send + Sync + 'static {
    /// Receives up to `max` (at most 10) messages, waiting up to `wait_seconds` for the first one.
    fn receive(&self, max: i32, wait_seconds: i32) -> impl Future<Output = Result<Vec<Delivery>>> + Send;

    /// Deletes up to 10 processed messages by receipt handle; returns the receipts that failed.
    fn acknowledge(&self, receipts: Vec<String>) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Makes each message visible again after its delay in seconds (0: at once), in one call for up to
    /// 10; returns the receipts that failed.
    fn postpone(&self, entries: Vec<(String, i32)>) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Sends `delivery` unchanged to the dead-letter queue, with `reason` attached as the
    /// [`DEAD_LETTER_REASON`] attribute where the attribute limit allows.
    fn dead_letter(&self, delivery: &Delivery, reason: &str) -> impl Future<Output = Result<()>> + Send;

    /// Whether a dead-letter queue is configured.
    fn has_dead_letter(&self) -> bool;

    /// The queue's URL, recorded in dead-letter reasons so a redrive can send a message back to it.
    fn url(&self) -> &str;
}

/// The attribute naming why a worker dead-lettered a message (JSON: consumer, queue, reason, attempts).
pub const DEAD_LETTER_REASON: &str = "tributary-dead-letter-reason";

/// SQS's limit on message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;

/// The attributes of a dead-lettered message: the original ones, plus the reason unless the original
/// already uses every attribute slot (then the reason is only logged; the message itself is never cut).
pub fn dead_letter_attributes(
    original: &BTreeMap<String, MessageAttribute>,
    reason: &str,
) -> BTreeMap<String, MessageAttribute> {
    let mut attributes = original.clone();
    attributes.remove(DEAD_LETTER_REASON);
    if attributes.len() < MAX_ATTRIBUTES {
        attributes.insert(DEAD_LETTER_REASON.to_owned(), reason_attribute(reason));
    }
    attributes
}

/// The [`DEAD_LETTER_REASON`] attribute carrying `reason`.
pub fn reason_attribute(reason: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".to_owned(),
        string_value: Some(reason.to_owned()),
        binary_value: None,
    }
}

/// The queue a worker dead-lettered `attributes`' message from, as its reason records it.
pub fn dead_lettered_from(attributes: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    let reason = attributes.get(DEAD_LETTER_REASON)?.string_value.as_deref()?;
    let reason: serde_json::Value = serde_json::from_str(reason).ok()?;
    reason.get("queue")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(value: &str) -> MessageAttribute {
        MessageAttribute {
            data_type: "String".into(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }

    #[test]
    fn the_reason_is_added_and_replaces_an_earlier_one() {
        let original = BTreeMap::from([
            ("event".to_owned(), string("OrderPlaced")),
            (DEAD_LETTER_REASON.to_owned(), string("old")),
        ]);
        let attributes = dead_letter_attributes(&original, "new");
        assert_eq!(attributes.len(), 2);
        assert_eq!(
            attributes[DEAD_LETTER_REASON].string_value.as_deref(),
            Some("new")
        );
        assert_eq!(attributes["event"], original["event"]);
    }

    #[test]
    fn the_queue_of_a_reason_is_read_back() {
        let reason = r#"{"consumer":"shop/inventory","queue":"http://sqs/q","reason":"x","attempts":1}"#;
        let attributes = dead_letter_attributes(&BTreeMap::new(), reason);
        assert_eq!(dead_lettered_from(&attributes).as_deref(), Some("http://sqs/q"));
        assert_eq!(dead_lettered_from(&BTreeMap::new()), None);
    }

    #[test]
    fn a_message_with_ten_attributes_keeps_them_all_and_gets_no_reason() {
        let original: BTreeMap<_, _> = (0..10).map(|i| (format!("a{i}"), string("v"))).collect();
        assert_eq!(dead_letter_attributes(&original, "why"), original);
    }
}
