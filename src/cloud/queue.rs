//! The message-queue contract: what the worker runtime (receive, acknowledge, retry through the
//! visibility timeout, dead-letter) and the dead-letter redrive (receive, copy, delete, release) need of a
//! queue, implemented once per cloud: SQS in `aws::queue`, Azure Storage Queues in
//! `azure::queue`, and in memory in the `fake` module.
//!
//! A [`MessageQueue`] is a handle on one queue. Calls on several messages are batches whose outcome names
//! each entry: a per-message failure is reported in the [`BatchOutcome`], not as an error, so a caller can
//! keep what succeeded. Also here: the attribute a worker records a dead letter's reason in, which the
//! redrive reads back to route the message home.

use std::{collections::BTreeMap, future::Future};

use super::Result;

/// A handle on one queue's messages.
pub trait MessageQueue: Send + Sync {
    /// The queue's URL, without any signature: what logs, errors and dead-letter reasons name.
    fn url(&self) -> &str;

    /// Receives up to `request.max` messages (SQS: at most 10, Storage Queues: 32) with their message
    /// attributes, waiting up to `request.wait_seconds` for the first one. Each receipt handle names this
    /// delivery for [`Self::delete`] and [`Self::change_visibility`].
    fn receive(&self, request: &Receive) -> impl Future<Output = Result<Vec<ReceivedMessage>>> + Send;

    /// Deletes up to 10 received messages, given as (entry id, receipt handle).
    fn delete(&self, receipts: &[(String, String)]) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// Hides up to 10 received messages for the given seconds from now (0: visible at once).
    fn change_visibility(
        &self,
        changes: &[VisibilityChange],
    ) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// Sends up to 10 messages in one call (or concurrently, where the cloud has no batch call).
    fn send(&self, messages: &[OutgoingMessage]) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// Sends one message; its failure is the error, classified.
    fn send_one(&self, message: &OutgoingMessage) -> impl Future<Output = Result<()>> + Send;

    /// The most attributes a message may carry (SQS: 10), or `None` for no limit.
    fn attribute_limit(&self) -> Option<usize>;

    /// Whether `message` is small enough to send. Only queues that check the size before sending say no
    /// (a Storage Queue message holds 64 KiB); the others let the service decide.
    fn fits(&self, _message: &OutgoingMessage) -> bool {
        true
    }

    /// Whether this is a FIFO queue: its messages carry a group id that it delivers in order, and a send
    /// to it needs a group id and (without content-based deduplication) a deduplication id, which other
    /// queues refuse (SQS: `InvalidParameterValue`). SQS names every FIFO queue `….fifo`.
    fn is_fifo(&self) -> bool {
        false
    }
}

/// What a receive asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receive {
    /// The most messages to return.
    pub max: i32,
    /// How long to wait for a first message (0: answer at once, so an empty answer means "nothing left").
    pub wait_seconds: i32,
    /// How long the messages stay hidden from other receivers; `None`: the queue's own setting (for a
    /// Storage Queue, the one its handle was made with).
    pub visibility_timeout_seconds: Option<i32>,
    /// Which system attributes to ask for.
    pub system_attributes: SystemAttributes,
}

impl Receive {
    /// A worker's receive: up to `max` messages, waiting up to `wait_seconds`, hidden for
    /// `visibility_timeout_seconds` (`None`: the queue's visibility timeout), with their receive counts and
    /// FIFO groups.
    pub fn work(max: i32, wait_seconds: i32, visibility_timeout_seconds: Option<i32>) -> Self {
        Self {
            max,
            wait_seconds,
            visibility_timeout_seconds,
            system_attributes: SystemAttributes::ReceiveCountAndGroup,
        }
    }

    /// A redrive's receive: up to `max` messages without waiting, hidden for `visibility_timeout_seconds`,
    /// with every system attribute (source queue, FIFO group and deduplication ids).
    pub fn to_move(max: i32, visibility_timeout_seconds: i32) -> Self {
        Self {
            max,
            wait_seconds: 0,
            visibility_timeout_seconds: Some(visibility_timeout_seconds),
            system_attributes: SystemAttributes::All,
        }
    }
}

/// The system attributes a receive asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemAttributes {
    /// How often each message was received (`ApproximateReceiveCount`) and, on a FIFO queue, its group
    /// (`MessageGroupId`): what a worker needs.
    ReceiveCountAndGroup,
    /// Every one the cloud has.
    All,
}

/// A visibility change of one received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibilityChange {
    /// Identifies the entry in the batch outcome.
    pub entry_id: String,
    /// The receipt handle of the delivery.
    pub receipt: String,
    /// Seconds from now until the message is visible again (0: at once).
    pub seconds: i32,
}

/// A message attribute (user-defined metadata carried with a message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageAttribute {
    /// `String`, `Number` or `Binary`, optionally with a custom suffix (`String.json`).
    pub data_type: String,
    /// The value of `String` and `Number` attributes.
    pub string_value: Option<String>,
    /// The value of `Binary` attributes.
    pub binary_value: Option<Vec<u8>>,
}

/// A message as received, with everything needed to send it elsewhere unchanged and then delete it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The cloud's message id.
    pub message_id: String,
    /// Token for deleting this receipt of the message.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// User-defined message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// System attributes (`SentTimestamp`, `ApproximateReceiveCount`, `MessageGroupId`,
    /// `MessageDeduplicationId`, `DeadLetterQueueSourceArn`, …); a cloud without them records at least
    /// how often the message was received under `ApproximateReceiveCount`.
    pub system_attributes: BTreeMap<String, String>,
}

impl ReceivedMessage {
    /// The FIFO message group, if any.
    pub fn group_id(&self) -> Option<&str> {
        self.system_attributes.get("MessageGroupId").map(String::as_str)
    }

    /// The FIFO deduplication id, if any.
    pub fn deduplication_id(&self) -> Option<&str> {
        self.system_attributes
            .get("MessageDeduplicationId")
            .map(String::as_str)
    }

    /// The ARN of the queue a dead-lettered message came from, when the cloud records it.
    pub fn dead_letter_source_arn(&self) -> Option<&str> {
        self.system_attributes
            .get("DeadLetterQueueSourceArn")
            .map(String::as_str)
    }

    /// How many times the message has been received.
    pub fn receive_count(&self) -> Option<u32> {
        self.system_attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
    }

    /// The same message, ready to send as batch entry `entry_id`: body, attributes, and the FIFO group
    /// and deduplication ids are kept. Note that a FIFO queue drops a message whose deduplication id it
    /// saw in the last 5 minutes: a copy going back where the original came from needs an id of its own
    /// (the redrive gives it one, [`copy_deduplication_id`]).
    pub fn to_outgoing(&self, entry_id: impl Into<String>) -> OutgoingMessage {
        OutgoingMessage {
            entry_id: entry_id.into(),
            body: self.body.clone(),
            attributes: self.attributes.clone(),
            group_id: self.group_id().map(str::to_owned),
            deduplication_id: self.deduplication_id().map(str::to_owned),
        }
    }
}

/// A message to send in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Identifies the entry in the batch outcome (unique within the batch).
    pub entry_id: String,
    /// The body.
    pub body: String,
    /// User-defined message attributes.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// FIFO message group (required by FIFO queues).
    pub group_id: Option<String>,
    /// FIFO deduplication id (required by FIFO queues without content-based deduplication).
    pub deduplication_id: Option<String>,
}

/// The outcome of a batch call: which entries succeeded and which failed, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Entry ids that succeeded.
    pub succeeded: Vec<String>,
    /// Entries that failed.
    pub failed: Vec<BatchFailure>,
}

impl FromIterator<(String, std::result::Result<(), BatchFailure>)> for BatchOutcome {
    /// The outcome of one call per entry, from each entry's id and result.
    fn from_iter<I: IntoIterator<Item = (String, std::result::Result<(), BatchFailure>)>>(
        results: I,
    ) -> Self {
        let mut outcome = Self::default();
        for (entry_id, result) in results {
            match result {
                Ok(()) => outcome.succeeded.push(entry_id),
                Err(failure) => outcome.failed.push(failure),
            }
        }
        outcome
    }
}

/// One failed entry of a batch call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchFailure {
    /// The entry id.
    pub entry_id: String,
    /// The cloud's error code.
    pub code: String,
    /// The cloud's message.
    pub message: String,
    /// Whether the request was at fault (so a retry will fail again).
    pub sender_fault: bool,
}

/// The longest deduplication id SQS takes.
const MAX_DEDUPLICATION_ID: usize = 128;

/// A FIFO deduplication id for sending a copy of the message `message_id` for `purpose` (a dead letter,
/// a redrive): the same for every attempt of that send, so a send retried after an unknown outcome is
/// dropped by the queue as a duplicate (within SQS's 5-minute deduplication interval), and different from
/// the original's, so the copy itself is not. SQS takes up to 128 characters, alphanumeric or
/// punctuation; anything else (a long or unusual id) is hashed.
pub fn copy_deduplication_id(purpose: &str, message_id: &str) -> String {
    let id = format!("{purpose}-{message_id}");
    if id.len() <= MAX_DEDUPLICATION_ID && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The attribute naming why a worker dead-lettered a message (JSON: consumer, queue, reason, attempts).
pub const DEAD_LETTER_REASON: &str = "tributary-dead-letter-reason";

/// `attributes` with `name` set to the string `value`, unless every attribute slot (`limit`) is taken
/// without it: then `name` is left out (the message itself is never cut).
pub fn with_attribute(
    mut attributes: BTreeMap<String, MessageAttribute>,
    name: &str,
    value: &str,
    limit: Option<usize>,
) -> BTreeMap<String, MessageAttribute> {
    attributes.remove(name);
    if limit.is_none_or(|limit| attributes.len() < limit) {
        attributes.insert(name.to_owned(), reason_attribute(value));
    }
    attributes
}

/// The attributes of a dead-lettered message: the original ones, plus the reason unless the original
/// already uses every attribute slot of the dead-letter queue (`limit`; then the reason is only logged).
pub fn dead_letter_attributes(
    original: &BTreeMap<String, MessageAttribute>,
    reason: &str,
    limit: Option<usize>,
) -> BTreeMap<String, MessageAttribute> {
    with_attribute(original.clone(), DEAD_LETTER_REASON, reason, limit)
}

/// A `String` attribute carrying `value` (the [`DEAD_LETTER_REASON`] attribute, for one).
pub fn reason_attribute(value: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".to_owned(),
        string_value: Some(value.to_owned()),
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

    const SQS_LIMIT: Option<usize> = Some(10);

    #[test]
    fn a_copy_deduplication_id_is_stable_and_fits_sqs() {
        let id = copy_deduplication_id("dead-letter", "5fea7756-0ea4-451a-a703-a558b933e274");
        assert_eq!(id, "dead-letter-5fea7756-0ea4-451a-a703-a558b933e274");
        assert_eq!(
            id,
            copy_deduplication_id("dead-letter", "5fea7756-0ea4-451a-a703-a558b933e274")
        );
        assert_ne!(
            id,
            copy_deduplication_id("redrive", "5fea7756-0ea4-451a-a703-a558b933e274")
        );
        for odd in ["x".repeat(200), "a b".to_owned(), "ü".to_owned()] {
            let hashed = copy_deduplication_id("redrive", &odd);
            assert_eq!(hashed.len(), 64, "{odd}");
            assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn the_reason_is_added_and_replaces_an_earlier_one() {
        let original = BTreeMap::from([
            ("event".to_owned(), reason_attribute("OrderPlaced")),
            (DEAD_LETTER_REASON.to_owned(), reason_attribute("old")),
        ]);
        let attributes = dead_letter_attributes(&original, "new", SQS_LIMIT);
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
        let attributes = dead_letter_attributes(&BTreeMap::new(), reason, SQS_LIMIT);
        assert_eq!(dead_lettered_from(&attributes).as_deref(), Some("http://sqs/q"));
        assert_eq!(dead_lettered_from(&BTreeMap::new()), None);
    }

    #[test]
    fn a_message_with_ten_attributes_keeps_them_all_and_gets_no_reason_on_sqs() {
        let original: BTreeMap<_, _> = (0..10)
            .map(|i| (format!("a{i}"), reason_attribute("v")))
            .collect();
        assert_eq!(dead_letter_attributes(&original, "why", SQS_LIMIT), original);
        let unlimited = dead_letter_attributes(&original, "why", None);
        assert_eq!(unlimited.len(), 11, "no limit: the reason goes in");
    }
}
