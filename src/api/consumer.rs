//! `Consumer`: worker pods that drain a source with a built-in processor or the user's own container.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, ObjectRef, SecretKeyRef};
pub use super::http_source::HttpSource;

/// A Deployment of worker pods reading one source (a Queue, a DeviceStream, or HTTP requests), processing
/// each message with a built-in processor or the user's own container (which gets each message as a
/// CloudEvent over HTTP from the worker beside it), and dead-lettering what fails.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Consumer",
    namespaced,
    status = "ConsumerStatus",
    shortname = "trcons",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Processor", type_ = "string", json_path = ".spec.processor"),
    printcolumn(
        name = "Container",
        type_ = "string",
        json_path = ".spec.container.image",
        priority = 1
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Backlog", type_ = "integer", json_path = ".status.backlog"),
    printcolumn(
        name = "Processed/min",
        type_ = "integer",
        json_path = ".status.throughput.processedPerMinute"
    ),
    printcolumn(
        name = "DeadLettered/min",
        type_ = "integer",
        json_path = ".status.throughput.deadLetteredPerMinute"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("has(self.processor) != has(self.container)").message("set exactly one of spec.processor (a built-in processor) and spec.container (your own processor, which gets each message over HTTP; spec.image was replaced by spec.container)"))]
#[x_kube(validation = Rule::new("!has(self.delivery) || has(self.container)").message("spec.delivery configures the delivery to spec.container: it needs spec.container"))]
#[x_kube(validation = Rule::new("!has(self.container) || !has(self.source.http)").message("spec.container cannot serve spec.source.http: the HTTP source is the order endpoint of processor order-ack; feed your container from a Queue or a DeviceStream"))]
#[x_kube(validation = Rule::new("!has(self.processor) || self.processor != 'order-ack' || has(self.source.http)").message("spec.processor order-ack serves the order REST endpoint: it needs spec.source.http"))]
#[x_kube(validation = Rule::new("!has(self.processor) || self.processor != 'device' || has(self.source.deviceStreamRef)").message("spec.processor device reads telemetry: it needs spec.source.deviceStreamRef"))]
#[x_kube(validation = Rule::new("!has(self.processor) || !(self.processor in ['notification', 'inventory', 'shipment']) || has(self.source.queueRef)").message("spec.processor notification, inventory and shipment drain a queue: they need spec.source.queueRef"))]
#[x_kube(validation = Rule::new("!has(self.processor) || self.processor != 'device' || (has(self.sink) && has(self.sink.cosmos))").message("spec.processor device writes Cosmos DB: it needs spec.sink.cosmos"))]
#[x_kube(validation = Rule::new("!has(self.processor) || self.processor != 'order-ack' || (has(self.sink) && has(self.sink.topicRef))").message("spec.processor order-ack publishes OrderPlaced: it needs spec.sink.topicRef"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    /// Where messages come from: exactly one of `queueRef`, `deviceStreamRef` and `http`.
    pub source: ConsumerSource,
    /// Built-in processor. Exactly one of `processor` and `container` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<Processor>,
    /// Your own processor: a container run beside Tributary's worker in each pod (a native sidecar), which
    /// gets each message as a CloudEvent in HTTP binary mode on `http://127.0.0.1:<port><path>` and answers
    /// 2xx (done), 4xx other than 408/429 (dead letter) or 408/429/5xx (retry; a 429 or 503 with
    /// `Retry-After` waits what it asks, at most `spec.retry.maxBackoffSeconds`). Exactly one of `processor`
    /// and `container` is set; not with `source.http`. Replaces `spec.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ProcessorContainer>,
    /// How the worker delivers to `container`: timeout, concurrency, the `ce-type` attribute. Only with
    /// `container`; defaults apply when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    /// Where processed results go (the Order table and topic for order-ack, Cosmos DB for device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<ConsumerSink>,
    /// Retries of a failing message before it is dead-lettered.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// DeadLetter receiving messages that cannot be processed (malformed, or out of retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_ref: Option<ObjectRef>,
    /// Replica bounds and the backlog each replica should handle.
    #[serde(default)]
    pub scaling: Scaling,
    /// Requests and limits of the worker container, as in a Pod. Unset: requests `cpu: 50m`,
    /// `memory: 64Mi`, limits `memory: 256Mi`; set, it replaces that default whole. The device processor
    /// sizes its batches from the memory limit (an eighth of it, at least 1 MiB; 32 MiB without a limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

/// The built-in processors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Processor {
    /// Validates POSTed orders, records them in the Order table and publishes `OrderPlaced`.
    OrderAck,
    /// Records customer notifications for order events.
    Notification,
    /// Reserves stock for placed orders.
    Inventory,
    /// Creates shipments with tracking ids and advances the order's state.
    Shipment,
    /// Validates and enriches device telemetry and writes it to Cosmos DB.
    Device,
}

/// The worker's own ports in a pod, which `spec.container.port` may not take: metrics and probes.
pub const WORKER_PORTS: [i32; 1] = [9090];

/// The user's processor container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorContainer {
    /// Image of the container, e.g. `registry.example.com/shop/audit:1.0` (1 to 512 characters). The
    /// namespace's TenantPolicy `images` must allow it.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Arguments of the image's entrypoint (at most 64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub args: Vec<String>,
    /// Environment variables (at most 64), each a literal `value` or a `secretKeyRef` to a key of a Secret
    /// in this namespace. `PORT` is set to `port` unless listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub env: Vec<ContainerEnv>,
    /// Requests and limits of this container, as in a Pod. Unset: none (the namespace's defaults apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// Port the container listens on, on the pod's loopback: 1 to 65535, not 9090 (the worker's metrics
    /// and probes). Default 8080.
    #[serde(default = "default_container_port")]
    #[schemars(range(min = 1, max = 65535))]
    #[x_kube(validation = Rule::new("self != 9090").message("spec.container.port 9090 is the worker's metrics and probe port: choose another"))]
    pub port: i32,
    /// Path messages are POSTed to: starts with `/`, at most 256 characters. Default `/`.
    #[serde(default = "default_container_path")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.container.path must start with '/'"))]
    pub path: String,
    /// Path of the container's readiness probe, an HTTP GET on `port`: the pod is ready only when it
    /// answers 2xx. Starts with `/`, at most 256 characters. Default `/healthz`.
    #[serde(default = "default_readiness_path")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.container.readinessPath must start with '/'"))]
    pub readiness_path: String,
}

fn default_container_port() -> i32 {
    8080
}
fn default_container_path() -> String {
    "/".to_owned()
}
fn default_readiness_path() -> String {
    "/healthz".to_owned()
}

/// An environment variable of the user's container: a literal value or a Secret's key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.secretKeyRef)").message("spec.container.env: set exactly one of value and secretKeyRef"))]
#[serde(rename_all = "camelCase")]
pub struct ContainerEnv {
    /// Name of the variable: a letter, `_`, `-` or `.` first, then letters, digits, `_`, `-`, `.` (1 to
    /// 256 characters, as Kubernetes validates it).
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"))]
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A key of a Secret in this namespace (the pod does not start while it is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// Delivery of each message to the user's container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Seconds one request may take before it counts as failed and the message is retried (1 to 900).
    /// Default 30.
    #[serde(default = "default_delivery_timeout")]
    #[schemars(range(min = 1, max = 900))]
    pub timeout_seconds: i32,
    /// Deliveries in flight at once per pod (1 to 1000). Default 8.
    #[serde(default = "default_delivery_concurrency")]
    #[schemars(range(min = 1, max = 1000))]
    pub concurrency: i32,
    /// Message attribute whose value becomes the CloudEvent's `ce-type` (1 to 256 characters); a message
    /// without it gets `dev.tributary.message`. Default `type`.
    #[serde(default = "default_type_attribute")]
    #[schemars(length(min = 1, max = 256))]
    pub type_attribute: String,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            timeout_seconds: default_delivery_timeout(),
            concurrency: default_delivery_concurrency(),
            type_attribute: default_type_attribute(),
        }
    }
}

fn default_delivery_timeout() -> i32 {
    30
}
fn default_delivery_concurrency() -> i32 {
    8
}
fn default_type_attribute() -> String {
    "type".to_owned()
}

/// Source of a Consumer's messages.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("[has(self.queueRef), has(self.deviceStreamRef), has(self.http)].filter(x, x).size() == 1").message("spec.source must set exactly one of queueRef, deviceStreamRef and http"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSource {
    /// Drain this Queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_ref: Option<ObjectRef>,
    /// Read this DeviceStream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_stream_ref: Option<DeviceStreamSource>,
    /// Serve HTTP requests (the order REST endpoint) through a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
}

/// Reading a DeviceStream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStreamSource {
    /// Name of the DeviceStream, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Consumer group to read in: `$Default`, or a group the DeviceStream lists in
    /// `spec.azure.consumerGroups` (checked against the DeviceStream by the webhook and the controller), so
    /// 1 to 50 letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit
    /// (Azure naming rules, Microsoft.EventHub/namespaces/eventhubs/consumergroups). Default `$Default`.
    #[serde(default = "default_consumer_group")]
    #[schemars(
        length(min = 1, max = 50),
        regex(pattern = r"^(\$Default|[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)$")
    )]
    pub consumer_group: String,
}

fn default_consumer_group() -> String {
    "$Default".to_owned()
}

/// Where results go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSink {
    /// Topic that events are published to (order-ack publishes `OrderPlaced` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_ref: Option<ObjectRef>,
    /// DynamoDB table holding orders, notifications, stock and shipments: 3 to 255 letters, digits,
    /// underscores, hyphens and periods (DynamoDB CreateTable `TableName`). Defaults to `<namespace>-orders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub table: Option<String>,
    /// Cosmos DB container that device events are upserted into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosmos: Option<CosmosSink>,
}

/// A Cosmos DB (NoSQL) container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosmosSink {
    /// Account endpoint, e.g. `https://myaccount.documents.azure.com:443/`: an https:// URL. On
    /// `documents.azure.com` the account name is 3 to 44 lowercase letters, digits and hyphens, starting and
    /// ending with a letter or digit (Azure naming rules, Microsoft.DocumentDB/databaseAccounts); other
    /// hosts (an emulator) are taken as they are.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message("spec.sink.cosmos.endpoint must be an https:// URL"))]
    #[x_kube(validation = Rule::new(r#"!self.matches('^https://[^/:]*\\.documents\\.azure\\.com([:/].*)?$') || self.matches('^https://[a-z0-9][a-z0-9-]{1,42}[a-z0-9]\\.documents\\.azure\\.com([:/].*)?$')"#).message("spec.sink.cosmos.endpoint: a Cosmos DB account name is 3 to 44 lowercase letters, digits and hyphens, starting and ending with a letter or digit"))]
    pub endpoint: String,
    /// Secret key holding the account key. Required for now: workers write Cosmos DB with the account
    /// key (a Consumer without it is refused with `InvalidSpec`; Azure identities are not used for it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// Database id: 1 to 255 characters, none of `/ \ ? #` (Cosmos DB service limits,
    /// learn.microsoft.com/azure/cosmos-db/concepts-limits; the id is a segment of the resource URI).
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^/\\?#]+$"))]
    pub database: String,
    /// Container id: 1 to 255 characters, none of `/ \ ? #` (Cosmos DB service limits).
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^/\\?#]+$"))]
    pub container: String,
    /// Partition key path of the container, e.g. `/deviceId`: starts with `/` (Cosmos DB partition key
    /// paths are JSON paths from the document root), 2 to 256 characters. Default `/deviceId`.
    #[serde(default = "default_partition_key")]
    #[schemars(length(min = 2, max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.sink.cosmos.partitionKeyPath must start with '/'"))]
    pub partition_key_path: String,
    /// Create the database and container if they do not exist.
    #[serde(default)]
    pub create_if_missing: bool,
}

fn default_partition_key() -> String {
    "/deviceId".to_owned()
}

/// Retries with exponential backoff.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.initialBackoffSeconds <= self.maxBackoffSeconds").message("spec.retry.initialBackoffSeconds must not exceed spec.retry.maxBackoffSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts before a failing message is dead-lettered (1 to 1000). Default 5.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_attempts: i32,
    /// Delay before the first retry, in seconds (1 to 43200). Doubles each attempt. Default 1.
    #[serde(default = "default_initial_backoff")]
    #[schemars(range(min = 1, max = 43200))]
    pub initial_backoff_seconds: i32,
    /// Longest delay between retries, in seconds (1 to 43200), also the most a container's `Retry-After`
    /// can ask for. Default 300.
    #[serde(default = "default_max_backoff")]
    #[schemars(range(min = 1, max = 43200))]
    pub max_backoff_seconds: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            initial_backoff_seconds: default_initial_backoff(),
            max_backoff_seconds: default_max_backoff(),
        }
    }
}

fn default_attempts() -> i32 {
    5
}
fn default_initial_backoff() -> i32 {
    1
}
fn default_max_backoff() -> i32 {
    300
}

/// Replica bounds and the backlog target between them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("spec.scaling.minReplicas must not exceed spec.scaling.maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    /// Fewest replicas (0 to 100). Default 1.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: i32,
    /// Most replicas (1 to 100); a DeviceStream consumer is also capped at the partition count. Default 5.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Backlog (queue depth or consumer lag) one replica should handle. Default 100.
    #[serde(default = "default_target_backlog")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub target_backlog_per_replica: i32,
    /// Seconds the backlog must have asked for fewer replicas before they are removed (0 to 3600), so a
    /// backlog that dips between bursts does not make replicas come and go. Scaling up is immediate.
    /// Default 60.
    #[serde(default = "default_stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
    /// Spike filter and age signal (issue 23): flattened so the fields sit beside the ones above.
    #[serde(flatten)]
    pub signals: ScalingSignals,
}

/// What scaling looks at besides the message count, and how long an ask must last before it is followed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingSignals {
    /// Consecutive observations (one per scaling interval, 15 s by default) that must all ask for more
    /// replicas before replicas are added (1 to 20); the count added is the least of those asks, so a
    /// backlog that spikes for one observation adds none. 1 follows every observation. Default 2. Going
    /// from zero to one replica, or up to `minReplicas`, is never delayed.
    #[serde(default = "default_scale_up_observations")]
    #[schemars(range(min = 1, max = 20))]
    pub scale_up_observations: i32,
    /// Age in seconds of the oldest message above which one replica is added per decision even when the
    /// count is under target (1 to 1209600), up to `maxReplicas`. Only where the cloud reports that age
    /// (Azure Storage Queues; SQS does not, see docs/kinds/consumer.md). Unset: the age is not a signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_209_600))]
    pub max_oldest_message_age_seconds: Option<i32>,
}

impl Default for ScalingSignals {
    fn default() -> Self {
        Self {
            scale_up_observations: default_scale_up_observations(),
            max_oldest_message_age_seconds: None,
        }
    }
}

fn default_scale_up_observations() -> i32 {
    2
}

impl Default for Scaling {
    fn default() -> Self {
        Self {
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_backlog_per_replica: default_target_backlog(),
            scale_down_stabilization_seconds: default_stabilization(),
            signals: ScalingSignals::default(),
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    5
}
fn default_target_backlog() -> i32 {
    100
}
fn default_stabilization() -> i32 {
    60
}

/// Observed state of a Consumer. Message counts come from the workers' `/metrics`
/// (`tributary_worker_messages_*_total`), read by the controller at a bounded rate into `throughput`:
/// a count written per message would rewrite the object for every message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Replicas the Deployment currently runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Messages waiting (queue depth or consumer lag) at the last observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<i64>,
    /// The last change of the replica count, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleDecision>,
    /// Message rates and totals read from the workers' metrics; absent until first read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
}

/// Message counts of a Consumer's workers, read by the controller from each worker pod's `/metrics` at
/// most once per scrape interval (`--throughput-interval-seconds`, default 60) and written only when
/// they changed. The rates are absent until two reads make a window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    /// Messages processed per minute over the last observation window (the previous read to
    /// `observedTime`), counted by the pods read at both ends or started within it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_per_minute: Option<i64>,
    /// Failed processing attempts (retried later, or dead-lettered) per minute over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_per_minute: Option<i64>,
    /// Messages dead-lettered per minute over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered_per_minute: Option<i64>,
    /// Messages processed, summed over the pods read (each pod counts from its start).
    pub processed: i64,
    /// Failed processing attempts, summed over the pods read.
    pub failed: i64,
    /// Messages dead-lettered, summed over the pods read.
    pub dead_lettered: i64,
    /// Pods whose metrics were read.
    pub pods: i32,
    /// When the metrics were read (RFC 3339).
    pub observed_time: String,
}

/// A change of a Consumer's replica count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecision {
    /// Replicas before.
    pub from: i32,
    /// Replicas after.
    pub to: i32,
    /// Why, e.g. `backlog 420 / 100 per replica`.
    pub reason: String,
    /// When (RFC 3339).
    pub time: String,
}
