//! Tenant boundaries: what a namespace's objects may reach, from the cluster-scoped `TenantPolicy`
//! objects administrators write (see `docs/security-tenancy.md`). Resolve: the namespace's own policy
//! and the cluster default, read at every reconcile (and a change of any policy re-reconciles every
//! object at once, [`policy_changes`]) → the effective policy ([`effective`], pure) →
//! the checks of the validate steps ([`Effective::check_table`] and the others, pure), each a
//! `Forbidden` error naming the field, its value and the policy that decided.

use std::collections::BTreeMap;

use futures::FutureExt;
use kube::{
    Api, Client,
    runtime::reflector::{ObjectRef, Store, store::Writer},
};

use super::error::Error;
use crate::api::{
    Consumer,
    tenant_policy::{AzureResourceGroup, CLUSTER_DEFAULT, TenantPolicy, TenantPolicySpec, WorkerIdentity},
};

/// The ServiceAccount annotation of an IAM role for IRSA.
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The ServiceAccount annotation of an Azure workload identity.
pub const AZURE_CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
/// The pod label that makes Azure's workload identity webhook inject the token.
pub const AZURE_USE_LABEL: &str = "azure.workload.identity/use";

/// A policy value and where it came from, for messages.
#[derive(Clone, Debug, PartialEq)]
pub struct Ruled<T> {
    /// The value.
    pub value: T,
    /// `TenantPolicy <name>`, or `the built-in default`.
    pub from: String,
}

/// The policy in force for one namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    /// The namespace.
    pub namespace: String,
    /// Whether `spec.adopt: true` is allowed.
    pub allow_adoption: Ruled<bool>,
    /// Allowed DynamoDB table patterns, `{namespace}` already replaced.
    pub dynamodb_tables: Ruled<Vec<String>>,
    /// Allowed Cosmos DB endpoint patterns; `None`: any.
    pub cosmos_endpoints: Ruled<Option<Vec<String>>>,
    /// Allowed Azure subscriptions and resource groups; `None`: only the controller's defaults.
    pub azure_resource_groups: Ruled<Option<Vec<AzureResourceGroup>>>,
    /// Allowed `spec.container.image` patterns.
    pub images: Ruled<Vec<String>>,
    /// The workers' cloud identity; `None`: the controller's defaults.
    pub worker_identity: Option<WorkerIdentity>,
}

const BUILT_IN: &str = "the built-in default";

/// The first of the namespace's own value and the cluster default's, with its source, else `fallback`.
fn pick<T: Clone>(
    namespace: &str,
    own: Option<&TenantPolicySpec>,
    default: Option<&TenantPolicySpec>,
    field: impl Fn(&TenantPolicySpec) -> Option<&T>,
    fallback: T,
) -> Ruled<T> {
    if let Some(value) = own.and_then(&field) {
        return Ruled {
            value: value.clone(),
            from: format!("TenantPolicy {namespace}"),
        };
    }
    if let Some(value) = default.and_then(&field) {
        return Ruled {
            value: value.clone(),
            from: format!("TenantPolicy {CLUSTER_DEFAULT}"),
        };
    }
    Ruled {
        value: fallback,
        from: BUILT_IN.to_owned(),
    }
}

/// The effective policy of `namespace` from its own policy and the cluster default (either may be
/// missing), field by field. Pure.
pub fn effective(
    namespace: &str,
    own: Option<&TenantPolicySpec>,
    default: Option<&TenantPolicySpec>,
) -> Effective {
    let tables = pick(
        namespace,
        own,
        default,
        |s| s.dynamodb_tables.as_ref(),
        // Not `{namespace}-*`: namespace `b` would reach every table of namespace `b-a` (`b-a-orders`).
        vec!["{namespace}-orders".to_owned()],
    );
    let with_namespace = |patterns: Vec<String>| {
        patterns
            .into_iter()
            .map(|p| p.replace("{namespace}", namespace))
            .collect::<Vec<_>>()
    };
    let cosmos = pick(
        namespace,
        own,
        default,
        |s| s.cosmos_endpoints.as_ref(),
        Vec::new(),
    );
    let azure = pick(
        namespace,
        own,
        default,
        |s| s.azure_resource_groups.as_ref(),
        Vec::new(),
    );
    Effective {
        namespace: namespace.to_owned(),
        allow_adoption: pick(namespace, own, default, |s| s.allow_adoption.as_ref(), false),
        dynamodb_tables: Ruled {
            value: with_namespace(tables.value),
            from: tables.from,
        },
        cosmos_endpoints: Ruled {
            value: (cosmos.from != BUILT_IN).then(|| with_namespace(cosmos.value)),
            from: cosmos.from,
        },
        azure_resource_groups: Ruled {
            value: (azure.from != BUILT_IN).then_some(azure.value),
            from: azure.from,
        },
        images: pick(namespace, own, default, |s| s.images.as_ref(), Vec::new()),
        // The namespace's own policy only, never `cluster.default`: one identity for every namespace's
        // workers would let any tenant act as all the others.
        worker_identity: own.and_then(|s| s.worker_identity.clone()),
    }
}

/// Whether `value` matches `pattern`, where `*` matches any run of characters (and nothing else is
/// special). Pure.
pub fn matches(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn any_matches(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| matches(p, value))
}

impl Effective {
    fn forbidden(&self, object: &str, field: &str, value: &str, rule: &str, from: &str) -> Error {
        Error::Forbidden {
            object: object.to_owned(),
            message: format!(
                "{field}: {value:?} is not allowed in namespace {}: {rule} ({from}; a cluster \
                 administrator can change it)",
                self.namespace
            ),
        }
    }

    /// `spec.adopt: true` needs the policy's `allowAdoption`.
    pub fn check_adoption(&self, object: &str, adopt: bool) -> Result<(), Error> {
        if !adopt || self.allow_adoption.value {
            return Ok(());
        }
        Err(self.forbidden(
            object,
            "spec.adopt",
            "true",
            "adoption is not allowed (allowAdoption is false)",
            &self.allow_adoption.from,
        ))
    }

    /// A DynamoDB table must match `dynamodbTables`.
    pub fn check_table(&self, object: &str, field: &str, table: &str) -> Result<(), Error> {
        let allowed = &self.dynamodb_tables;
        if any_matches(&allowed.value, table) {
            return Ok(());
        }
        let rule = format!("dynamodbTables allows {:?}", allowed.value);
        Err(self.forbidden(object, field, table, &rule, &allowed.from))
    }

    /// A Cosmos DB endpoint must match `cosmosEndpoints`, when set.
    pub fn check_cosmos(&self, object: &str, endpoint: &str) -> Result<(), Error> {
        let Some(patterns) = &self.cosmos_endpoints.value else {
            return Ok(());
        };
        let trimmed = endpoint.trim_end_matches('/');
        if patterns.iter().any(|p| matches(p.trim_end_matches('/'), trimmed)) {
            return Ok(());
        }
        let rule = format!("cosmosEndpoints allows {patterns:?}");
        let field = "spec.sink.cosmos.endpoint";
        Err(self.forbidden(object, field, endpoint, &rule, &self.cosmos_endpoints.from))
    }

    /// A DeviceStream's subscription and resource group must be listed in `azureResourceGroups`, or,
    /// without it, be the controller's defaults (`defaults`: subscription, resource group).
    pub fn check_azure(
        &self,
        object: &str,
        subscription: &str,
        resource_group: &str,
        defaults: (Option<&str>, Option<&str>),
    ) -> Result<(), Error> {
        let value = format!("{subscription}/{resource_group}");
        let field = "spec.azure.subscriptionId/resourceGroup";
        let from = &self.azure_resource_groups.from;
        match &self.azure_resource_groups.value {
            Some(allowed) => {
                let ok = allowed.iter().any(|a| {
                    matches(&a.subscription_id, subscription) && matches(&a.resource_group, resource_group)
                });
                let listed: Vec<String> = allowed
                    .iter()
                    .map(|a| format!("{}/{}", a.subscription_id, a.resource_group))
                    .collect();
                let rule = format!("azureResourceGroups allows {listed:?}");
                if ok {
                    Ok(())
                } else {
                    Err(self.forbidden(object, field, &value, &rule, from))
                }
            }
            None if defaults == (Some(subscription), Some(resource_group)) => Ok(()),
            None => {
                let rule = "only the controller's default subscription and resource group are allowed";
                Err(self.forbidden(object, field, &value, rule, from))
            }
        }
    }

    /// A Consumer's container image (`spec.container.image`) must match `images`.
    pub fn check_image(&self, object: &str, image: &str) -> Result<(), Error> {
        if any_matches(&self.images.value, image) {
            return Ok(());
        }
        let rule = if self.images.value.is_empty() {
            "no container images are allowed, only the built-in processors".to_owned()
        } else {
            format!("images allows {:?}", self.images.value)
        };
        Err(self.forbidden(object, "spec.container.image", image, &rule, &self.images.from))
    }

    /// The annotations of the namespace's worker ServiceAccounts: from the namespace's own policy's
    /// `workerIdentity`; none without one (the workers then have no cloud identity of their own).
    pub fn service_account_annotations(&self) -> BTreeMap<String, String> {
        let Some(identity) = &self.worker_identity else {
            return BTreeMap::new();
        };
        let mut annotations = identity.annotations.clone();
        if let Some(role) = &identity.aws_role_arn {
            annotations.insert(IRSA_ROLE_ANNOTATION.to_owned(), role.clone());
        }
        if let Some(client_id) = &identity.azure_client_id {
            annotations.insert(AZURE_CLIENT_ID_ANNOTATION.to_owned(), client_id.clone());
        }
        annotations
    }

    /// The Consumer's fields the policy governs: its container's image, its DynamoDB `table` (the resolved
    /// one, `spec.sink.table` or its default) and its Cosmos DB endpoint. Pure.
    pub fn check_consumer(
        &self,
        object: &str,
        consumer: &Consumer,
        table: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(container) = &consumer.spec.container {
            self.check_image(object, &container.image)?;
        }
        let sink = consumer.spec.sink.as_ref();
        if let Some(table) = table {
            let field = if sink.is_some_and(|s| s.table.is_some()) {
                "spec.sink.table"
            } else {
                "spec.sink.table (its default <namespace>-orders)"
            };
            self.check_table(object, field, table)?;
        }
        if let Some(cosmos) = sink.and_then(|s| s.cosmos.as_ref()) {
            self.check_cosmos(object, &cosmos.endpoint)?;
        }
        Ok(())
    }

    /// Extra labels of the namespace's worker pods (Azure workload identity's opt-in label).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        self.worker_identity
            .as_ref()
            .filter(|i| i.azure_client_id.is_some())
            .map(|_| BTreeMap::from([(AZURE_USE_LABEL.to_owned(), "true".to_owned())]))
            .unwrap_or_default()
    }
}

/// The effective policy of `namespace`: from the TenantPolicy watch's store once it has listed them
/// (no API request per reconcile), else read from the API server (before the first list, or while the
/// watch cannot run).
pub async fn load(
    client: &Client,
    policies: &Store<TenantPolicy>,
    object: &str,
    namespace: &str,
) -> Result<Effective, Error> {
    if policies
        .wait_until_ready()
        .now_or_never()
        .is_some_and(|ready| ready.is_ok())
    {
        let get = |name: &str| policies.get(&ObjectRef::new(name)).map(|p| p.spec.clone());
        let own = get(namespace);
        let default = get(CLUSTER_DEFAULT);
        return Ok(effective(namespace, own.as_ref(), default.as_ref()));
    }
    let api: Api<TenantPolicy> = Api::all(client.clone());
    let get = |name: String| {
        let api = api.clone();
        async move {
            match api.get_opt(&name).await {
                Ok(policy) => Ok(policy.map(|p| p.spec)),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
                Err(source) => Err(Error::kube(
                    object,
                    format!("reading TenantPolicy {name}"),
                    source,
                )),
            }
        }
    };
    let own = get(namespace.to_owned()).await?;
    let default = get(CLUSTER_DEFAULT.to_owned()).await?;
    Ok(effective(namespace, own.as_ref(), default.as_ref()))
}

/// One stream per controller that yields whenever a TenantPolicy is created, changed or deleted (for
/// `Controller::reconcile_all_on`: policies change rarely, and then every object is checked against the
/// new one at once instead of at its next resync), and the watch that feeds them, to run alongside the
/// controllers. Without the CRD or the permission the watch retries with backoff and objects still pick
/// a change up at their next reconcile.
pub fn policy_changes(
    client: &Client,
    writer: Writer<TenantPolicy>,
    controllers: usize,
) -> (
    impl std::future::Future<Output = ()> + Send + use<>,
    Vec<futures::channel::mpsc::UnboundedReceiver<()>>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..controllers)
        .map(|_| futures::channel::mpsc::unbounded())
        .unzip();
    let api: Api<TenantPolicy> = Api::all(client.clone());
    let feed = async move {
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    for sender in &senders {
                        let _ = sender.unbounded_send(());
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "watching TenantPolicies"),
            }
        }
    };
    (feed, receivers)
}

/// The cluster identity in the ownership tags: `configured` (`--cluster-id`, the chart's `clusterId`)
/// when set, else the UID of the `kube-system` Namespace: it is unique per cluster, stable for the
/// cluster's life and the same for every Tributary release in it, and needs only `get` on that one
/// Namespace.
pub async fn cluster_identity(client: &Client, configured: Option<String>) -> Result<String, String> {
    if let Some(id) = configured.filter(|id| !id.trim().is_empty()) {
        return Ok(id.trim().to_owned());
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = namespaces.get("kube-system").await.map_err(|e| {
        format!(
            "reading the kube-system Namespace for the cluster identity failed ({e}); grant get on it or set \
             TRIBUTARY_CLUSTER_ID (the chart's clusterId)"
        )
    })?;
    namespace
        .metadata
        .uid
        .ok_or_else(|| "the kube-system Namespace has no uid; set TRIBUTARY_CLUSTER_ID".to_owned())
}

#[cfg(test)]
#[path = "tenancy_tests.rs"]
mod tests;
