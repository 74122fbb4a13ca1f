use kube::api::ObjectMeta;

use super::*;
use crate::api::consumer::{ConsumerSink, ConsumerSource, ConsumerSpec, HttpSource as ApiHttp};
use crate::controller::consumer::resolved::{Resolved, StreamSource};
use crate::controller::resources::workers::{CONFIG_HASH, Children};
use crate::worker::config::FILE_NAME;

fn consumer(spec: ConsumerSpec) -> Consumer {
    let mut consumer = Consumer::new("inventory", spec);
    consumer.metadata = ObjectMeta {
        name: Some("inventory".into()),
        namespace: Some("shop".into()),
        uid: Some("uid-1".into()),
        ..ObjectMeta::default()
    };
    consumer
}

fn queue_consumer() -> Consumer {
    consumer(ConsumerSpec {
        source: ConsumerSource {
            queue_ref: Some(crate::api::common::ObjectRef {
                name: "inventory".into(),
            }),
            ..ConsumerSource::default()
        },
        processor: Some(Processor::Inventory),
        sink: Some(ConsumerSink::default()),
        ..ConsumerSpec::default()
    })
}

fn resolved() -> Resolved {
    Resolved {
        queue: Some(("http://sqs/q".into(), 60)),
        dead_letter_url: Some("http://sqs/dlq".into()),
        topic_arn: None,
        table: Some("shop-orders".into()),
        ..Resolved::default()
    }
}

#[test]
fn the_worker_configuration_has_every_reference_resolved_and_is_valid() {
    let consumer = queue_consumer();
    assert_eq!(table_name(&consumer), "shop-orders");
    let config = worker_config(&consumer, &resolved());
    config.validate().unwrap();
    assert_eq!(config.consumer.to_string(), "shop/inventory");
    assert_eq!(config.processor, ProcessorKind::Inventory);
    let sqs = config.source.sqs.as_ref().unwrap();
    assert_eq!(
        (sqs.queue_url.as_str(), sqs.visibility_timeout_seconds),
        ("http://sqs/q", 60)
    );
    assert_eq!(config.dead_letter.unwrap().queue_url, "http://sqs/dlq");
    assert_eq!(config.retry.max_attempts, 5);
}

#[test]
fn the_deployment_runs_restricted_owned_and_rolls_on_config_change() {
    let consumer = queue_consumer();
    let settings = WorkerSettings {
        image: "tributary:test".into(),
        env: BTreeMap::from([("AWS_REGION".to_owned(), "eu-west-1".to_owned())]),
        ..WorkerSettings::default()
    };
    let config = worker_config(&consumer, &resolved());
    let children = children(&consumer, &config, &settings, 3);
    let deployment = &children.deployment;
    assert_eq!(deployment.metadata.name.as_deref(), Some("inventory-worker"));
    let owner = &deployment.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Consumer", Some(true)));
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.as_ref().unwrap();
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("tributary:test"));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_owned()][..])
    );
    assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
    assert_eq!(container.env.as_ref().unwrap()[0].name, "AWS_REGION");
    // Readiness is probed as soon as the worker answers, not a 10 s period after the container started.
    let startup = container.startup_probe.as_ref().unwrap();
    assert_eq!(startup.period_seconds, Some(1));
    assert_eq!(
        startup.http_get.as_ref().unwrap().path.as_deref(),
        Some("/healthz")
    );
    assert!(children.service.is_none());
    let text = &children.config_map.data.as_ref().unwrap()[FILE_NAME];
    let parsed: WorkerConfig = serde_yaml_ng::from_str(text).unwrap();
    assert_eq!(parsed, config, "the ConfigMap holds exactly the configuration");

    let hash = |c: &Children| {
        c.deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CONFIG_HASH]
            .clone()
    };
    let mut other = resolved();
    other.queue = Some(("http://sqs/q".into(), 90));
    let changed = children_of(&consumer, &other, &settings);
    assert_ne!(
        hash(&children),
        hash(&changed),
        "a new configuration rolls the pods"
    );
    assert_eq!(
        hash(&children),
        hash(&children_of(&consumer, &resolved(), &settings)),
        "stable"
    );
}

fn children_of(consumer: &Consumer, resolved: &Resolved, settings: &WorkerSettings) -> Children {
    children(consumer, &worker_config(consumer, resolved), settings, 1)
}

#[test]
fn the_http_source_gets_a_service_and_its_port() {
    let consumer = consumer(ConsumerSpec {
        source: ConsumerSource {
            http: Some(ApiHttp {
                port: 8080,
                ..ApiHttp::default()
            }),
            ..ConsumerSource::default()
        },
        processor: Some(Processor::OrderAck),
        sink: Some(ConsumerSink::default()),
        ..ConsumerSpec::default()
    });
    let resolved = Resolved {
        topic_arn: Some("arn:aws:sns:us-east-1:1:orders".into()),
        table: Some("shop-orders".into()),
        ..Resolved::default()
    };
    let config = worker_config(&consumer, &resolved);
    config.validate().unwrap();
    assert_eq!(config.source.http.as_ref().unwrap().listen.port(), 8080);
    let children = children(&consumer, &config, &WorkerSettings::default(), 2);
    let service = children.service.unwrap();
    let port = &service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
    assert_eq!(port.port, 8080);
    let ports = children
        .deployment
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .ports
        .clone()
        .unwrap();
    assert_eq!(ports.len(), 2);
}

#[test]
fn workers_get_the_chart_configured_identity_and_secret() {
    let consumer = queue_consumer();
    let settings = WorkerSettings {
        image: "tributary:test".into(),
        service_account_annotations: BTreeMap::from([(
            "eks.amazonaws.com/role-arn".to_owned(),
            "arn:aws:iam::123456789012:role/workers".to_owned(),
        )]),
        env_secret: Some("aws-credentials".to_owned()),
        ..WorkerSettings::default()
    };
    let configured = children(&consumer, &worker_config(&consumer, &resolved()), &settings, 1);
    let annotations = configured
        .service_account
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations.get("eks.amazonaws.com/role-arn").map(String::as_str),
        Some("arn:aws:iam::123456789012:role/workers")
    );
    let pod = configured.deployment.spec.unwrap().template.spec.unwrap();
    let env_from = pod.containers[0].env_from.clone().unwrap_or_default();
    let secret = env_from[0].secret_ref.as_ref().expect("a secretRef");
    assert_eq!(
        (secret.name.as_str(), secret.optional),
        ("aws-credentials", Some(true))
    );

    let plain = children(
        &consumer,
        &worker_config(&consumer, &resolved()),
        &WorkerSettings::default(),
        1,
    );
    assert!(plain.service_account.metadata.annotations.is_none());
    assert!(
        plain.deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .env_from
            .is_none()
    );
}

#[test]
fn a_device_consumer_reads_its_stream_and_gets_its_secrets_from_the_environment() {
    let device = consumer(ConsumerSpec {
        processor: Some(Processor::Device),
        ..ConsumerSpec::default()
    });
    let resolved = Resolved {
        dead_letter_url: Some("http://127.0.0.1:1/acct/dlq".into()),
        stream: Some(StreamSource {
            bootstrap: "ns.servicebus.windows.net:9093".into(),
            topic: "shop-telemetry".into(),
            group: "$Default".into(),
            secret: "telemetry-eventhub".into(),
            partitions: 4,
        }),
        cosmos: Some(crate::worker::config::CosmosSink {
            endpoint: "https://acct.documents.azure.com:443/".into(),
            database: "plant".into(),
            container: "readings".into(),
            partition_key_path: "/deviceId".into(),
            create_if_missing: true,
            preferred_region: "East US".into(),
        }),
        dead_letter_account: Some("acct".into()),
        secret_env: vec![(
            "KAFKA_SASL_PASSWORD".into(),
            "telemetry-eventhub".into(),
            "connectionString".into(),
        )],
        ..Resolved::default()
    };
    let config = worker_config(&device, &resolved);
    config.validate().unwrap();
    assert_eq!(config.processor, ProcessorKind::Device);
    let kafka = config.source.kafka.as_ref().unwrap();
    assert_eq!(
        (kafka.topic.as_str(), kafka.consumer_group.as_str()),
        ("shop-telemetry", "$Default")
    );
    assert_eq!(
        config.dead_letter.as_ref().unwrap().storage_account.as_deref(),
        Some("acct")
    );
    let text = serde_yaml_ng::to_string(&config).unwrap();
    assert!(!text.contains("connectionString"), "no secret in the ConfigMap");
    let children =
        children(&device, &config, &WorkerSettings::default(), 1).with_secret_env(&resolved.secret_env);
    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    let env = pod.containers[0].env.clone().unwrap();
    let password = env.iter().find(|e| e.name == "KAFKA_SASL_PASSWORD").unwrap();
    let from = password
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("telemetry-eventhub", "connectionString")
    );
}

#[test]
fn spec_resources_size_the_worker_container_and_the_device_batches() {
    use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};
    let resolved = Resolved {
        stream: Some(StreamSource {
            bootstrap: "ns.servicebus.windows.net:9093".into(),
            topic: "shop-telemetry".into(),
            group: "$Default".into(),
            secret: "telemetry-eventhub".into(),
            partitions: 4,
        }),
        ..Resolved::default()
    };
    let rendered = |resources: Option<ResourceRequirements>| {
        let device = consumer(ConsumerSpec {
            processor: Some(Processor::Device),
            resources,
            ..ConsumerSpec::default()
        });
        let config = worker_config(&device, &resolved);
        let pod = children(&device, &config, &WorkerSettings::default(), 1)
            .deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let batch_bytes = config.source.kafka.unwrap().max_batch_bytes;
        (pod.containers[0].resources.clone().unwrap(), batch_bytes)
    };
    let (default, batch) = rendered(None);
    assert_eq!(default.limits.unwrap()["memory"], Quantity("256Mi".into()));
    assert_eq!(batch, 32 * 1024 * 1024, "an eighth of 256Mi");

    let quantity = |q: &str| Quantity(q.to_owned());
    let asked = ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity("250m")),
            ("memory".to_owned(), quantity("1Gi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), quantity("1Gi"))])),
        ..ResourceRequirements::default()
    };
    let (resources, batch) = rendered(Some(asked.clone()));
    assert_eq!(resources, asked, "spec.resources replaces the default whole");
    assert_eq!(batch, 128 * 1024 * 1024, "an eighth of 1Gi");

    let (_, batch) = rendered(Some(ResourceRequirements {
        requests: Some(BTreeMap::from([("memory".to_owned(), quantity("64Mi"))])),
        ..ResourceRequirements::default()
    }));
    assert_eq!(batch, 32 * 1024 * 1024, "no limit: the default budget");
}

#[test]
fn a_stream_reader_gets_the_kafka_ca_the_controller_ships_beside_its_configuration() {
    use crate::controller::resources::workers::{KAFKA_CA_KEY, kafka_ca_file};
    let device = consumer(ConsumerSpec {
        processor: Some(Processor::Device),
        ..ConsumerSpec::default()
    });
    let stream = StreamSource {
        bootstrap: "10.200.30.1:9093".into(),
        topic: "shop-telemetry".into(),
        group: "$Default".into(),
        secret: "telemetry-eventhub".into(),
        partitions: 4,
    };
    let controller_file = Some("/etc/tributary/testbed-ca/ca.crt".to_owned());
    let shipping = WorkerSettings {
        kafka_ca: Some("-----BEGIN CERTIFICATE-----\n".into()),
        ..WorkerSettings::default()
    };
    let reading = Resolved {
        stream: Some(stream),
        kafka_ca_file: kafka_ca_file(&shipping, controller_file.clone()),
        ..Resolved::default()
    };
    let config = worker_config(&device, &reading);
    let path = config.source.kafka.as_ref().unwrap().ca_file.clone().unwrap();
    let data = children(&device, &config, &shipping, 1).config_map.data.unwrap();
    // The pod mounts the ConfigMap at CONFIG_DIR: the path is the shipped copy's.
    assert_eq!(path, format!("/etc/tributary/{KAFKA_CA_KEY}"));
    assert_eq!(data[KAFKA_CA_KEY], "-----BEGIN CERTIFICATE-----\n");
    // A queue reader gets no copy; without one to ship, the controller's own path is passed on.
    let queue = children(
        &queue_consumer(),
        &worker_config(&queue_consumer(), &resolved()),
        &shipping,
        1,
    );
    assert!(!queue.config_map.data.unwrap().contains_key(KAFKA_CA_KEY));
    assert_eq!(
        kafka_ca_file(&WorkerSettings::default(), controller_file.clone()),
        controller_file
    );
}
