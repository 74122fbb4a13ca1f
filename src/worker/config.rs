//! The worker's configuration: what the Consumer reconciler renders into the Consumer's ConfigMap
//! (`worker.yaml`) with every reference resolved (queue URLs, topic ARN, table), and what
//! `tributary worker --config FILE` reads, in a pod or on a laptop alike. Cloud credentials and endpoints
//! are not in it: they come from the environment (the standard AWS chain, `AWS_ENDPOINT_URL`; the storage
//! account key of an Azure queue in `AZURE_STORAGE_KEY`; for the device processor the Event Hubs
//! connection string in `KAFKA_SASL_PASSWORD` and the Cosmos DB key in `AZURE_COSMOS_KEY`).

use std::{net::SocketAddr, path::Path};

use serde::{Deserialize, Serialize};

// One path per use (not `super::{…}`): the configuration needs its siblings' parts, not the worker's root.
pub use super::delivery::config::DeliveryConfig;
pub use super::devices::config::{CosmosSink, KafkaSource};
pub use super::orders::security::config::{
    ApiKeyFiles, AuthConfig, HttpSource, JwtConfig, LimitsConfig, TlsFiles,
};

/// The file name of the configuration inside the ConfigMap and the mounted volume.
pub const FILE_NAME: &str = "worker.yaml";

/// Everything a worker process needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerConfig {
    /// The Consumer this worker runs for (in logs, metrics and dead-letter reasons).
    pub consumer: ConsumerName,
    /// The processor.
    pub processor: ProcessorKind,
    /// Where messages come from: exactly one of `sqs`, `storageQueue`, `kafka` and `http`.
    pub source: Source,
    /// Where results go.
    #[serde(default)]
    pub sink: Sink,
    /// Retries of a failing message.
    #[serde(default)]
    pub retry: Retry,
    /// Where messages that cannot be processed go, with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterTarget>,
    /// Where processor `relay` delivers, and its filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<super::relay::RelayTarget>,
    /// Where processor `container` delivers (the user's container in the pod), and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryConfig>,
    /// Address of `/metrics` and `/healthz`.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: SocketAddr,
    /// How long in-flight messages may take to finish after SIGTERM before they are released to other
    /// workers.
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    /// How long every attempt to reach the source (a queue's receives, the stream's reads, the order
    /// endpoint's table writes and outbox reads) must have failed before `/readyz` fails, naming it.
    /// Left out when it is the default, so a rendered configuration does not change with this field.
    #[serde(
        default = "default_unreachable_after_seconds",
        skip_serializing_if = "is_default_unreachable_after"
    )]
    pub unreachable_after_seconds: u64,
}

/// Namespace and name of a Consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerName {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The processors a worker can run: the built-in ones of the Consumer API, and `noop` (acknowledges
/// everything; for measuring the runtime itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessorKind {
    /// Validates POSTed orders, records them and publishes `OrderPlaced`.
    OrderAck,
    /// Records customer notifications.
    Notification,
    /// Reserves stock.
    Inventory,
    /// Creates shipments.
    Shipment,
    /// Validates and enriches device telemetry and upserts it into Cosmos DB.
    Device,
    /// Delivers a Topic's messages to a Storage Queue, filtered: a Subscription to a Queue on azure.
    Relay,
    /// Does nothing and succeeds.
    Noop,
    /// The user's container beside the worker: each message delivered to it over HTTP as a CloudEvent
    /// (the `delivery` block).
    Container,
}

/// Message source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// An SQS queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqs: Option<SqsSource>,
    /// An Azure Storage Queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_queue: Option<StorageQueueSource>,
    /// A Kafka topic in a consumer group: an Event Hub through its Kafka endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSource>,
    /// HTTP requests (the order REST endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
}

/// Draining an Azure Storage Queue (signed with the account key in `AZURE_STORAGE_KEY`). Its dead letter,
/// if any, is a Storage Queue URL of the same account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageQueueSource {
    /// Queue URL, without a signature.
    pub queue_url: String,
    /// Storage account name.
    pub account: String,
    /// How long a received message stays hidden; work in progress is extended before half of it passes.
    #[serde(default = "default_visibility")]
    pub visibility_timeout_seconds: i32,
    /// Receive loops kept in flight at once, each for up to 32 messages.
    #[serde(default = "default_receivers")]
    pub receivers: usize,
    /// How long each receive keeps asking for messages before it returns empty (0 to 20).
    #[serde(default = "default_wait")]
    pub wait_time_seconds: i32,
    /// The Queue's `deadLetter.maxReceiveCount`: a storage queue has no redrive policy of its own, so a
    /// message received more often than this (one that keeps crashing or timing out its worker) is
    /// dead-lettered without being processed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
}

/// Draining an SQS queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsSource {
    /// Queue URL.
    pub queue_url: String,
    /// The queue's visibility timeout: a message being worked on is extended before half of it passes.
    #[serde(default = "default_visibility")]
    pub visibility_timeout_seconds: i32,
    /// Receive calls kept in flight at once, each for up to 10 messages.
    #[serde(default = "default_receivers")]
    pub receivers: usize,
    /// Long-polling wait of each receive (0 to 20).
    #[serde(default = "default_wait")]
    pub wait_time_seconds: i32,
}

/// Results.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sink {
    /// DynamoDB table of orders, notifications, stock and shipments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// SNS topic that events are published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_arn: Option<String>,
    /// Cosmos DB container that device telemetry is upserted into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosmos: Option<CosmosSink>,
}

/// Retries with exponential backoff, through the queue's visibility timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Attempts before a failing message is dead-lettered.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each attempt.
    pub initial_backoff_seconds: u32,
    /// Longest delay.
    pub max_backoff_seconds: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_seconds: 1,
            max_backoff_seconds: 300,
        }
    }
}

impl Retry {
    /// SQS's longest visibility timeout, so the longest retry delay.
    pub const MAX_DELAY_SECONDS: u32 = 43_200;

    /// The delay before the next attempt after attempt number `attempt` (1 for the first) failed:
    /// `initial × 2^(attempt-1)`, at most `max_backoff_seconds` and SQS's 12 hours.
    pub fn delay_seconds(&self, attempt: u32) -> u32 {
        let doubled = self
            .initial_backoff_seconds
            .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
        doubled.min(self.max_backoff_seconds).min(Self::MAX_DELAY_SECONDS)
    }

    /// The delay after attempt `attempt` failed and the processor asked for `asked` seconds
    /// (`Retry-After`): the backoff, lengthened to what was asked, never beyond `max_backoff_seconds`.
    pub fn delay_seconds_asked(&self, attempt: u32, asked: Option<u32>) -> u32 {
        let asked = asked.unwrap_or(0).min(self.max_backoff_seconds);
        self.delay_seconds(attempt)
            .max(asked.min(Self::MAX_DELAY_SECONDS))
    }

    /// Whether attempt number `attempt` was the last one.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

/// The dead-letter queue of the Consumer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterTarget {
    /// Queue URL: SQS, or a Storage Queue for a `storageQueue` or `kafka` source.
    pub queue_url: String,
    /// Storage account of the dead-letter Storage Queue of a `kafka` source (signed with the key in
    /// `AZURE_STORAGE_KEY`). A `storageQueue` source's dead letter is in the source's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<String>,
}

fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_drain_seconds() -> u64 {
    20
}
/// 30 s: two or three receives with their backoff, so one blip does not take a pod out of its Service.
pub const DEFAULT_UNREACHABLE_AFTER_SECONDS: u64 = 30;
fn default_unreachable_after_seconds() -> u64 {
    DEFAULT_UNREACHABLE_AFTER_SECONDS
}
fn is_default_unreachable_after(seconds: &u64) -> bool {
    *seconds == DEFAULT_UNREACHABLE_AFTER_SECONDS
}
fn default_visibility() -> i32 {
    30
}
fn default_receivers() -> usize {
    4
}
fn default_wait() -> i32 {
    20
}

/// A configuration that cannot be used, with the field and the rule.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the worker configuration {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not fit the schema.
    #[error("the worker configuration {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why, with the line and field.
        source: serde_yaml_ng::Error,
    },
    /// A rule across fields.
    #[error("the worker configuration is not valid: {0}")]
    Invalid(String),
}

impl WorkerConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let (config, unknown) = Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: shown.clone(),
            source,
        })?;
        if !unknown.is_empty() {
            tracing::warn!(
                path = %shown,
                fields = ?unknown,
                "fields of the worker configuration this version does not know are ignored"
            );
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a configuration, with the paths of the fields this version does not know. They are
    /// ignored, not refused: during a rolling upgrade a newer controller writes fields into the one
    /// ConfigMap that the older pods still mount, and refusing them would stop those pods from starting.
    pub fn parse(text: &str) -> Result<(Self, Vec<String>), serde_yaml_ng::Error> {
        let mut unknown = Vec::new();
        let config = serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |path| {
            unknown.push(path.to_string());
        })?;
        Ok((config, unknown))
    }

    /// The rules serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_source()?;
        self.validate_queue_limits()?;
        self.validate_processor()
    }

    /// Exactly one source, and the one the processor reads, with its own rules.
    fn validate_source(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        let queue = self.source.sqs.is_some() || self.source.storage_queue.is_some();
        if usize::from(self.source.sqs.is_some())
            + usize::from(self.source.storage_queue.is_some())
            + usize::from(self.source.kafka.is_some())
            + usize::from(self.source.http.is_some())
            != 1
        {
            return invalid("source: set exactly one of sqs, storageQueue, kafka and http");
        }
        let device = self.processor == ProcessorKind::Device;
        if device && self.source.kafka.is_none() {
            return invalid("processor device reads source.kafka");
        }
        if let Some(kafka) = &self.source.kafka {
            if !matches!(self.processor, ProcessorKind::Device | ProcessorKind::Container) {
                return invalid(
                    "processor device reads source.kafka, and source.kafka is read by processors device and container only",
                );
            }
            kafka.validate().map_err(ConfigError::Invalid)?;
            if device {
                let Some(cosmos) = &self.sink.cosmos else {
                    return invalid("sink.cosmos is required by processor device");
                };
                cosmos.validate().map_err(ConfigError::Invalid)?;
            }
            if let Some(dead_letter) = &self.dead_letter {
                if dead_letter.storage_account.is_none() {
                    return invalid(
                        "deadLetter.storageAccount is required with a kafka source (the dead letter is a Storage Queue)",
                    );
                }
                if url::Url::parse(&dead_letter.queue_url).is_err() {
                    return invalid("deadLetter.queueUrl must be a URL");
                }
            }
        }
        match (queue, &self.source.http, self.processor) {
            (false, Some(_), kind) if kind != ProcessorKind::OrderAck => {
                return invalid("source.http serves the order endpoint: processor must be order-ack");
            }
            (true, None, ProcessorKind::OrderAck) => {
                return invalid("processor order-ack serves HTTP: it needs source.http");
            }
            _ => {}
        }
        if let Some(http) = &self.source.http {
            http.validate().map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// The limits of the queue source, if it is one.
    fn validate_queue_limits(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if let Some(sqs) = &self.source.sqs {
            queue_limits(
                "sqs",
                sqs.wait_time_seconds,
                sqs.visibility_timeout_seconds,
                43_200,
                sqs.receivers,
            )?;
        }
        if let Some(storage) = &self.source.storage_queue {
            queue_limits(
                "storageQueue",
                storage.wait_time_seconds,
                storage.visibility_timeout_seconds,
                604_800,
                storage.receivers,
            )?;
            if url::Url::parse(&storage.queue_url).is_err() {
                return invalid("source.storageQueue.queueUrl must be a URL");
            }
        }
        Ok(())
    }

    /// What `/readyz` names when the source cannot be reached: the queue, the stream, or for the order
    /// endpoint (whose requests come from anywhere) the table it records them in.
    pub fn source_name(&self) -> String {
        let source = &self.source;
        if let Some(sqs) = &source.sqs {
            return format!("SQS queue {}", sqs.queue_url);
        }
        if let Some(storage) = &source.storage_queue {
            return format!("Storage Queue {}", storage.queue_url);
        }
        if let Some(kafka) = &source.kafka {
            return format!("Kafka topic {} at {}", kafka.topic, kafka.bootstrap_servers);
        }
        let table = self.sink.table.as_deref().unwrap_or_default();
        format!("DynamoDB table {table}")
    }

    /// What the processor needs besides its source: retries, the delivery and relay blocks, the table
    /// and the topic.
    fn validate_processor(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !(1..=3600).contains(&self.unreachable_after_seconds) {
            return invalid("unreachableAfterSeconds must be between 1 and 3600");
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.maxAttempts must be at least 1");
        }
        match (&self.delivery, self.processor) {
            (Some(delivery), ProcessorKind::Container) => {
                delivery.validate().map_err(ConfigError::Invalid)?;
            }
            (None, ProcessorKind::Container) => {
                return invalid("processor container needs the delivery block");
            }
            (Some(_), _) => return invalid("the delivery block is read by processor container only"),
            (None, _) => {}
        }
        match (&self.relay, self.processor) {
            (Some(relay), ProcessorKind::Relay) => {
                relay.validate().map_err(ConfigError::Invalid)?;
            }
            (None, ProcessorKind::Relay) => return invalid("processor relay needs the relay block"),
            (Some(_), _) => return invalid("the relay block is read by processor relay only"),
            (None, _) => {}
        }
        let needs_table = matches!(
            self.processor,
            ProcessorKind::OrderAck
                | ProcessorKind::Notification
                | ProcessorKind::Inventory
                | ProcessorKind::Shipment
        );
        if needs_table && self.sink.table.is_none() {
            return invalid("sink.table is required by the order processors");
        }
        if matches!(self.processor, ProcessorKind::OrderAck) && self.sink.topic_arn.is_none() {
            return invalid("sink.topicArn is required by order-ack, which publishes OrderPlaced");
        }
        Ok(())
    }
}

/// The limits shared by the queue sources: a wait of 0 to 20 s, a visibility of 1 s to the service's
/// longest (`max_visibility`), 1 to 64 receivers. Errors name `source.<source>.<field>`.
fn queue_limits(
    source: &str,
    wait_seconds: i32,
    visibility_seconds: i32,
    max_visibility: i32,
    receivers: usize,
) -> Result<(), ConfigError> {
    let invalid = |field: &str, range: &str| {
        Err(ConfigError::Invalid(format!(
            "source.{source}.{field} must be between {range}"
        )))
    };
    if !(0..=20).contains(&wait_seconds) {
        return invalid("waitTimeSeconds", "0 and 20");
    }
    if !(1..=max_visibility).contains(&visibility_seconds) {
        return invalid("visibilityTimeoutSeconds", &format!("1 and {max_visibility}"));
    }
    if !(1..=64).contains(&receivers) {
        return invalid("receivers", "1 and 64");
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
