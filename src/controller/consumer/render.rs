//! Build step of the Consumer reconciler, pure: the worker configuration with every reference resolved,
//! and the Kubernetes objects that run it: a ConfigMap holding `worker.yaml`, a ServiceAccount, a
//! Deployment of the operator's own image (or the Consumer's custom image) under the `restricted` Pod
//! Security Standard, and for the HTTP source a Service and a NetworkPolicy (see [`super::http`]). Each is owned by the Consumer, so deleting it
//! removes them; a change of the configuration rolls the pods (its hash is a pod annotation).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvFromSource, EnvVar,
            EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
            ResourceRequirements, SeccompProfile, SecretEnvSource, SecretKeySelector, SecurityContext,
            Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
        },
        networking::v1::NetworkPolicy,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::{
    api::{Consumer, consumer::Processor},
    worker::config::{
        ConsumerName, DeadLetterTarget, FILE_NAME, KafkaSource, ProcessorKind, Retry, Sink, Source,
        SqsSource, WorkerConfig,
    },
};

/// Port of the workers' `/metrics` and `/healthz`.
pub const METRICS_PORT: u16 = 9090;
/// Where the ConfigMap is mounted in the worker container.
pub const CONFIG_DIR: &str = "/etc/tributary";
/// The label naming the Consumer on everything made for it.
pub const CONSUMER_LABEL: &str = "tributary.dev/consumer";
/// The pod annotation carrying the configuration's hash.
pub const CONFIG_HASH: &str = "tributary.dev/config-hash";
/// Seconds in-flight messages get to finish after SIGTERM (the pod's grace period is longer).
const DRAIN_SECONDS: u64 = 20;

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
    /// A Secret in the Consumer's namespace whose keys become the workers' environment (static keys,
    /// e.g. `AWS_ACCESS_KEY_ID`), optional: a missing Secret does not stop the pods.
    pub env_secret: Option<String>,
    /// The namespace whose pods may scrape the workers' metrics port (the order endpoint's
    /// NetworkPolicy); `None` lets no namespace in.
    pub monitoring_namespace: Option<String>,
    /// Extra labels of the worker pods (the namespace's TenantPolicy: Azure workload identity's
    /// `azure.workload.identity/use`).
    pub pod_labels: BTreeMap<String, String>,
}

/// The references of a Consumer, resolved from the watch caches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The source queue: URL and visibility timeout.
    pub queue: Option<(String, i32)>,
    /// The source Storage Queue.
    pub storage_queue: Option<crate::worker::config::StorageQueueSource>,
    /// The DeadLetter's queue URL.
    pub dead_letter_url: Option<String>,
    /// The sink Topic's ARN.
    pub topic_arn: Option<String>,
    /// The Order table.
    pub table: Option<String>,
    /// The DeviceStream source.
    pub stream: Option<super::device::StreamSource>,
    /// The Cosmos DB sink of the device processor.
    pub cosmos: Option<crate::worker::config::CosmosSink>,
    /// The storage account of a Storage Queue dead letter.
    pub dead_letter_account: Option<String>,
    /// Environment from Secrets: variable, Secret, key (connection strings and account keys).
    pub secret_env: Vec<(String, String, String)>,
    /// The CA bundle of the Kafka endpoint, when it is not the system's (an emulator's).
    pub kafka_ca_file: Option<String>,
}

/// The Order table of a Consumer: `spec.sink.table`, else `<namespace>-orders`.
pub fn table_name(consumer: &Consumer) -> String {
    consumer
        .spec
        .sink
        .as_ref()
        .and_then(|sink| sink.table.clone())
        .unwrap_or_else(|| format!("{}-orders", consumer.namespace().unwrap_or_default()))
}

/// The name of everything made for a Consumer.
pub fn worker_name(consumer: &Consumer) -> String {
    format!("{}-worker", consumer.name_any())
}

fn processor_kind(consumer: &Consumer) -> ProcessorKind {
    match consumer.spec.processor {
        Some(Processor::OrderAck) => ProcessorKind::OrderAck,
        Some(Processor::Notification) => ProcessorKind::Notification,
        Some(Processor::Inventory) => ProcessorKind::Inventory,
        Some(Processor::Shipment) => ProcessorKind::Shipment,
        Some(Processor::Device) => ProcessorKind::Device,
        None => ProcessorKind::Custom,
    }
}

/// The worker configuration of `consumer`.
pub fn worker_config(consumer: &Consumer, resolved: &Resolved) -> WorkerConfig {
    let retry = &consumer.spec.retry;
    let positive = |v: i32| u32::try_from(v.max(1)).unwrap_or(1);
    WorkerConfig {
        consumer: ConsumerName {
            namespace: consumer.namespace().unwrap_or_default(),
            name: consumer.name_any(),
        },
        processor: processor_kind(consumer),
        source: Source {
            sqs: resolved.queue.as_ref().map(|(url, visibility)| SqsSource {
                queue_url: url.clone(),
                visibility_timeout_seconds: *visibility,
                receivers: 4,
                wait_time_seconds: 20,
            }),
            storage_queue: resolved.storage_queue.clone(),
            kafka: resolved.stream.as_ref().map(|stream| KafkaSource {
                bootstrap_servers: stream.bootstrap.clone(),
                topic: stream.topic.clone(),
                consumer_group: stream.group.clone(),
                security_protocol: "SASL_SSL".to_owned(),
                username: crate::cloud::azure::kafka::EVENT_HUBS_USERNAME.to_owned(),
                ca_file: resolved.kafka_ca_file.clone(),
                session_timeout_seconds: 30,
                max_batch: 500,
                writers: 32,
            }),
            http: consumer
                .spec
                .source
                .http
                .as_ref()
                .map(|http| super::http::worker_http(consumer, http)),
        },
        sink: Sink {
            table: resolved.table.clone(),
            topic_arn: resolved.topic_arn.clone(),
            cosmos: resolved.cosmos.clone(),
        },
        retry: Retry {
            max_attempts: positive(retry.max_attempts),
            initial_backoff_seconds: positive(retry.initial_backoff_seconds),
            max_backoff_seconds: positive(retry.max_backoff_seconds),
        },
        dead_letter: resolved
            .dead_letter_url
            .clone()
            .map(|queue_url| DeadLetterTarget {
                queue_url,
                storage_account: resolved.dead_letter_account.clone(),
            }),
        relay: None,
        metrics_listen: std::net::SocketAddr::from(([0, 0, 0, 0], METRICS_PORT)),
        drain_seconds: DRAIN_SECONDS,
    }
}

/// Everything made for a Consumer.
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

/// Whom a set of worker objects is for: their name, labels and owner, the image and the HTTP port. A
/// Consumer's workers, or a Subscription's relay.
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
    /// An image other than the operator's.
    pub image: Option<String>,
    /// The HTTP source's port, which gets a Service.
    pub http_port: Option<i32>,
}

impl WorkerOwner {
    /// The workers of `consumer`.
    pub fn of_consumer(consumer: &Consumer) -> Self {
        Self {
            name: worker_name(consumer),
            namespace: consumer.namespace(),
            labels: BTreeMap::from([
                ("app.kubernetes.io/name".to_owned(), "tributary-worker".to_owned()),
                ("app.kubernetes.io/instance".to_owned(), consumer.name_any()),
                ("app.kubernetes.io/managed-by".to_owned(), "tributary".to_owned()),
                (CONSUMER_LABEL.to_owned(), consumer.name_any()),
            ]),
            selector: BTreeMap::from([(CONSUMER_LABEL.to_owned(), consumer.name_any())]),
            owner: consumer.controller_owner_ref(&()),
            image: consumer.spec.image.clone(),
            http_port: consumer.spec.source.http.as_ref().map(|http| http.port),
        }
    }

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

/// A short hash of the configuration text, for the pod annotation.
pub fn config_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The restricted Pod Security Standard for the worker container.
fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The objects for `consumer` running `config` with `replicas` pods.
pub fn children(
    consumer: &Consumer,
    config: &WorkerConfig,
    settings: &WorkerSettings,
    replicas: i32,
) -> Children {
    let owner = WorkerOwner::of_consumer(consumer);
    let mut children = children_of(&owner, config, settings, replicas).with_http_secrets(consumer);
    // An HTTP Consumer's policy also opens the order port to `allowFrom`.
    children.network_policy = super::http::network_policy(
        &owner,
        consumer.spec.source.http.as_ref(),
        settings.monitoring_namespace.as_deref(),
    );
    children
}

/// The pod of `owner`'s workers: the worker container (its config mounted, probes on the metrics port,
/// `restricted` security) under the owner's own ServiceAccount.
fn worker_pod(owner: &WorkerOwner, settings: &WorkerSettings) -> PodSpec {
    let name = owner.name.clone();
    let http_port = owner.http_port;
    let mut ports = vec![ContainerPort {
        name: Some("metrics".to_owned()),
        container_port: i32::from(METRICS_PORT),
        ..ContainerPort::default()
    }];
    if let Some(port) = http_port {
        ports.push(ContainerPort {
            name: Some("http".to_owned()),
            container_port: port,
            ..ContainerPort::default()
        });
    }
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let quantity = |q: &str| Quantity(q.to_owned());
    let image = owner.image.clone().unwrap_or_else(|| settings.image.clone());
    let container = Container {
        name: "worker".to_owned(),
        image: Some(image),
        args: Some(
            [
                "worker",
                "--config",
                &format!("{CONFIG_DIR}/{FILE_NAME}"),
                "--log-format",
                "json",
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        env: Some(
            settings
                .env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: Some(value.clone()),
                    value_from: None,
                })
                .collect(),
        ),
        env_from: settings.env_secret.as_ref().map(|name| {
            vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: Some(true),
                }),
                ..EnvFromSource::default()
            }]
        }),
        ports: Some(ports),
        readiness_probe: Some(probe("/healthz")),
        liveness_probe: Some(probe("/healthz")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("50m")),
                ("memory".to_owned(), quantity("64Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), quantity("256Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(restricted()),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".to_owned(),
            mount_path: CONFIG_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    PodSpec {
        service_account_name: Some(name.clone()),
        // Workers never call the Kubernetes API.
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(i64::try_from(DRAIN_SECONDS).unwrap_or(20) + 10),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65_532),
            run_as_group: Some(65_532),
            // Secret volumes (API keys, TLS) are mounted 0440: group-owned by the worker's group, so
            // only the worker reads them.
            fs_group: Some(65_532),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
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
    let pod = worker_pod(owner, settings);
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
        network_policy: super::http::network_policy(owner, None, settings.monitoring_namespace.as_deref()),
    }
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
