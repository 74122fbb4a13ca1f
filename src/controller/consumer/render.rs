//! Build step of the Consumer reconciler, pure: the worker configuration with every reference resolved,
//! and the objects that run it ([`crate::controller::resources::workers`]), named and labelled for the
//! Consumer, with the HTTP source's Secrets and NetworkPolicy (see [`super::http`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{Resource, ResourceExt};

pub use crate::controller::resources::workers::WorkerSettings;
use crate::{
    api::{Consumer, consumer::Processor},
    controller::resources::workers::{
        Children, DRAIN_SECONDS, KAFKA_CA_KEY, METRICS_PORT, WorkerOwner, admit_controller, children_of,
        default_resources, memory_limit_bytes, network_policy,
    },
    worker::config::{
        ConsumerName, DeadLetterTarget, DeliveryConfig, KafkaSource, ProcessorKind, Retry, Sink, Source,
        SqsSource, WorkerConfig,
    },
    worker::devices::config::batch_bytes_for,
};

use super::resolved::Resolved;

/// The label naming the Consumer on everything made for it.
pub const CONSUMER_LABEL: &str = "tributary.dev/consumer";

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
        None => ProcessorKind::Container,
    }
}

/// `ce-source` of the messages a Consumer reads: the API path of its Queue or DeviceStream (of the
/// Consumer itself for any other source).
fn event_source(consumer: &Consumer) -> String {
    let api = Consumer::api_version(&());
    let namespace = consumer.namespace().unwrap_or_default();
    let source = &consumer.spec.source;
    let (plural, name) = match (&source.queue_ref, &source.device_stream_ref) {
        (Some(queue), _) => ("queues", queue.name.clone()),
        (None, Some(stream)) => ("devicestreams", stream.name.clone()),
        (None, None) => ("consumers", consumer.name_any()),
    };
    format!("/apis/{api}/namespaces/{namespace}/{plural}/{name}")
}

/// The `delivery` block of a Consumer with `spec.container`: the sidecar on the pod's loopback at its
/// port and path, its readiness path, and `spec.delivery` (defaults when unset).
fn delivery(consumer: &Consumer) -> Option<DeliveryConfig> {
    let container = consumer.spec.container.as_ref()?;
    let delivery = consumer.spec.delivery.clone().unwrap_or_default();
    let positive = |v: i32| u32::try_from(v.max(1)).unwrap_or(1);
    let base = format!("http://127.0.0.1:{}", container.port);
    Some(DeliveryConfig {
        url: format!("{base}{}", container.path),
        ready_url: Some(format!("{base}{}", container.readiness_path)),
        timeout_seconds: positive(delivery.timeout_seconds),
        concurrency: positive(delivery.concurrency),
        type_attribute: delivery.type_attribute,
        source: event_source(consumer),
    })
}

/// The worker container's requests and limits: `spec.resources`, else the workers' default.
pub fn resources(consumer: &Consumer) -> ResourceRequirements {
    consumer.spec.resources.clone().unwrap_or_else(default_resources)
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
                max_batch_bytes: batch_bytes_for(memory_limit_bytes(&resources(consumer))),
                max_poll_interval_seconds: 300,
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
        delivery: delivery(consumer),
        metrics_listen: std::net::SocketAddr::from(([0, 0, 0, 0], METRICS_PORT)),
        drain_seconds: DRAIN_SECONDS,
        unreachable_after_seconds: crate::worker::config::DEFAULT_UNREACHABLE_AFTER_SECONDS,
    }
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
            sidecar: consumer.spec.container.clone(),
            http_port: consumer.spec.source.http.as_ref().map(|http| http.port),
            resources: Some(resources(consumer)),
        }
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
    // A stream reader's CA bundle beside its worker.yaml, where `kafka_ca_file` pointed it.
    if let (Some(_), Some(ca)) = (&config.source.kafka, &settings.kafka_ca) {
        children
            .config_map
            .data
            .get_or_insert_with(BTreeMap::new)
            .insert(KAFKA_CA_KEY.to_owned(), ca.clone());
    }
    // An HTTP Consumer's policy also opens the order port to `allowFrom`.
    children.network_policy = admit_controller(
        network_policy(
            &owner,
            consumer.spec.source.http.as_ref(),
            settings.monitoring_namespace.as_deref(),
        ),
        settings.controller_namespace.as_deref(),
    );
    children
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "render_container_tests.rs"]
mod container_tests;
