//! The capability traits the controllers call: one narrow trait per capability, so a reconciler asks only
//! for what it uses and a fake for its tests implements only that. The methods are plain `async fn`s
//! returning `Send` futures (no boxing), so reconcilers are generic over the implementation.
//!
//! AWS: [`Topics`], [`Queues`], [`Subscriptions`], [`QueueMessages`], [`Tables`]. Azure: [`EventHubsAdmin`]
//! (Resource Manager), [`StorageQueueAdmin`] and [`StorageQueueMessages`], [`ConsumerLag`] (Kafka admin)
//! and [`HubProducers`] (Kafka producers).
//!
//! Identifiers are the cloud's own strings (ARNs, queue URLs) and attributes are the cloud's own
//! name/value maps: the desired values are computed by pure functions next to each implementation (for
//! AWS in `aws::attributes`), which keeps these traits thin and the logic testable without a network.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
};

use azure_core::http::Url;

use super::{Result, queue::MessageQueue};
// The Azure capabilities speak the clients' own types.
use super::azure::{
    account::Account,
    arm::Provisioned,
    event_hubs::{Hub, HubAddress, HubSettings},
    kafka::{KafkaEndpoint, Lag},
};
// The message types moved to the queue contract; kept here so their paths stay.
pub use super::queue::{BatchFailure, BatchOutcome, MessageAttribute, OutgoingMessage, ReceivedMessage};
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

/// The messages of an account's queues: a handle on one queue's messages (the contract of
/// [`super::queue`], what the fallback redrive moves with) and the cloud's own server-side move task for
/// dead-letter redrive.
pub trait QueueMessages: Send + Sync {
    /// The handle on the messages of the queue at `url`.
    type Queue: MessageQueue;

    /// The messages of the queue at `url`.
    fn message_queue(&self, url: &str) -> Self::Queue;

    /// Starts a server-side move of the messages of the dead-letter queue `request.source_arn` and returns
    /// the task handle. A server without the API answers with an `Unsupported` error.
    fn start_message_move(&self, request: &MoveRequest) -> impl Future<Output = Result<String>> + Send;

    /// The most recent move tasks of the dead-letter queue (newest first, at most 10).
    fn message_moves(&self, source_arn: &str) -> impl Future<Output = Result<Vec<MoveTask>>> + Send;
}

/// Key-value tables for the order processors (DynamoDB).
pub trait Tables: Send + Sync {
    /// Creates the Order table `name` if it does not exist and waits until it can be used. Existing
    /// tables are left as they are (their data belongs to the pipeline, not to one Consumer).
    fn ensure_table(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
}

/// One item of a table: attribute names to values.
pub type TableItem = BTreeMap<String, TableValue>;

/// An attribute value of a table item. The calls that read items only need strings and numbers; any
/// other type is carried as its debug text, so an item is never refused for holding one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableValue {
    /// A string.
    S(String),
    /// A number, as its decimal text.
    N(String),
    /// Another type (list, map, binary, boolean, set, null), shown as text: read, never written back.
    Other(String),
}

impl TableValue {
    /// The string, for a string value.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            Self::S(value) => Some(value),
            _ => None,
        }
    }

    /// The number's text, for a number value.
    pub fn as_n(&self) -> Option<&str> {
        match self {
            Self::N(value) => Some(value),
            _ => None,
        }
    }
}

/// The items of the tables [`Tables`] provisions, through their indexes (DynamoDB): what the order
/// endpoint's outbox relay reads and moves, generic so that its decisions are tested on the fake.
pub trait TableItems: Send + Sync {
    /// Up to `limit` items of the global index `index` whose partition attribute `key.0` is `key.1`,
    /// in ascending order of the index's sort key. Index reads are eventually consistent.
    fn query_index(
        &self,
        table: &str,
        index: &str,
        key: (&str, &str),
        limit: i32,
    ) -> impl Future<Output = Result<Vec<TableItem>>> + Send;

    /// Sets the attributes `set` and removes those named in `remove` on the existing item with the
    /// primary key `key`; `false` (and no write) if there is no such item.
    fn update_item(
        &self,
        table: &str,
        key: &TableItem,
        set: &TableItem,
        remove: &[&str],
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Claims the existing item with the primary key `key` for `holder` until `until_millis` (Unix
    /// milliseconds), in one conditional write: the string attribute `attributes.0` becomes `holder` and
    /// the number `attributes.1` the expiry, only if the item has no claim, its claim expired before
    /// `now_millis`, or `holder` holds it already (`now_and_until_millis` is `(now_millis, until_millis)`). `false` (and no write) otherwise, or if there is no
    /// such item: of replicas claiming at once exactly one gets it.
    fn claim_item(
        &self,
        table: &str,
        key: &TableItem,
        attributes: (&str, &str),
        holder: &str,
        now_and_until_millis: (i64, i64),
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Writes `item` whole (replacing any item with its key). [`TableValue::Other`] cannot be written.
    fn put_item(&self, table: &str, item: &TableItem) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the item with the primary key `key`; one that is gone already is success.
    fn delete_item(&self, table: &str, key: &TableItem) -> impl Future<Output = Result<()>> + Send;
}

/// Event Hubs through Resource Manager: the namespace, its hubs (whose ownership mark is their
/// `userMetadata`), their consumer groups and the Listen rule consumers connect with (Azure).
pub trait EventHubsAdmin: Send + Sync {
    /// The namespace's provisioning state (`Succeeded`, `Activating`, …), or `None` if there is none.
    fn namespace_state(&self, at: &HubAddress) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Creates the namespace (Standard, Kafka enabled) in `location`, with `tags`.
    fn create_namespace(
        &self,
        at: &HubAddress,
        location: &str,
        tags: &Tags,
    ) -> impl Future<Output = Result<Provisioned>> + Send;

    /// The hub, or `None`.
    fn hub(&self, at: &HubAddress) -> impl Future<Output = Result<Option<Hub>>> + Send;

    /// Creates or updates the hub to `settings`.
    fn put_hub(
        &self,
        at: &HubAddress,
        settings: &HubSettings,
    ) -> impl Future<Output = Result<Provisioned>> + Send;

    /// The consumer groups of the hub (`$Default` included).
    fn consumer_groups(&self, at: &HubAddress) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Creates the consumer group `name` (an existing one is left as it is).
    fn create_consumer_group(&self, at: &HubAddress, name: &str) -> impl Future<Output = Result<()>> + Send;

    /// Makes sure the hub's Listen rule exists and returns its primary connection string (a secret).
    fn listen_connection_string(&self, at: &HubAddress) -> impl Future<Output = Result<String>> + Send;

    /// Deletes the hub (already gone is success). False while the deletion is still running.
    fn delete_hub(&self, at: &HubAddress) -> impl Future<Output = Result<bool>> + Send;
}

/// Storage Queues as the controller manages them, signed with the account key (Azure). A queue has no
/// tags: Tributary's ownership marks live in its metadata.
pub trait StorageQueueAdmin: Send + Sync {
    /// The unsigned URL of `queue` in the account `account`: what status shows and workers record.
    fn queue_url(&self, account: &str, queue: &str) -> Result<Url>;

    /// The queue's message count and metadata, or `None` if there is no such queue.
    fn observe(
        &self,
        account: &Account,
        queue: &str,
    ) -> impl Future<Output = Result<Option<Observed>>> + Send;

    /// Creates the queue with `metadata`. The same metadata again succeeds; other metadata is refused.
    fn create(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Replaces the queue's metadata.
    fn set_metadata(
        &self,
        account: &Account,
        queue: &str,
        metadata: &HashMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Depth (`messages`, as observed) and the age of the oldest message, for status.
    fn stats(
        &self,
        account: &Account,
        queue: &str,
        messages: i64,
    ) -> impl Future<Output = Result<QueueStats>> + Send;

    /// Deletes the queue; one already gone is success.
    fn delete(&self, account: &Account, queue: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A consumer group's lag on a Kafka topic (an Event Hub through its Kafka endpoint), which Consumers of a
/// DeviceStream scale on.
pub trait ConsumerLag: Send + Sync {
    /// The lag of `group` on `topic` at `endpoint` (signed in with the endpoint's password).
    fn lag(
        &self,
        endpoint: &KafkaEndpoint,
        topic: &str,
        group: &str,
    ) -> impl Future<Output = Result<Lag>> + Send;
}

/// The messages of Storage Queues (the contract of [`super::queue`]): what the azure DeadLetter redrive
/// receives from and sends back to.
pub trait StorageQueueMessages: Send + Sync {
    /// The handle on one queue's messages.
    type Queue: MessageQueue + Clone + 'static;

    /// The messages of `queue` in `account` (signed with its key); what is sent to it is kept for
    /// `message_ttl_seconds` when given (`-1`: never expires).
    fn storage_queue(
        &self,
        account: &Account,
        queue: &str,
        message_ttl_seconds: Option<i64>,
    ) -> Result<Self::Queue>;
}

/// Producers of events into Event Hubs through their Kafka endpoint: where the azure DeadLetter redrive
/// sends a device processor's dead letters back to.
pub trait HubProducers: Send + Sync {
    /// A producer of one hub.
    type Producer: HubProducer + 'static;

    /// A producer of `topic` (the hub) at `endpoint`, signed in with the endpoint's password.
    fn producer(&self, endpoint: &KafkaEndpoint, topic: &str) -> Result<Self::Producer>;
}

/// One hub's producer.
pub trait HubProducer: Send + Sync {
    /// Sends each message's event (as the dead letter holds it) to the hub; per-message failures are
    /// reported in the outcome.
    fn send(&self, messages: &[OutgoingMessage]) -> impl Future<Output = Result<BatchOutcome>> + Send;
}

/// What is observed of an existing queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Approximate number of messages.
    pub messages: i64,
    /// The queue's metadata, names lower-cased as the service returns them.
    pub metadata: HashMap<String, String>,
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
