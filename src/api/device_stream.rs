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
#[serde(rename_all = "camelCase")]
pub struct DeviceStreamAzure {
    /// Azure subscription id holding the resources; defaults to the controller's configured subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 36, max = 36))]
    pub subscription_id: Option<String>,
    /// Resource group of the Event Hubs namespace; defaults to the controller's configured group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: Option<String>,
    /// Event Hubs namespace (6 to 50 characters). Immutable.
    #[schemars(
        length(min = 6, max = 50),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$")
    )]
    pub namespace: String,
    /// Create the namespace too (Standard tier, needed for the Kafka endpoint) if it does not exist.
    #[serde(default)]
    pub create_namespace: bool,
    /// Azure region for a created namespace, e.g. `westeurope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub location: Option<String>,
    /// Event Hub name. Defaults to `<namespace>_<name>` of this object (the name recorded in status is kept). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub hub_name: Option<String>,
    /// Number of partitions (1 to 32 on Standard). Sets the upper bound of parallel consumers. Default 4.
    /// Can only grow.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 32))]
    pub partitions: i32,
    /// Hours events are kept (1 to 168 on Standard). Default 24.
    #[serde(default = "default_retention_hours")]
    #[schemars(range(min = 1, max = 168))]
    pub retention_hours: i32,
    /// Consumer groups to create besides `$Default` (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(min = 1, max = 50)))]
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
