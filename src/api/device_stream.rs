//! `DeviceStream`: an Azure Event Hub that devices send telemetry to.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Lifecycle, Provider};

/// A partitioned event stream for device telemetry. On `azure` it is an Event Hub, read by consumers
/// through its Kafka endpoint.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "DeviceStream",
    namespaced,
    status = "DeviceStreamStatus",
    shortname = "trds",
    category = "tributary",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".status.partitions"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.kafkaEndpoint"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("self.provider == 'azure'").message("spec.provider: a DeviceStream is an Event Hub, so only 'azure' is supported"))]
#[x_kube(validation = Rule::new("self.provider != 'azure' || has(self.azure)").message("spec.azure is required when spec.provider is azure"))]
#[x_kube(validation = Rule::new(r#"!has(self.tags) || self.tags.all(k, !k.matches('[<>%&\\\\?/]'))"#).message("spec.tags: Azure tag names may not contain < > % & \\ ? /"))]
#[serde(rename_all = "camelCase")]
pub struct DeviceStreamSpec {
    /// Cloud provider. Only `azure` (Event Hubs) is supported. Immutable.
    #[serde(default = "azure")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.provider is immutable"))]
    pub provider: Provider,
    /// Event Hubs settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<DeviceStreamAzure>,
    /// Deletion policy, adoption and tags.
    #[serde(flatten)]
    pub lifecycle: Lifecycle,
}

fn azure() -> Provider {
    Provider::Azure
}

/// Event Hub settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(oldSelf.hubName) || (has(self.hubName) && self.hubName == oldSelf.hubName)").message("spec.azure.hubName is immutable: it names the Event Hub"))]
// `namespace` is a CEL reserved word, so CEL sees the field as `__namespace__`.
#[x_kube(validation = Rule::new("self.__namespace__ == oldSelf.__namespace__").message("spec.azure.namespace is immutable"))]
#[x_kube(validation = Rule::new("self.partitions >= oldSelf.partitions").message("spec.azure.partitions cannot decrease: Event Hubs never removes partitions"))]
#[x_kube(validation = Rule::new("!self.createNamespace || has(self.location)").message("spec.azure.location is required when spec.azure.createNamespace is true: a namespace is created in a region"))]
#[x_kube(validation = Rule::new("!self.createNamespace || self.partitions <= 32").message("spec.azure.partitions: at most 32 in a namespace Tributary creates (Standard tier; Event Hubs quotas)"))]
#[x_kube(validation = Rule::new("!self.createNamespace || self.retentionHours <= 168").message("spec.azure.retentionHours: at most 168 (7 days) in a namespace Tributary creates (Standard tier; Event Hubs quotas)"))]
#[x_kube(validation = Rule::new("!self.createNamespace || !has(self.consumerGroups) || size(self.consumerGroups) <= 19").message("spec.azure.consumerGroups: at most 19 besides $Default in a namespace Tributary creates (Standard tier allows 20 per event hub; Event Hubs quotas)"))]
#[serde(rename_all = "camelCase")]
pub struct DeviceStreamAzure {
    /// Azure subscription id holding the resources: a GUID (Resource Manager `subscriptionId`,
    /// e.g. `00000000-0000-0000-0000-000000000000`). Defaults to the controller's configured subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 36, max = 36),
        regex(pattern = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
    )]
    pub subscription_id: Option<String>,
    /// Resource group of the Event Hubs namespace: 1 to 90 letters, digits, underscores, hyphens, periods
    /// and parentheses, not ending with a period (Azure naming rules, Microsoft.Resources/resourcegroups:
    /// learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules). Defaults to the
    /// controller's configured group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 90),
        regex(pattern = r"^[\p{L}\p{N}_.()-]*[\p{L}\p{N}_()-]$")
    )]
    pub resource_group: Option<String>,
    /// Event Hubs namespace: 6 to 50 letters, digits and hyphens, starting with a letter and ending with a
    /// letter or digit (Azure naming rules, Microsoft.EventHub/namespaces). Immutable.
    #[schemars(
        length(min = 6, max = 50),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$")
    )]
    pub namespace: String,
    /// Create the namespace too (Standard tier, needed for the Kafka endpoint) if it does not exist. Then
    /// `location` is required and the Standard tier's quotas apply: at most 32 partitions, 168 hours of
    /// retention and 20 consumer groups per event hub (Event Hubs quotas:
    /// learn.microsoft.com/azure/event-hubs/event-hubs-quotas). Default false.
    #[serde(default)]
    pub create_namespace: bool,
    /// Azure region for a created namespace, e.g. `westeurope`; required when `createNamespace` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub location: Option<String>,
    /// Event Hub name: 1 to 256 letters, digits, periods, hyphens and underscores, starting and ending with
    /// a letter or digit (Azure naming rules, Microsoft.EventHub/namespaces/eventhubs). Defaults to
    /// `<namespace>_<name>` of this object (a name recorded in status is kept). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
    )]
    pub hub_name: Option<String>,
    /// Number of partitions: 1 to 32 in a namespace Tributary creates (Standard); in an existing namespace
    /// up to 1024 (Premium allows 100 per event hub, Dedicated 1024; Event Hubs quotas). Sets the upper
    /// bound of parallel consumers. Default 4. Can only grow.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1024))]
    pub partitions: i32,
    /// Hours events are kept: 1 to 168 (7 days) in a namespace Tributary creates (Standard); in an existing
    /// namespace up to 2160 (90 days, Premium and Dedicated; Event Hubs quotas). Default 24.
    #[serde(default = "default_retention_hours")]
    #[schemars(range(min = 1, max = 2160))]
    pub retention_hours: i32,
    /// Consumer groups to create besides `$Default`, each 1 to 50 letters, digits, periods, hyphens and
    /// underscores, starting and ending with a letter or digit (Azure naming rules,
    /// Microsoft.EventHub/namespaces/eventhubs/consumergroups), without repeats. At most 19 in a namespace
    /// Tributary creates (Standard allows 20 per event hub, `$Default` included); in an existing namespace
    /// up to 999 (Dedicated allows 1000; Event Hubs quotas).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 999),
        inner(length(min = 1, max = 50), regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    #[x_kube(validation = Rule::new("self.all(g, g != '$Default')").message("spec.azure.consumerGroups: $Default always exists; do not list it"))]
    pub consumer_groups: Vec<String>,
}

fn default_partitions() -> i32 {
    4
}
fn default_retention_hours() -> i32 {
    24
}

/// Observed state of a DeviceStream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStreamStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Kafka bootstrap endpoint (`<namespace>.servicebus.windows.net:9093`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_endpoint: Option<String>,
    /// Partition count reported by Event Hubs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Secret (same namespace) with the connection information consumers use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret_name: Option<String>,
    /// The Event Hub's name, recorded once it exists so that a change of the default naming never
    /// renames a live hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_name: Option<String>,
}
