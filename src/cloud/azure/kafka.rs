//! The Event Hubs Kafka endpoint through `rdkafka`: the client settings Event Hubs asks for (SASL_SSL with
//! PLAIN, user `$ConnectionString`, the connection string as password, long request timeouts), and a
//! consumer group's lag, which the Consumer reconciler scales on. The controller's Kafka calls (the lag,
//! and the redrive's producers) check the leader [`Fence`] before every broker request, as its other cloud
//! calls do: a replica that lost its lease sends nothing more, whichever task runs first.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

use crate::{
    cloud::{Error, ErrorKind, Operation, Result},
    operate::Fence,
};

const KAFKA: &str = "kafka";

/// The SASL PLAIN user of the Event Hubs Kafka endpoint; the password is the connection string.
pub const EVENT_HUBS_USERNAME: &str = "$ConnectionString";

/// The attributes of an event's dead letter (a Storage Queue message): what a redrive needs to send the
/// event back to its stream as it was read.
pub mod dead_letter {
    /// The record's key.
    pub const KEY: &str = "kafka-key";
    /// Where it was read: `<topic>/<partition>/<offset>`.
    pub const POSITION: &str = "kafka-position";
    /// `base64` when the event is not UTF-8 (the body is then its base64).
    pub const ENCODING: &str = "tributary-body-encoding";
    /// The event's size when the body holds only its start (it was larger than a queue message).
    pub const TRUNCATED_FROM: &str = "tributary-body-truncated-from";
    /// Every attribute above: the others are the record's headers.
    pub const ALL: [&str; 4] = [KEY, POSITION, ENCODING, TRUNCATED_FROM];
}

/// How to reach a Kafka endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaEndpoint {
    /// `host:port` list.
    pub bootstrap_servers: String,
    /// `SASL_SSL` or `PLAINTEXT`.
    pub security_protocol: String,
    /// SASL PLAIN user (`$ConnectionString` on Event Hubs).
    pub username: String,
    /// SASL PLAIN password (the connection string on Event Hubs).
    pub password: String,
    /// CA bundle, when not the system's.
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for KafkaEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaEndpoint")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("security_protocol", &self.security_protocol)
            .finish_non_exhaustive()
    }
}

impl KafkaEndpoint {
    /// Client settings for this endpoint. Event Hubs documents a 60 s request timeout; compression is
    /// left off (Event Hubs' Kafka surface does not take it on every tier).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", &self.security_protocol)
            .set("request.timeout.ms", "60000")
            .set("socket.keepalive.enable", "true")
            // librdkafka reconnects to an unreachable broker after 100 ms by default, doubling to 10 s
            // per broker connection; starting at 500 ms keeps an outage's first seconds from turning into
            // several connection attempts a second per client (measured by the Kafka outage test,
            // tests/it/faults_outage.rs), and costs at most half a second after the broker is back.
            .set("reconnect.backoff.ms", "500")
            .set("reconnect.backoff.max.ms", "10000");
        if self.security_protocol == "SASL_SSL" {
            config
                .set("sasl.mechanisms", "PLAIN")
                .set("sasl.username", &self.username)
                .set("sasl.password", &self.password);
            if let Some(ca) = &self.ca_file {
                config.set("ssl.ca.location", ca);
            }
        }
        config
    }
}

/// How far a consumer group is behind on a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lag {
    /// Partitions of the topic.
    pub partitions: i32,
    /// Events not yet committed by the group, over every partition.
    pub total: i64,
}

/// The lag of `group` on `topic`: per partition, the high watermark less the committed offset (the low
/// watermark where nothing is committed yet, as `auto.offset.reset=earliest` reads from there). Blocking
/// calls: run it off the async threads.
pub fn lag(endpoint: &KafkaEndpoint, topic: &str, group: &str, timeout: Duration) -> Result<Lag> {
    fenced_lag(endpoint, topic, group, timeout, &Fence::open())
}

/// [`lag`], each broker request refused while `fence` is closed (the controller's).
pub fn fenced_lag(
    endpoint: &KafkaEndpoint,
    topic: &str,
    group: &str,
    timeout: Duration,
    fence: &Fence,
) -> Result<Lag> {
    let operation = |name| Operation::new(KAFKA, name, format!("{topic} in group {group}"));
    let fenced = |name| fenced(fence, || operation(name));
    let kafka = |name, e: rdkafka::error::KafkaError| Error::Service {
        operation: operation(name),
        kind: kind(&e),
        code: e
            .rdkafka_error_code()
            .map(|c| format!("{c:?}"))
            .unwrap_or_default(),
        message: e.to_string(),
        status: None,
    };
    let consumer: BaseConsumer = endpoint
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| kafka("CreateClient", e))?;
    fenced("Metadata")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kafka("Metadata", e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Error::Service {
            operation: operation("Metadata"),
            kind: ErrorKind::NotFound,
            code: "UnknownTopic".into(),
            message: format!("the topic {topic} does not exist"),
            status: None,
        });
    };
    if let Some(e) = found.error() {
        return Err(Error::Service {
            operation: operation("Metadata"),
            kind: ErrorKind::NotFound,
            code: format!("{e:?}"),
            message: format!("the topic {topic} is not available"),
            status: None,
        });
    }
    let mut wanted = TopicPartitionList::new();
    for partition in found.partitions() {
        wanted.add_partition(topic, partition.id());
    }
    fenced("OffsetFetch")?;
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(|e| kafka("OffsetFetch", e))?;
    let mut total = 0;
    for element in committed.elements() {
        fenced("ListOffsets")?;
        let (low, high) = consumer
            .fetch_watermarks(topic, element.partition(), timeout)
            .map_err(|e| kafka("ListOffsets", e))?;
        let done = match element.offset() {
            Offset::Offset(o) => o.max(low),
            _ => low,
        };
        total += (high - done).max(0);
    }
    Ok(Lag {
        partitions: i32::try_from(found.partitions().len()).unwrap_or(i32::MAX),
        total,
    })
}

/// `Ok` while `fence` is open; else the refusal of `operation`, unsent, as unreachable (transient: the
/// reconcile backs off, and the process exits on the loss anyway).
pub(super) fn fenced(fence: &Fence, operation: impl FnOnce() -> Operation) -> Result<()> {
    fence.check().map_err(|refused| Error::Unreachable {
        operation: operation(),
        detail: refused.to_string(),
    })
}

/// The Kafka admin calls of the controller: a consumer group's lag, read off the async threads, and the
/// redrive's producers; all refused while the fence is closed.
#[derive(Clone, Debug)]
pub struct KafkaAdmin {
    /// The bound of each broker request.
    pub(super) timeout: Duration,
    /// Checked before every broker request; open unless [`KafkaAdmin::with_fence`] set one.
    pub(super) fence: Fence,
}

impl Default for KafkaAdmin {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            fence: Fence::open(),
        }
    }
}

impl KafkaAdmin {
    /// These calls, each broker request refused (unsent, as unreachable) while `fence` is closed.
    pub fn with_fence(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }
}

/// Authentication and authorisation failures are permanent (the Secret is wrong); the rest may pass.
fn kind(error: &rdkafka::error::KafkaError) -> ErrorKind {
    use rdkafka::types::RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(
            Code::Authentication
            | Code::SaslAuthenticationFailed
            | Code::TopicAuthorizationFailed
            | Code::GroupAuthorizationFailed,
        ) => ErrorKind::Permanent,
        _ => ErrorKind::Transient,
    }
}
