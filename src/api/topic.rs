//! `Topic`: an SNS topic that publishers send events to and Subscriptions fan out from.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Lifecycle, Provider};

/// A publish/subscribe topic. On `aws` it is an SNS topic.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "trtopic",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "ARN", type_ = "string", json_path = ".status.arn"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.provider == 'aws'").message("spec.provider: a Topic is an SNS topic, so only 'aws' is supported"))]
#[x_kube(validation = Rule::new("self.provider != 'aws' || has(self.aws)").message("spec.aws is required when spec.provider is aws"))]
#[x_kube(validation = Rule::new("!has(self.aws) || !has(oldSelf.aws) || self.aws.fifo == oldSelf.aws.fifo").message("spec.aws.fifo is immutable: SNS cannot change a topic's type; create a new Topic"))]
#[x_kube(validation = Rule::new("!has(oldSelf.aws) || !has(oldSelf.aws.name) || (has(self.aws) && has(self.aws.name) && self.aws.name == oldSelf.aws.name)").message("spec.aws.name is immutable: it names the SNS topic"))]
#[x_kube(validation = Rule::new("!has(self.tags) || self.tags.all(k, size(k) <= 128 && !k.startsWith('aws:'))").message("spec.tags: SNS tag keys are 1 to 128 characters and may not start with 'aws:'"))]
#[x_kube(validation = Rule::new(r#"!has(self.tags) || self.tags.all(k, k.matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+$') && self.tags[k].matches('^[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*$'))"#).message("spec.tags: SNS tag keys and values may hold only Unicode letters, digits, spaces and _ . : / = + - @"))]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Cloud provider backing the topic. Only `aws` (SNS) is supported. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.provider is immutable"))]
    pub provider: Provider,
    /// SNS settings; required when `provider` is `aws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<TopicAws>,
    /// Deletion policy, adoption and tags.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

/// SNS topic settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.name) || (self.fifo == self.name.endsWith('.fifo'))").message("spec.aws.name must end with '.fifo' exactly when spec.aws.fifo is true"))]
#[x_kube(validation = Rule::new("!self.contentBasedDeduplication || self.fifo").message("spec.aws.contentBasedDeduplication requires spec.aws.fifo"))]
#[serde(rename_all = "camelCase")]
pub struct TopicAws {
    /// SNS topic name: 1 to 256 ASCII letters, digits, underscores and hyphens, and for a FIFO topic the
    /// `.fifo` suffix (counted in the 256), which only a FIFO topic may have (SNS CreateTopic:
    /// docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html). Defaults to `<namespace>_<name>` (with
    /// `.fifo` for FIFO topics; a name recorded in status is kept). Set it to adopt an existing topic.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9_-]+(\.fifo)?$"))]
    pub name: Option<String>,
    /// FIFO topic: strict ordering and deduplication. FIFO and standard SQS queues can subscribe (SNS has
    /// delivered FIFO topics to standard queues since 2023); a FIFO queue only to a FIFO topic. Immutable
    /// (SNS cannot change a topic's type). Default false.
    #[serde(default)]
    pub fifo: bool,
    /// For FIFO topics only (SNS `ContentBasedDeduplication` applies to FIFO topics): deduplicate by a
    /// hash of the message body instead of an explicit deduplication id. Default false.
    #[serde(default)]
    pub content_based_deduplication: bool,
    /// KMS key (id, alias or ARN, at most 2048 characters as KMS's `KeyId`) for server-side encryption
    /// (SNS `KmsMasterKeyId`); unset means no encryption at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_master_key_id: Option<String>,
    /// Display name used for SMS and email subscriptions: at most 100 characters (SNS SetTopicAttributes
    /// `DisplayName`: docs.aws.amazon.com/sns/latest/api/API_SetTopicAttributes.html).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub display_name: Option<String>,
}

/// Observed state of a Topic.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// ARN of the SNS topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Number of confirmed subscriptions, as SNS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions_confirmed: Option<i64>,
}
