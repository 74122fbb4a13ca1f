//! The capability traits the controllers call: one narrow trait per capability, so a reconciler asks only
//! for what it uses and a fake for its tests implements only that. The methods are plain `async fn`s
//! returning `Send` futures (no boxing), so reconcilers are generic over the implementation.
//!
//! Identifiers are the cloud's own strings (ARNs, queue URLs) and attributes are the cloud's own
//! name/value maps: the desired values are computed by pure functions next to each implementation (for
//! AWS in `aws::attributes`), which keeps these traits thin and the logic testable without a network.

use std::{collections::BTreeMap, future::Future};

use super::Result;
pub use crate::api::common::Tags;

/// Attribute names to values, as the cloud reports and accepts them (SNS and SQS attributes are strings).
pub type Attributes = BTreeMap<String, String>;

/// Attributes from (name, value) pairs, for tests.
#[cfg(test)]
pub(crate) fn attributes_of(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Publish/subscribe topics (SNS).
pub trait Topics: Send + Sync {
    /// The ARN and attributes of the topic called `name`, or `None` if there is none (one call: the
    /// lookup reads the attributes). Used to adopt existing topics and to make creation idempotent.
    fn find_topic(&self, name: &str) -> impl Future<Output = Result<Option<(String, Attributes)>>> + Send;

    /// Creates the topic and returns its ARN. Creating an existing topic with the same attributes returns
    /// the existing ARN; with different attributes the cloud refuses (a `Permanent` error).
    fn create_topic(
        &self,
        name: &str,
        attributes: &Attributes,
        tags: &Tags,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Every attribute of the topic. A missing topic is a `NotFound` error.
    fn topic_attributes(&self, arn: &str) -> impl Future<Output = Result<Attributes>> + Send;

    /// Sets one attribute (SNS sets attributes one at a time).
    fn set_topic_attribute(
        &self,
        arn: &str,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The topic's tags.
    fn topic_tags(&self, arn: &str) -> impl Future<Output = Result<Tags>> + Send;

    /// Adds or overwrites tags.
    fn tag_topic(&self, arn: &str, tags: &Tags) -> impl Future<Output = Result<()>> + Send;

    /// Removes tags by key.
    fn untag_topic(&self, arn: &str, keys: &[String]) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the topic (and with it its subscriptions). A topic that is already gone is success.
    fn delete_topic(&self, arn: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Message queues (SQS).
pub trait Queues: Send + Sync {
    /// The URL of the queue called `name`, or `None` if there is none.
    fn find_queue(&self, name: &str) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Creates the queue and returns its URL. Creating an existing queue with the same attributes returns
    /// the existing URL; with different attributes the cloud refuses (a `Permanent` error).
    fn create_queue(
        &self,
        name: &str,
        attributes: &Attributes,
        tags: &Tags,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Every attribute of the queue, including the counts and the ARN. A missing queue is `NotFound`.
    fn queue_attributes(&self, url: &str) -> impl Future<Output = Result<Attributes>> + Send;

    /// Sets attributes in one call. An empty value clears an attribute (e.g. `RedrivePolicy`).
    fn set_queue_attributes(
        &self,
        url: &str,
        attributes: &Attributes,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Depth and oldest-message age, for status.
    fn queue_stats(&self, url: &str) -> impl Future<Output = Result<QueueStats>> + Send;

    /// The URLs of the queues whose dead-letter queue this is.
    fn dead_letter_sources(&self, url: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The queue's tags.
    fn queue_tags(&self, url: &str) -> impl Future<Output = Result<Tags>> + Send;

    /// Adds or overwrites tags.
    fn tag_queue(&self, url: &str, tags: &Tags) -> impl Future<Output = Result<()>> + Send;

    /// Removes tags by key.
    fn untag_queue(&self, url: &str, keys: &[String]) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the queue and its messages. A queue that is already gone is success.
    fn delete_queue(&self, url: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Subscriptions of queues to topics (SNS to SQS).
pub trait Subscriptions: Send + Sync {
    /// The ARN of the subscription delivering `topic_arn` to the queue `queue_arn`, if there is one.
    fn find_subscription(
        &self,
        topic_arn: &str,
        queue_arn: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Subscribes the queue to the topic with the given attributes and returns the subscription ARN.
    fn subscribe(
        &self,
        topic_arn: &str,
        queue_arn: &str,
        attributes: &Attributes,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Every attribute of the subscription, or `None` if it does not exist.
    fn subscription_attributes(&self, arn: &str) -> impl Future<Output = Result<Option<Attributes>>> + Send;

    /// Sets one attribute. An empty `FilterPolicy` removes the filter.
    fn set_subscription_attribute(
        &self,
        arn: &str,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the subscription. One that is already gone is success.
    fn unsubscribe(&self, arn: &str) -> impl Future<Output = Result<()>> + Send;
}

/// Moving messages between queues, for dead-letter redrive: the cloud's own move task when it has one,
/// and the receive/send/delete primitives of the fallback (`cloud::redrive`) when it has not.
pub trait QueueMessages: Send + Sync {
    /// Starts a server-side move of the messages of the dead-letter queue `request.source_arn` and returns
    /// the task handle. A server without the API answers with an `Unsupported` error.
    fn start_message_move(&self, request: &MoveRequest) -> impl Future<Output = Result<String>> + Send;

    /// The most recent move tasks of the dead-letter queue (newest first, at most 10).
    fn message_moves(&self, source_arn: &str) -> impl Future<Output = Result<Vec<MoveTask>>> + Send;

    /// Receives up to `max` (at most 10) messages with all their attributes, hiding them from other
    /// receivers for `visibility_timeout_seconds`.
    fn receive_messages(
        &self,
        url: &str,
        max: i32,
        visibility_timeout_seconds: i32,
    ) -> impl Future<Output = Result<Vec<ReceivedMessage>>> + Send;

    /// Sends up to 10 messages in one call. Per-message failures are reported in the outcome, not as an
    /// error.
    fn send_messages(
        &self,
        url: &str,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// The most attributes a message may carry (SQS: 10), or `None` for no limit.
    fn attribute_limit(&self) -> Option<usize> {
        Some(10)
    }

    /// Makes up to 10 received messages, given as (entry id, receipt handle), visible again at once.
    fn release_messages(
        &self,
        url: &str,
        receipts: &[(String, String)],
    ) -> impl Future<Output = Result<BatchOutcome>> + Send;

    /// Deletes up to 10 received messages, given as (entry id, receipt handle).
    fn delete_messages(
        &self,
        url: &str,
        receipts: &[(String, String)],
    ) -> impl Future<Output = Result<BatchOutcome>> + Send;
}

/// Key-value tables for the order processors (DynamoDB).
pub trait Tables: Send + Sync {
    /// Creates the Order table `name` if it does not exist and waits until it can be used. Existing
    /// tables are left as they are (their data belongs to the pipeline, not to one Consumer).
    fn ensure_table(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
}

/// What status reports about a queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages available for receiving.
    pub visible: i64,
    /// Messages received and not yet deleted.
    pub in_flight: i64,
    /// Messages sent with a delay that has not passed.
    pub delayed: i64,
    /// Age in seconds of the oldest message, when the implementation can observe it cheaply.
    pub oldest_message_age_seconds: Option<i64>,
}

/// A request to move the messages of a dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveRequest {
    /// ARN of the dead-letter queue.
    pub source_arn: String,
    /// ARN of the queue to move to; `None` moves each message back to the queue it came from.
    pub destination_arn: Option<String>,
    /// Throttle; `None` lets the cloud decide.
    pub max_messages_per_second: Option<i32>,
}

/// The state of a server-side move task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveTaskStatus {
    /// Moving.
    Running,
    /// Every message was moved.
    Completed,
    /// A cancel was requested and is in progress.
    Cancelling,
    /// Stopped on request.
    Cancelled,
    /// Stopped by an error; see `failure_reason`.
    Failed,
    /// A state this version does not know.
    Other(String),
}

impl MoveTaskStatus {
    /// Parses the cloud's status string (`RUNNING`, `COMPLETED`, …).
    pub fn parse(status: &str) -> Self {
        match status {
            "RUNNING" => Self::Running,
            "COMPLETED" => Self::Completed,
            "CANCELLING" => Self::Cancelling,
            "CANCELLED" => Self::Cancelled,
            "FAILED" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the task has stopped for good.
    pub fn is_finished(&self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::Failed)
    }
}

/// A server-side move task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveTask {
    /// Handle of a running task (the cloud gives none for finished ones).
    pub task_handle: Option<String>,
    /// Its state.
    pub status: MoveTaskStatus,
    /// ARN of the dead-letter queue.
    pub source_arn: Option<String>,
    /// ARN of the destination, when one was given.
    pub destination_arn: Option<String>,
    /// Messages moved so far.
    pub moved: i64,
    /// Messages to move in total, when known.
    pub to_move: Option<i64>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// Start time, milliseconds since the epoch.
    pub started_at_millis: i64,
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
    /// `MessageDeduplicationId`, `DeadLetterQueueSourceArn`, …).
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
    /// saw in the last 5 minutes, so a redrive sooner than that after the original send is deduplicated.
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
