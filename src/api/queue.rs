//! `Queue`: an SQS queue or an Azure Storage Queue that Subscriptions deliver to and Consumers drain.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Lifecycle, ObjectRef, Provider, QueueObservation, StorageQueueLocation};

/// A message queue. On `aws` it is an SQS queue, on `azure` a Storage Queue.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Queue",
    namespaced,
    status = "QueueStatus",
    shortname = "trqueue",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Depth", type_ = "integer", json_path = ".status.depth"),
    printcolumn(
        name = "Oldest",
        type_ = "integer",
        json_path = ".status.oldestMessageAgeSeconds",
        priority = 1
    ),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.provider == 'aws' ? (has(self.aws) && !has(self.azure)) : (has(self.azure) && !has(self.aws))").message("exactly one provider block must be set and it must match spec.provider: spec.aws for aws, spec.azure for azure"))]
#[x_kube(validation = Rule::new("!has(self.aws) || !has(oldSelf.aws) || self.aws.fifo == oldSelf.aws.fifo").message("spec.aws.fifo is immutable: SQS cannot change a queue's type; create a new Queue"))]
#[x_kube(validation = Rule::new("!has(oldSelf.aws) || !has(oldSelf.aws.name) || (has(self.aws) && has(self.aws.name) && self.aws.name == oldSelf.aws.name)").message("spec.aws.name is immutable: it names the SQS queue"))]
#[x_kube(validation = Rule::new("!has(oldSelf.azure) || !has(oldSelf.azure.name) || (has(self.azure) && has(self.azure.name) && self.azure.name == oldSelf.azure.name)").message("spec.azure.name is immutable: it names the Storage Queue"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || !has(self.tags) || self.tags.all(k, size(k) <= 128 && !k.startsWith('aws:'))").message("spec.tags: SQS tag keys are 1 to 128 characters and may not start with 'aws:'"))]
#[x_kube(validation = Rule::new(r#"self.provider != 'aws' || !has(self.tags) || self.tags.all(k, k.matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+$') && self.tags[k].matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$'))"#).message("spec.tags: SQS tag keys and values may hold only Unicode letters, digits, spaces and _ . : / = + - @"))]
#[x_kube(validation = Rule::new(r#"self.provider != 'azure' || !has(self.tags) || self.tags.all(k, !k.matches('[<>%&\\\\?/]'))"#).message("spec.tags: Azure tag names may not contain < > % & \\ ? /"))]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    /// Cloud provider: `aws` (SQS) or `azure` (Storage Queue). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.provider is immutable"))]
    pub provider: Provider,
    /// SQS settings; required when `provider` is `aws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<QueueAws>,
    /// Storage Queue settings; required when `provider` is `azure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<QueueAzure>,
    /// Where messages go after failing `maxReceiveCount` times: a DeadLetter of the same provider, FIFO
    /// exactly when this queue is FIFO (SQS: a FIFO queue's dead-letter queue must be FIFO, a standard
    /// queue's standard:
    /// docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html), and
    /// on azure in the same storage account (the workers dead-letter with the queue's key). Checked against
    /// the DeadLetter by the webhook, and by the controller (`InvalidSpec`) without it; a DeadLetter that
    /// does not exist yet is accepted and waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterTarget>,
    /// Deletion policy, adoption and tags.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

/// Dead-letter wiring of a Queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterTarget {
    /// The DeadLetter object receiving messages that keep failing.
    #[serde(rename = "ref")]
    pub target: ObjectRef,
    /// Receives before a message moves to the dead letter: 1 to 1000 (SQS `RedrivePolicy`
    /// `maxReceiveCount`, SetQueueAttributes). Default 5.
    #[serde(default = "default_max_receive_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_receive_count: i32,
}

fn default_max_receive_count() -> i32 {
    5
}

/// SQS queue settings. Ranges are SQS's own (CreateQueue / SetQueueAttributes:
/// docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.name) || (self.fifo == self.name.endsWith('.fifo'))").message("spec.aws.name must end with '.fifo' exactly when spec.aws.fifo is true"))]
#[x_kube(validation = Rule::new("!self.contentBasedDeduplication || self.fifo").message("spec.aws.contentBasedDeduplication requires spec.aws.fifo"))]
#[serde(rename_all = "camelCase")]
pub struct QueueAws {
    /// SQS queue name: 1 to 80 alphanumeric characters, hyphens and underscores, and for a FIFO queue the
    /// `.fifo` suffix (counted in the 80), which only a FIFO queue may have (SQS CreateQueue:
    /// docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html). Defaults to
    /// `<namespace>_<name>` (with `.fifo` for FIFO queues; a name recorded in status is kept). Set it to
    /// adopt an existing queue. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80), regex(pattern = r"^[A-Za-z0-9_-]+(\.fifo)?$"))]
    pub name: Option<String>,
    /// FIFO queue: exactly-once processing in order per message group. Immutable (SQS cannot change a
    /// queue's type). Default false.
    #[serde(default)]
    pub fifo: bool,
    /// For FIFO queues only (SQS `ContentBasedDeduplication` is a FIFO attribute): deduplicate by a hash of
    /// the body instead of an explicit deduplication id. Default false.
    #[serde(default)]
    pub content_based_deduplication: bool,
    /// Seconds a received message stays hidden from other receivers (0 to 43200). Default 30.
    #[serde(default = "default_visibility")]
    #[schemars(range(min = 0, max = 43200))]
    pub visibility_timeout_seconds: i32,
    /// Seconds SQS keeps a message (60 to 1209600, i.e. 1 minute to 14 days). Default 345600 (4 days).
    #[serde(default = "default_retention")]
    #[schemars(range(min = 60, max = 1_209_600))]
    pub message_retention_seconds: i32,
    /// Seconds every new message is delayed before it can be received (0 to 900). Default 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 900))]
    pub delay_seconds: i32,
    /// Long-polling wait of ReceiveMessage in seconds (0 to 20). Default 20.
    #[serde(default = "default_receive_wait")]
    #[schemars(range(min = 0, max = 20))]
    pub receive_wait_time_seconds: i32,
    /// Largest message accepted, in bytes (1024 to 1048576: SQS raised the maximum to 1 MiB in 2025).
    /// Default 262144.
    #[serde(default = "default_max_message_size")]
    #[schemars(range(min = 1024, max = 1_048_576))]
    pub maximum_message_size_bytes: i32,
    /// KMS key (id, alias or ARN, at most 2048 characters as KMS's `KeyId`) for server-side encryption
    /// (SQS `KmsMasterKeyId`); unset means SQS-managed encryption (SSE-SQS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_master_key_id: Option<String>,
}

fn default_visibility() -> i32 {
    30
}
fn default_retention() -> i32 {
    345_600
}
fn default_receive_wait() -> i32 {
    20
}
fn default_max_message_size() -> i32 {
    262_144
}

/// Azure Storage Queue settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("self.messageTtlSeconds == -1 || self.visibilityTimeoutSeconds < self.messageTtlSeconds").message("spec.azure.visibilityTimeoutSeconds must be less than spec.azure.messageTtlSeconds: Azure Storage refuses a visibility timeout later than the message's expiry (Put Message)"))]
#[serde(rename_all = "camelCase")]
pub struct QueueAzure {
    /// Storage account, queue name and account key.
    #[serde(flatten)]
    pub location: StorageQueueLocation,
    /// Time to live of each message in seconds: -1 (never expire) or at least 1 (Storage Put Message
    /// `messagettl`: learn.microsoft.com/rest/api/storageservices/put-message). Default 604800 (7 days).
    #[serde(default = "default_azure_ttl")]
    #[x_kube(validation = Rule::new("self == -1 || self >= 1").message("spec.azure.messageTtlSeconds must be -1 (never expire) or at least 1"))]
    pub message_ttl_seconds: i64,
    /// Seconds a received message stays hidden: 0 to 604800 (7 days), and less than `messageTtlSeconds`
    /// unless that is -1 (Storage Put Message / Get Messages `visibilitytimeout`). Default 30.
    #[serde(default = "default_visibility")]
    #[schemars(range(min = 0, max = 604_800))]
    pub visibility_timeout_seconds: i32,
}

fn default_azure_ttl() -> i64 {
    604_800
}

/// Observed state of a Queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// URL, ARN, depth and oldest message age.
    #[serde(flatten)]
    pub observed: QueueObservation,
    /// ARNs of the SNS topics that the queue's policy, as last read back from SQS, lets send to this
    /// queue (AWS only). A Subscription to this Queue is Ready only once its Topic is listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_topics: Vec<String>,
}
