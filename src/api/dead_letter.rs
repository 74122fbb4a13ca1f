//! `DeadLetter`: where messages that keep failing end up, and the declarative way to move them back.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Lifecycle, ObjectRef, Provider, QueueObservation, StorageQueueLocation};

/// A dead-letter queue: an SQS queue on `aws`, a Storage Queue on `azure` (where Tributary's workers do the
/// dead-lettering themselves, since Azure queues have none).
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "DeadLetter",
    namespaced,
    status = "DeadLetterStatus",
    shortname = "trdlq",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Depth", type_ = "integer", json_path = ".status.depth"),
    printcolumn(name = "Redrive", type_ = "string", json_path = ".status.lastRedrive.state"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.provider == 'aws' ? (has(self.aws) && !has(self.azure)) : (has(self.azure) && !has(self.aws))").message("exactly one provider block must be set and it must match spec.provider: spec.aws for aws, spec.azure for azure"))]
#[x_kube(validation = Rule::new("!has(self.aws) || !has(oldSelf.aws) || self.aws.fifo == oldSelf.aws.fifo").message("spec.aws.fifo is immutable: SQS cannot change a queue's type; create a new DeadLetter"))]
#[x_kube(validation = Rule::new("!has(oldSelf.aws) || !has(oldSelf.aws.name) || (has(self.aws) && has(self.aws.name) && self.aws.name == oldSelf.aws.name)").message("spec.aws.name is immutable: it names the SQS queue"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || !has(self.tags) || self.tags.all(k, size(k) <= 128 && !k.startsWith('aws:'))").message("spec.tags: SQS tag keys are 1 to 128 characters and may not start with 'aws:'"))]
#[x_kube(validation = Rule::new(r#"self.provider != 'aws' || !has(self.tags) || self.tags.all(k, k.matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+$') && self.tags[k].matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$'))"#).message("spec.tags: SQS tag keys and values may hold only Unicode letters, digits, spaces and _ . : / = + - @"))]
#[x_kube(validation = Rule::new(r#"self.provider != 'azure' || !has(self.tags) || self.tags.all(k, !k.matches('[<>%&\\\\?/]'))"#).message("spec.tags: Azure tag names may not contain < > % & \\ ? /"))]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    /// Cloud provider: `aws` (SQS) or `azure` (Storage Queue). Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.provider is immutable"))]
    pub provider: Provider,
    /// SQS settings; required when `provider` is `aws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<DeadLetterAws>,
    /// Storage Queue settings; required when `provider` is `azure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<StorageQueueLocation>,
    /// Move the messages back to the queues they came from. A new `id` starts a new redrive; the result is
    /// in `status.lastRedrive`. Remove the block (or keep the same id) to do nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive: Option<Redrive>,
    /// Deletion policy, adoption and tags.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

/// SQS dead-letter queue settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.name) || (self.fifo == self.name.endsWith('.fifo'))").message("spec.aws.name must end with '.fifo' exactly when spec.aws.fifo is true"))]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterAws {
    /// SQS queue name: 1 to 80 alphanumeric characters, hyphens and underscores, and for a FIFO dead letter
    /// the `.fifo` suffix (counted in the 80), which only a FIFO queue may have (SQS CreateQueue). Defaults
    /// to `<namespace>_<name>` (with `.fifo` for FIFO; a name recorded in status is kept). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80), regex(pattern = r"^[A-Za-z0-9_-]+(\.fifo)?$"))]
    pub name: Option<String>,
    /// FIFO dead letter, for FIFO source queues (SQS requires a dead letter of the source queue's type;
    /// the webhook and the controller check each Queue that references this one). Immutable. Default false.
    #[serde(default)]
    pub fifo: bool,
    /// Seconds SQS keeps a dead message: 60 to 1209600 (SQS `MessageRetentionPeriod`). Default 1209600
    /// (14 days). For standard queues SQS recommends more than the source queue's retention, because the
    /// original enqueue time is kept (a recommendation, so not refused).
    #[serde(default = "default_dlq_retention")]
    #[schemars(range(min = 60, max = 1_209_600))]
    pub message_retention_seconds: i32,
}

fn default_dlq_retention() -> i32 {
    1_209_600
}

/// A request to move dead messages back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redrive {
    /// Identifies this redrive request; change it to start another one.
    #[schemars(length(min = 1, max = 63))]
    pub id: String,
    /// Throttle: messages moved per second, 1 to 500 (SQS StartMessageMoveTask
    /// `MaxNumberOfMessagesPerSecond`:
    /// docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html).
    /// Default 10.
    #[serde(default = "default_redrive_rate")]
    #[schemars(range(min = 1, max = 500))]
    pub max_messages_per_second: i32,
    /// Send the messages to this Queue instead of the queues they came from. It must be on this
    /// DeadLetter's provider (a redrive moves messages within one cloud); checked against the Queue by the
    /// webhook and the controller. A Queue that does not exist yet is accepted and waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_ref: Option<ObjectRef>,
}

fn default_redrive_rate() -> i32 {
    10
}

/// Observed state of a DeadLetter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// URL, ARN, depth and oldest message age.
    #[serde(flatten)]
    pub observed: QueueObservation,
    /// Outcome of the most recent redrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_redrive: Option<RedriveResult>,
}

/// Outcome of a redrive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedriveResult {
    /// The `spec.redrive.id` this result belongs to.
    pub id: String,
    /// `Running`, `Completed`, `Failed` or `Cancelled`.
    pub state: String,
    /// Messages moved so far.
    #[serde(default)]
    pub moved: i64,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
