//! The worker objects, shared by the two kinds that run workers (a Consumer's, a Subscription relay's),
//! pure: the worker settings from the controller and the namespace's TenantPolicy, and the Kubernetes
//! objects that run a worker configuration: a ConfigMap holding `worker.yaml`, a ServiceAccount, a
//! Deployment of the operator's own image (with the user's container as a native sidecar, [`sidecar`])
//! under the `restricted` Pod Security Standard ([`pod`]), a Service for an HTTP port and a NetworkPolicy. Each is owned by its
//! object, so deleting it removes them; a change of the configuration rolls the pods (its hash is a pod
//! annotation).

mod pod;
pub mod scrape;
mod sidecar;

pub use pod::{default_resources, memory_limit_bytes};
pub use sidecar::{PORT_ENV, SIDECAR_NAME};

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ConfigMap, EnvVar, EnvVarSource, PodTemplateSpec, SecretKeySelector, Service, ServiceAccount,
            ServicePort, ServiceSpec,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use sha2::{Digest, Sha256};

use crate::{
    api::{consumer::ProcessorContainer, http_source::HttpSource},
    controller::driver::tenancy,
    worker::config::{FILE_NAME, WorkerConfig},
};

/// Port of the workers' `/metrics`, `/healthz` and `/readyz`.
pub const METRICS_PORT: u16 = 9090;
/// Where the ConfigMap is mounted in the worker container.
pub const CONFIG_DIR: &str = "/etc/tributary";
/// The pod annotation carrying the configuration's hash.
pub const CONFIG_HASH: &str = "tributary.dev/config-hash";
/// Seconds in-flight messages get to finish after SIGTERM (the pod's grace period is longer).
pub const DRAIN_SECONDS: u64 = 20;
/// The ConfigMap key, beside `worker.yaml`, of the Kafka endpoint's CA bundle ([`WorkerSettings::kafka_ca`]).
pub const KAFKA_CA_KEY: &str = "kafka-ca.crt";

/// How worker pods are run, from the controller's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSettings {
    /// The operator's image, which holds every built-in processor.
    pub image: String,
    /// Environment passed to every worker (AWS region and endpoint, OTLP endpoint and sampler).
    pub env: BTreeMap<String, String>,
    /// Annotations of every worker ServiceAccount: how workers get cloud credentials from the cluster's
    /// identity (`eks.amazonaws.com/role-arn` for IRSA, `azure.workload.identity/client-id`).
    pub service_account_annotations: BTreeMap<String, String>,
    /// A Secret in the workers' namespace whose keys become their environment (static keys,
    /// e.g. `AWS_ACCESS_KEY_ID`), optional: a missing Secret does not stop the pods.
    pub env_secret: Option<String>,
    /// The namespace whose pods may scrape the workers' metrics port (the order endpoint's
    /// NetworkPolicy); `None` lets no namespace in.
    pub monitoring_namespace: Option<String>,
    /// The controller's namespace, whose pods may read the workers' metrics port too (the controller
    /// reads the message counts for status); `None` adds no rule.
    pub controller_namespace: Option<String>,
    /// Extra labels of the worker pods (the namespace's TenantPolicy: Azure workload identity's
    /// `azure.workload.identity/use`).
    pub pod_labels: BTreeMap<String, String>,
    /// The Kafka endpoint's CA bundle (PEM), when the system does not trust it: the controller's own file
    /// is not in the workers' pods, so it travels in their ConfigMap ([`KAFKA_CA_KEY`]). `None`: workers
    /// are given the controller's path as it is (workers sharing its file system, as a test bed's local
    /// processes do).
    pub kafka_ca: Option<String>,
}

/// Where a worker finds the Kafka endpoint's CA bundle: the copy in its mounted ConfigMap when the
/// controller ships one ([`WorkerSettings::kafka_ca`]), else the controller's `file`.
pub fn kafka_ca_file(settings: &WorkerSettings, file: Option<String>) -> Option<String> {
    if settings.kafka_ca.is_some() {
        return Some(format!("{CONFIG_DIR}/{KAFKA_CA_KEY}"));
    }
    file
}

/// The controller's worker settings with the namespace's identity from its own TenantPolicy: the
/// ServiceAccount annotations and the pod labels (none without one).
pub fn worker_settings(policy: &tenancy::Effective, controller: &WorkerSettings) -> WorkerSettings {
    WorkerSettings {
        service_account_annotations: policy.service_account_annotations(),
        pod_labels: policy.pod_labels(),
        ..controller.clone()
    }
}

/// The controller's own variables every worker gets too (the AWS SDK's region and endpoint, the
/// OpenTelemetry SDK's endpoint and sampler): the command line reads them from the controller's
/// environment into [`WorkerSettings::env`]. Secrets such as OTLP headers belong in the env Secret, not in
/// a Deployment.
pub const WORKER_ENV: [&str; 6] = [
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// Whom a set of worker objects is for: their name, labels and owner, the user's container and the HTTP
/// port. A Consumer's workers, or a Subscription's relay.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerOwner {
    /// The name of every object.
    pub name: String,
    /// Their namespace.
    pub namespace: Option<String>,
    /// Labels of every object and of the pods.
    pub labels: BTreeMap<String, String>,
    /// The labels selecting the pods.
    pub selector: BTreeMap<String, String>,
    /// The owner reference that lets the garbage collector remove them with their owner.
    pub owner: Option<OwnerReference>,
    /// The user's processor container, run beside the worker (a Consumer's `spec.container`).
    pub sidecar: Option<ProcessorContainer>,
    /// The HTTP source's port, which gets a Service.
    pub http_port: Option<i32>,
    /// The worker container's requests and limits; `None`: [`default_resources`].
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
}

impl WorkerOwner {
    /// The metadata of every object made for them.
    pub(crate) fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: self.namespace.clone(),
            labels: Some(self.labels.clone()),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

/// Everything made for a set of workers.
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `worker.yaml`.
    pub config_map: ConfigMap,
    /// The pods' identity (annotate it for IRSA or workload identity).
    pub service_account: ServiceAccount,
    /// The workers.
    pub deployment: Deployment,
    /// The HTTP source's Service.
    pub service: Option<Service>,
    /// Who may reach the workers: the monitoring namespace their metrics port, and for an HTTP source
    /// `allowFrom` the order port.
    pub network_policy: NetworkPolicy,
}

impl Children {
    /// Adds environment variables read from Secrets (variable, Secret, key) to the worker container:
    /// connection strings and account keys stay in their Secrets, out of the ConfigMap.
    pub fn with_secret_env(mut self, secret_env: &[(String, String, String)]) -> Self {
        let containers = self
            .deployment
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .map(|pod| &mut pod.containers);
        for container in containers.into_iter().flatten() {
            let env = container.env.get_or_insert_with(Vec::new);
            for (name, secret, key) in secret_env {
                env.push(EnvVar {
                    name: name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret.clone(),
                            key: key.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                });
            }
        }
        self
    }
}

/// A short hash of the configuration text, for the pod annotation.
pub fn config_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The objects that run `config` for `owner` with `replicas` pods.
pub fn children_of(
    owner: &WorkerOwner,
    config: &WorkerConfig,
    settings: &WorkerSettings,
    replicas: i32,
) -> Children {
    let text = serde_yaml_ng::to_string(config).unwrap_or_default();
    let selector = owner.selector.clone();
    let http_port = owner.http_port;
    let pod = pod::worker_pod(owner, settings);
    let deployment = Deployment {
        metadata: owner.meta(),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(
                        settings
                            .pod_labels
                            .clone()
                            .into_iter()
                            .chain(owner.labels.clone())
                            .collect(),
                    ),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH.to_owned(), config_hash(&text))])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    };
    let service = http_port.map(|port| Service {
        metadata: owner.meta(),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port,
                target_port: Some(IntOrString::String("http".to_owned())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    });
    Children {
        config_map: ConfigMap {
            metadata: owner.meta(),
            data: Some(BTreeMap::from([(FILE_NAME.to_owned(), text)])),
            ..ConfigMap::default()
        },
        service_account: ServiceAccount {
            metadata: ObjectMeta {
                annotations: (!settings.service_account_annotations.is_empty())
                    .then(|| settings.service_account_annotations.clone()),
                ..owner.meta()
            },
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        },
        deployment,
        service,
        // Every worker gets one: one that serves no HTTP source admits the monitoring namespace to its
        // metrics and no one else.
        network_policy: admit_controller(
            network_policy(owner, None, settings.monitoring_namespace.as_deref()),
            settings.controller_namespace.as_deref(),
        ),
    }
}

/// The label Kubernetes puts on every Namespace with its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Same namespace only: the default of `allowFrom`.
fn same_namespace() -> Vec<NetworkPolicyPeer> {
    vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }]
}

fn tcp(port: i32) -> Option<Vec<NetworkPolicyPort>> {
    Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_owned()),
        ..NetworkPolicyPort::default()
    }])
}

/// `policy` with the metrics port open to the pods of the controller's namespace `controller` too (it
/// reads the workers' counts for status).
pub fn admit_controller(mut policy: NetworkPolicy, controller: Option<&str>) -> NetworkPolicy {
    let Some(controller) = controller.filter(|n| !n.is_empty()) else {
        return policy;
    };
    if let Some(rules) = policy.spec.as_mut().and_then(|spec| spec.ingress.as_mut()) {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        NAMESPACE_NAME_LABEL.to_owned(),
                        controller.to_owned(),
                    )])),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: tcp(i32::from(METRICS_PORT)),
        });
    }
    policy
}

/// The NetworkPolicy of a set of workers: ingress to the metrics port from the monitoring namespace
/// only, to an HTTP Consumer's order port from `allowFrom` (default the Consumer's namespace), nothing
/// else. Egress is not restricted here (the workers reach the clouds and the issuer's JWKS).
pub fn network_policy(
    owner: &WorkerOwner,
    http: Option<&HttpSource>,
    monitoring_namespace: Option<&str>,
) -> NetworkPolicy {
    let mut rules: Vec<_> = http
        .map(|http| NetworkPolicyIngressRule {
            from: Some(http.allow_from.clone().unwrap_or_else(same_namespace)),
            ports: tcp(http.port),
        })
        .into_iter()
        .collect();
    if let Some(monitoring) = monitoring_namespace.filter(|n| !n.is_empty()) {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        NAMESPACE_NAME_LABEL.to_owned(),
                        monitoring.to_owned(),
                    )])),
                    match_expressions: None,
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: tcp(i32::from(METRICS_PORT)),
        });
    }
    NetworkPolicy {
        metadata: owner.meta(),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(owner.selector.clone()),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(rules),
            egress: None,
        }),
    }
}
