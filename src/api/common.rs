//! Types shared by every Tributary kind: provider selection, references, deletion policy and status
//! conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Tributary kind.
pub const GROUP: &str = "tributary.dev";
/// The API version of every Tributary kind.
pub const VERSION: &str = "v1alpha1";

/// Which cloud backs a resource. The provider block of the same name (`aws` or `azure`) configures it.
/// A third provider, `local` (an in-cluster broker), is planned; code matches on this enum exhaustively so
/// that adding it shows every place that must learn about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Amazon Web Services (SNS, SQS, DynamoDB).
    #[default]
    Aws,
    /// Microsoft Azure (Event Hubs, Storage Queues, Cosmos DB).
    Azure,
}

/// What happens to the cloud resource when the Kubernetes object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the cloud resource with the object.
    #[default]
    Delete,
    /// Keep the cloud resource; only the Kubernetes object goes away.
    Retain,
}

/// Lifecycle settings shared by every kind that is backed by a cloud resource (flattened into its spec).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// What happens to the cloud resource when this object is deleted: `Delete` (default) or `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over a cloud resource that already exists under the same name instead of refusing to
    /// reconcile. Only where the namespace's TenantPolicy allows adoption, and never a resource tagged as
    /// another Tributary object's or another cluster's. Default: false.
    #[serde(default)]
    pub adopt: bool,
    /// Tags (AWS) or tags (Azure Resource Manager) put on the cloud resource, besides Tributary's own
    /// ownership tags (`tributary.dev/...`, which a spec cannot set). At most 46: SNS, SQS and Azure allow 50
    /// per resource, and Tributary reserves 4 for its ownership tags. Values at most 256 characters (AWS and
    /// Azure). Keys: on aws 1 to 128 Unicode letters, digits, spaces and `_ . : / = + - @`, not starting
    /// with `aws:`, values of the same characters; on azure keys of at most 512 characters without
    /// `< > % & \ ? /`. Sources: SNS `Tag` and SQS tag quotas
    /// (docs.aws.amazon.com/sns/latest/api/API_Tag.html,
    /// docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-queues.html), Azure tag
    /// limitations (learn.microsoft.com/azure/azure-resource-manager/management/tag-resources).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: Tags,
}

/// User tags a resource may carry: the clouds' 50 less the ownership tags Tributary adds (namespace, name,
/// kind, and a cluster identity).
pub const MAX_USER_TAGS: u32 = 46;

/// The schema of `tags`: bounded count and value length, keys of 1 to 512 characters (Azure's bound; the
/// kinds on aws narrow it to 128) that do not claim Tributary's ownership tags.
fn tags_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_USER_TAGS,
        "additionalProperties": {"type": "string", "maxLength": 256},
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, size(k) >= 1 && size(k) <= 512)",
                "message": "spec.tags: keys must be 1 to 512 characters"
            },
            {
                "rule": "self.all(k, !k.startsWith('tributary.dev/'))",
                "message": "spec.tags: keys starting with 'tributary.dev/' are Tributary's ownership tags and cannot be set"
            }
        ]
    })
}

/// A reference to another Tributary object in the same namespace, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ObjectRef {
    /// Name of the referenced object, in this object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret, in this object's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Status fields every kind carries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` this status was computed for. Older than the object's generation means
    /// the controller has not acted on the latest spec yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state: `Ready` (usable), `Synced` (cloud matches spec), and kind-specific types. Each
    /// carries `reason`, `message` and the `observedGeneration` it describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The schema of `conditions`: a list keyed by `type`, so server-side apply merges entries by type.
fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("x-kubernetes-list-type".into(), "map".into());
        obj.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    }
    schema
}

/// Where an Azure Storage Queue lives: shared by Queue and DeadLetter on `azure`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageQueueLocation {
    /// Storage account holding the queue: 3 to 24 lowercase letters and digits (Azure naming rules,
    /// Microsoft.Storage/storageAccounts:
    /// learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
    #[schemars(length(min = 3, max = 24), regex(pattern = r"^[a-z0-9]+$"))]
    pub storage_account: String,
    /// Queue name: 3 to 63 lowercase letters, digits and dashes, starting and ending with a letter or
    /// digit, no two dashes in a row (Storage "Naming queues and metadata":
    /// learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata). Defaults to
    /// `<namespace>-<name>-<hash>` (a name recorded in status is kept). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9]|-[a-z0-9])*$")
    )]
    pub name: Option<String>,
    /// Secret key holding the storage account key. Required for now: Storage Queues are managed and read
    /// with the account key (an object without it is refused with `InvalidSpec`; Azure identities are
    /// not used for Storage Queues yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_secret_ref: Option<SecretKeyRef>,
}

/// What the controller observes of a queue (SQS or Storage Queue), for Queue and DeadLetter status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueObservation {
    /// Queue URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Queue ARN (AWS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Approximate number of visible messages at the last observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    /// Approximate age in seconds of the oldest message at the last observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_message_age_seconds: Option<i64>,
}

/// A map of tags (AWS) or labels (Azure) put on the cloud resource.
pub type Tags = std::collections::BTreeMap<String, String>;

/// `true` when absent, for serde defaults.
pub(crate) fn default_true() -> bool {
    true
}
