//! `TenantPolicy`: what the Tributary objects of one namespace (a tenant) may reach, set by cluster
//! administrators. It is cluster-scoped, so a tenant with the usual namespaced `edit`/`admin` roles can
//! neither read nor change it. The object named after a namespace applies to that namespace; the object
//! named [`CLUSTER_DEFAULT`] gives the value of every field a namespace's own policy leaves out; a field
//! set in neither has the built-in default documented on it.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The name of the policy whose fields apply to every namespace without its own value for them. It
/// contains dots, so no namespace can have this name.
pub const CLUSTER_DEFAULT: &str = "cluster.default";

/// What the Tributary objects of a namespace may reach. Name it after the namespace it governs, or
/// `cluster.default` for the defaults of all namespaces.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "TenantPolicy",
    plural = "tenantpolicies",
    shortname = "trpolicy",
    printcolumn(name = "Adoption", type_ = "boolean", json_path = ".spec.allowAdoption"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicySpec {
    /// Whether objects in the namespace may take over an existing cloud resource with `spec.adopt: true`.
    /// Even when allowed, adoption never takes a resource tagged as another Tributary object's or another
    /// cluster's. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_adoption: Option<bool>,
    /// DynamoDB tables a Consumer's `spec.sink.table` (and its default `<namespace>-orders`) may name:
    /// patterns where `*` matches any run of characters and `{namespace}` is the namespace's name.
    /// Default: `["{namespace}-orders"]`, the default table only (`{namespace}-*` would let namespace `b`
    /// reach namespace `b-a`'s tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb_tables: Option<Vec<String>>,
    /// Cosmos DB account endpoints a Consumer's `spec.sink.cosmos.endpoint` may name (patterns as for
    /// `dynamodbTables`, compared without a trailing `/`). Default: any (writing needs the account key,
    /// which the tenant must hold in its own Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosmos_endpoints: Option<Vec<String>>,
    /// Azure subscriptions and resource groups a DeviceStream may use. Default: only the controller's
    /// configured default subscription and resource group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_resource_groups: Option<Vec<AzureResourceGroup>>,
    /// Image patterns a Consumer's `spec.container.image` may use (`*` matches any run of characters, e.g.
    /// `registry.example.com/team-a/*`). Default: none (only the built-in processors, which run
    /// Tributary's own image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// The cloud identity the namespace's workers (and relays) get, through their per-Consumer
    /// ServiceAccount. Only a namespace's own policy gives one (`cluster.default`'s is not inherited: one
    /// identity for every namespace would let any tenant act as the others). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_identity: Option<WorkerIdentity>,
}

/// An Azure subscription and resource group (patterns as for `dynamodbTables`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureResourceGroup {
    /// Subscription id, or a pattern (`*` for any).
    #[schemars(length(min = 1, max = 64))]
    pub subscription_id: String,
    /// Resource group name, or a pattern (`*` for any).
    #[schemars(length(min = 1, max = 90))]
    pub resource_group: String,
}

/// The cloud identity of a namespace's workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerIdentity {
    /// IAM role for IRSA: written as the ServiceAccount annotation `eks.amazonaws.com/role-arn`. (For
    /// EKS Pod Identity, associate the role with the ServiceAccount `<consumer>-worker` instead; nothing
    /// is needed on the ServiceAccount.) Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('arn:')").message("spec.workerIdentity.awsRoleArn must be an IAM role ARN (arn:...)"))]
    pub aws_role_arn: Option<String>,
    /// Azure workload identity client id: written as the ServiceAccount annotation
    /// `azure.workload.identity/client-id`, and the pods get the label `azure.workload.identity/use:
    /// "true"`. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub azure_client_id: Option<String>,
    /// Further ServiceAccount annotations (they replace the controller's defaults). Optional.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
