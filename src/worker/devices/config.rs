//! The device processor's part of `worker.yaml`: the Kafka source (an Event Hub through its Kafka
//! endpoint) and the Cosmos DB sink. Secrets are not here: the connection string is in
//! `KAFKA_SASL_PASSWORD`, the Cosmos DB account key in `AZURE_COSMOS_KEY`.

use serde::{Deserialize, Serialize};

/// Reading a Kafka topic in a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSource {
    /// `host:port` of the brokers (`<namespace>.servicebus.windows.net:9093` for Event Hubs).
    pub bootstrap_servers: String,
    /// Topic: the Event Hub's name.
    pub topic: String,
    /// Consumer group; the replicas of a Consumer share it, so each partition is read by one of them.
    #[serde(default = "default_group")]
    pub consumer_group: String,
    /// `SASL_SSL` (Event Hubs) or `PLAINTEXT` (a local broker).
    #[serde(default = "default_protocol")]
    pub security_protocol: String,
    /// SASL PLAIN user; Event Hubs takes the literal `$ConnectionString`, with the connection string as
    /// the password (in `KAFKA_SASL_PASSWORD`).
    #[serde(default = "default_username")]
    pub username: String,
    /// CA bundle to verify the brokers with, when it is not the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// How long the group waits for a silent replica before its partitions go to the others (Event Hubs
    /// wants at least 30).
    #[serde(default = "default_session_timeout")]
    pub session_timeout_seconds: u32,
    /// Most events processed, written and committed together.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Most bytes of events (bodies, keys and headers) a batch holds, whatever their count: a batch stops
    /// filling before an event would cross it (one event larger than the whole budget is a batch of its
    /// own). It also sizes what the Kafka client prefetches (half of it) and the events being parsed and
    /// written at once (a quarter of it), so the worker's memory follows from it: see
    /// docs/workers.md. The controller derives it from the worker's memory limit (an eighth of it).
    #[serde(default = "default_batch_bytes")]
    pub max_batch_bytes: u64,
    /// The consumer's `max.poll.interval.ms`, in seconds: a replica that reads nothing for this long is
    /// put out of the group. Retries inside a batch stop at half of it; an event still unsettled then
    /// stays in the stream (its partition is rewound to it and paused with backoff) instead of the
    /// replica being dropped.
    #[serde(default = "default_poll_interval")]
    pub max_poll_interval_seconds: u32,
    /// Cosmos DB writes in flight at once.
    #[serde(default = "default_writers")]
    pub writers: usize,
}

/// Upserting into a Cosmos DB (NoSQL) container, signed with the key in `AZURE_COSMOS_KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CosmosSink {
    /// Account endpoint (`https://<account>.documents.azure.com:443/`). Certificates are verified except
    /// for an emulator on a loopback address.
    pub endpoint: String,
    /// Database.
    pub database: String,
    /// Container.
    pub container: String,
    /// The container's partition key path.
    #[serde(default = "default_partition_key")]
    pub partition_key_path: String,
    /// Create the database and container when they do not exist.
    #[serde(default)]
    pub create_if_missing: bool,
    /// Region whose replica the client prefers; any name works with a single-region account.
    #[serde(default = "default_region")]
    pub preferred_region: String,
}

impl KafkaSource {
    /// The rules serde cannot express; errors name `source.kafka.<field>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.bootstrap_servers.is_empty() || self.topic.is_empty() || self.consumer_group.is_empty() {
            return Err("source.kafka.bootstrapServers, topic and consumerGroup must not be empty".into());
        }
        if !matches!(self.security_protocol.as_str(), "SASL_SSL" | "PLAINTEXT") {
            return Err(format!(
                "source.kafka.securityProtocol must be SASL_SSL or PLAINTEXT, got {:?}",
                self.security_protocol
            ));
        }
        if !(6..=300).contains(&self.session_timeout_seconds) {
            return Err("source.kafka.sessionTimeoutSeconds must be between 6 and 300".into());
        }
        if !(1..=10_000).contains(&self.max_batch) {
            return Err("source.kafka.maxBatch must be between 1 and 10000".into());
        }
        if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES).contains(&self.max_batch_bytes) {
            return Err(format!(
                "source.kafka.maxBatchBytes must be between {MIN_BATCH_BYTES} (1 MiB, the largest event) and {MAX_BATCH_BYTES} (1 GiB), got {}",
                self.max_batch_bytes
            ));
        }
        if !(10..=3600).contains(&self.max_poll_interval_seconds)
            || self.max_poll_interval_seconds < self.session_timeout_seconds
        {
            return Err("source.kafka.maxPollIntervalSeconds must be between 10 and 3600 and at least sessionTimeoutSeconds".into());
        }
        if !(1..=256).contains(&self.writers) {
            return Err("source.kafka.writers must be between 1 and 256".into());
        }
        Ok(())
    }
}

impl CosmosSink {
    /// The rules serde cannot express; errors name `sink.cosmos.<field>`.
    pub fn validate(&self) -> Result<(), String> {
        if url::Url::parse(&self.endpoint).is_err() {
            return Err(format!(
                "sink.cosmos.endpoint must be a URL, got {:?}",
                self.endpoint
            ));
        }
        if self.database.is_empty() || self.container.is_empty() {
            return Err("sink.cosmos.database and container must not be empty".into());
        }
        if !self.partition_key_path.starts_with('/') {
            return Err("sink.cosmos.partitionKeyPath must start with '/'".into());
        }
        Ok(())
    }
}

fn default_group() -> String {
    "$Default".to_owned()
}
fn default_protocol() -> String {
    "SASL_SSL".to_owned()
}
fn default_username() -> String {
    crate::cloud::azure::kafka::EVENT_HUBS_USERNAME.to_owned()
}
fn default_session_timeout() -> u32 {
    30
}
fn default_batch() -> usize {
    500
}
/// The smallest byte budget of a batch: one event of Event Hubs' largest size.
pub const MIN_BATCH_BYTES: u64 = 1024 * 1024;
/// The largest byte budget of a batch.
pub const MAX_BATCH_BYTES: u64 = 1024 * 1024 * 1024;
/// The byte budget of a batch when none is set: an eighth of the workers' default memory limit (256 Mi).
pub const DEFAULT_BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// The byte budget of a batch for a worker container limited to `memory_limit` bytes: an eighth of it,
/// within [`MIN_BATCH_BYTES`]..=[`MAX_BATCH_BYTES`]. With the client's prefetch (half a batch), the fetch
/// in flight (as much again) and the events being parsed and written (a quarter of a batch, JSON growing
/// up to about fourfold as values), the stream holds under half the limit; the rest is the process.
pub fn batch_bytes_for(memory_limit: Option<u64>) -> u64 {
    memory_limit.map_or(DEFAULT_BATCH_BYTES, |limit| {
        (limit / 8).clamp(MIN_BATCH_BYTES, MAX_BATCH_BYTES)
    })
}

fn default_batch_bytes() -> u64 {
    DEFAULT_BATCH_BYTES
}
fn default_poll_interval() -> u32 {
    300
}
fn default_writers() -> usize {
    32
}
fn default_region() -> String {
    "East US".to_owned()
}
fn default_partition_key() -> String {
    "/deviceId".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::worker::config::WorkerConfig;

    const DEVICE: &str = "consumer: {namespace: plant, name: devices}\nprocessor: device\nsource:\n  kafka: {bootstrapServers: 'ns.servicebus.windows.net:9093', topic: telemetry}\nsink:\n  cosmos: {endpoint: 'https://acct.documents.azure.com:443/', database: plant, container: readings}\n";

    #[test]
    fn a_minimal_device_file_gets_event_hubs_defaults() {
        let config: WorkerConfig = serde_yaml_ng::from_str(DEVICE).unwrap();
        config.validate().unwrap();
        let kafka = config.source.kafka.unwrap();
        assert_eq!(kafka.consumer_group, "$Default");
        assert_eq!(kafka.security_protocol, "SASL_SSL");
        assert_eq!(kafka.username, "$ConnectionString");
        assert_eq!(kafka.session_timeout_seconds, 30);
        assert_eq!(kafka.max_batch_bytes, 32 * 1024 * 1024);
        assert_eq!(kafka.max_poll_interval_seconds, 300);
        assert_eq!(config.sink.cosmos.unwrap().partition_key_path, "/deviceId");
    }

    #[test]
    fn the_batch_budget_is_an_eighth_of_the_memory_limit_within_bounds() {
        use super::*;
        assert_eq!(batch_bytes_for(None), DEFAULT_BATCH_BYTES);
        assert_eq!(batch_bytes_for(Some(256 * 1024 * 1024)), DEFAULT_BATCH_BYTES);
        assert_eq!(batch_bytes_for(Some(1024 * 1024 * 1024)), 128 * 1024 * 1024);
        assert_eq!(batch_bytes_for(Some(4 * 1024 * 1024)), MIN_BATCH_BYTES);
        assert_eq!(batch_bytes_for(Some(u64::MAX)), MAX_BATCH_BYTES);
    }

    #[test]
    fn device_rules_name_their_fields() {
        let cases = [
            (DEVICE.replace("processor: device", "processor: noop"), "processor device reads source.kafka"),
            (DEVICE.replace("sink:\n  cosmos: {endpoint: 'https://acct.documents.azure.com:443/', database: plant, container: readings}\n", ""), "sink.cosmos is required"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, securityProtocol: SSL}"), "source.kafka.securityProtocol"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, maxBatch: 0}"), "source.kafka.maxBatch"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, maxBatchBytes: 1000}"), "source.kafka.maxBatchBytes must be between 1048576"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, maxPollIntervalSeconds: 20}"), "source.kafka.maxPollIntervalSeconds"),
            (DEVICE.replace("container: readings}", "container: readings, partitionKeyPath: deviceId}"), "sink.cosmos.partitionKeyPath"),
            (format!("{DEVICE}deadLetter: {{queueUrl: 'http://127.0.0.1:1/acct/dlq'}}\n"), "deadLetter.storageAccount is required"),
        ];
        for (text, expected) in cases {
            let config: WorkerConfig = serde_yaml_ng::from_str(&text).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
