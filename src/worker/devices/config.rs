//! The device processor's part of `worker.yaml`: the Kafka source (an Event Hub through its Kafka
//! endpoint) and the Cosmos DB sink. Secrets are not here: the connection string is in
//! `KAFKA_SASL_PASSWORD`, the Cosmos DB account key in `AZURE_COSMOS_KEY`.

use serde::{Deserialize, Serialize};

/// Reading a Kafka topic in a consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    /// Cosmos DB writes in flight at once.
    #[serde(default = "default_writers")]
    pub writers: usize,
}

/// Upserting into a Cosmos DB (NoSQL) container, signed with the key in `AZURE_COSMOS_KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
        assert_eq!(config.sink.cosmos.unwrap().partition_key_path, "/deviceId");
    }

    #[test]
    fn device_rules_name_their_fields() {
        let cases = [
            (DEVICE.replace("processor: device", "processor: noop"), "processor device reads source.kafka"),
            (DEVICE.replace("sink:\n  cosmos: {endpoint: 'https://acct.documents.azure.com:443/', database: plant, container: readings}\n", ""), "sink.cosmos is required"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, securityProtocol: SSL}"), "source.kafka.securityProtocol"),
            (DEVICE.replace("topic: telemetry}", "topic: telemetry, maxBatch: 0}"), "source.kafka.maxBatch"),
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
