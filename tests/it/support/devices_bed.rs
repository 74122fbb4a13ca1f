//! The device example on the test bed for fault tests: the controller (in this process) makes the Event
//! Hub through the ARM fake (a topic on the Kafka broker), the dead-letter Storage Queue in Azurite and
//! the Consumer; one `tributary worker` process runs from the ConfigMap it rendered, with the
//! environment its Deployment takes from Secrets (as in `e2e_devices`, smaller).
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret},
};
use kube::Api;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tributary::{
    cloud::azure::{
        cosmos::{ContainerAddress, CosmosContainer},
        kafka::{KafkaEndpoint, lag},
    },
    worker::config::WorkerConfig,
};

const CONVERGE: Duration = Duration::from_secs(90);

/// Creates `topic` with `partitions` on the test bed's broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        endpoint().client_config().create().unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// The broker as the Event Hubs Kafka endpoint.
pub fn endpoint() -> KafkaEndpoint {
    KafkaEndpoint {
        bootstrap_servers: super::var("KAFKA_BOOTSTRAP"),
        security_protocol: "SASL_SSL".into(),
        username: super::var("KAFKA_SASL_USERNAME"),
        password: super::var("KAFKA_SASL_PASSWORD"),
        ca_file: Some(super::var("KAFKA_CA_FILE")),
    }
}

/// The `i`th event of a test: (device, body, malformed); every 25th is not JSON.
pub fn event(tag: &str, i: usize) -> (String, String, bool) {
    let device = format!("device-{}", i % 10);
    if i % 25 == 7 {
        return (device, format!("{{not json {tag}-{i}"), true);
    }
    let body = format!(
        r#"{{"eventId":"{tag}-{i:05}","deviceId":"{device}","timestamp":"2026-12-06T12:00:00Z","type":"reading","readings":{{"celsius":{}.5}}}}"#,
        i % 40
    );
    (device, body, false)
}

/// The running device example.
pub struct DeviceBed {
    /// The test bed's API server.
    pub client: kube::Client,
    /// The namespace of the example.
    pub ns: String,
    /// The hub's topic.
    pub topic: String,
    /// The Cosmos DB database.
    pub database: String,
    /// The dead letter's Storage Queue.
    pub dlq: azure_storage_queue::QueueClient,
    /// The worker process.
    pub worker: Child,
    _fake: super::arm_fake::ArmFake,
    controller: Option<super::RunningController>,
}

impl DeviceBed {
    /// Provisions the example in a new namespace and starts its worker.
    pub async fn start(prefix: &str) -> Self {
        let client = super::kube_client().await;
        super::install_crds(&client).await;
        let ns = super::namespace(&client, prefix).await;
        let fake = super::arm_fake().await;
        let hubs = super::event_hubs_config(&fake, "00000000-0000-0000-0000-000000000009", "devices");
        let controller =
            super::start_controller_with(&client, &ns, &super::aws_config().await, Some(hubs)).await;
        let database = apply_example(&client, &ns).await;
        let dlq_url = wait_available(&client, &ns, CONVERGE).await;
        let dlq = super::azure_queue_service()
            .queue_client(dlq_url.rsplit('/').next().unwrap())
            .unwrap();
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
        let rendered = config_maps.get("device-processor-worker").await.unwrap();
        let mut config: WorkerConfig =
            serde_yaml_ng::from_str(&rendered.data.unwrap()["worker.yaml"]).unwrap();
        config.metrics_listen = ([127, 0, 0, 1], super::free_port()).into();
        if let Some(kafka) = config.source.kafka.as_mut() {
            kafka.session_timeout_seconds = 6;
        }
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/faults")
            .join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("worker.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let deployment = deployments.get("device-processor-worker").await.unwrap();
        let env = deployment_env(&client, &ns, &deployment).await;
        let worker = Command::new(super::tributary_bin())
            .args(["worker", "--config"])
            .arg(&file)
            .envs(&env)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("worker.log")).unwrap())
            .spawn()
            .unwrap();
        Self {
            client,
            topic: format!("{ns}_telemetry"),
            ns,
            database,
            dlq,
            worker,
            _fake: fake,
            controller: Some(controller),
        }
    }

    /// A producer to the hub; `timeout` bounds how long a send may wait for the broker.
    pub fn producer(timeout: Duration) -> FutureProducer {
        endpoint()
            .client_config()
            .set("linger.ms", "5")
            .set("message.timeout.ms", timeout.as_millis().to_string())
            .create()
            .unwrap()
    }

    /// Sends events `range` tagged `tag`; returns (valid (device, id), malformed bodies).
    pub async fn send(
        &self,
        producer: &FutureProducer,
        tag: &str,
        range: std::ops::Range<usize>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        send(producer, &self.topic, tag, range).await
    }

    /// The consumer group's lag, if the broker answers.
    pub async fn lag(&self) -> Option<i64> {
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            lag(&endpoint(), &topic, "device-processor", Duration::from_secs(5))
        })
        .await
        .unwrap()
        .ok()
        .map(|l| l.total)
    }

    /// The readings container.
    pub async fn container(&self) -> CosmosContainer {
        CosmosContainer::open(
            &ContainerAddress {
                endpoint: super::var("COSMOS_ENDPOINT"),
                key: super::var("COSMOS_KEY"),
                database: self.database.clone(),
                container: "readings".into(),
                partition_key_path: "/deviceId".into(),
                preferred_region: "East US".into(),
            },
            false,
        )
        .await
        .unwrap()
    }

    /// The ids of `valid` that have no document.
    pub async fn missing(&self, valid: &[(String, String)]) -> Vec<String> {
        let container = self.container().await;
        let mut missing = Vec::new();
        for (device, id) in valid {
            if !matches!(container.read(device, id).await, Ok(Some(_))) {
                missing.push(id.clone());
            }
        }
        missing
    }

    /// Stops the worker (SIGTERM) and the controller.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.worker.id().to_string()])
            .status();
        let _ = self.worker.wait();
        if let Some(controller) = self.controller.take() {
            controller.stop().await;
        }
    }
}

impl Drop for DeviceBed {
    fn drop(&mut self) {
        if matches!(self.worker.try_wait(), Ok(None)) {
            let _ = self.worker.kill();
            let _ = self.worker.wait();
        }
    }
}

/// Sends events `range` tagged `tag` to `topic`; returns (valid (device, id), malformed bodies).
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    tag: &str,
    range: std::ops::Range<usize>,
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut valid, mut malformed) = (Vec::new(), Vec::new());
    for i in range {
        let (device, body, bad) = event(tag, i);
        producer
            .send(
                FutureRecord::to(topic).key(&device).payload(&body),
                Duration::from_secs(120),
            )
            .await
            .unwrap();
        if bad {
            malformed.push(body);
        } else {
            valid.push((device, format!("{tag}-{i:05}")));
        }
    }
    (valid, malformed)
}

/// Waits until the example's Consumer and then its dead letter are Available, each for at most `within`;
/// returns the dead letter's Storage Queue URL.
pub async fn wait_available(client: &kube::Client, ns: &str, within: Duration) -> String {
    super::wait_reason(client, ns, "Consumer", "device-processor", "Available", within).await;
    let dead_letter = super::wait_reason(client, ns, "DeadLetter", "devices-dlq", "Available", within).await;
    dead_letter.data["status"]["url"].as_str().unwrap().to_owned()
}

/// Applies examples/devices into `ns` with its Secrets, pointed at the test bed: a hub namespace and a
/// Cosmos DB database of its own (returned), the test bed's storage account and Cosmos DB endpoint.
pub async fn apply_example(client: &kube::Client, ns: &str) -> String {
    apply_example_edited(client, ns, &super::var("COSMOS_ENDPOINT"), |text| text).await
}

/// [`apply_example`] with the Cosmos DB endpoint the workers are given (`cosmos`: pods reach cosmium at
/// the node address) and `edit` applied to each file's text after the test bed's own changes.
pub async fn apply_example_edited(
    client: &kube::Client,
    ns: &str,
    cosmos: &str,
    edit: impl Fn(String) -> String,
) -> String {
    secret(client, ns, "devices-storage", &super::var("AZURE_STORAGE_KEY")).await;
    secret(client, ns, "devices-cosmos", &super::var("COSMOS_KEY")).await;
    let database = super::unique("telemetry");
    let hub_namespace = super::unique("devices-hubs");
    for file in super::example_files("devices") {
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace(
                "namespace: tributary-devices",
                &format!("namespace: {hub_namespace}"),
            )
            .replace(
                "storageAccount: tributarydevices",
                &format!("storageAccount: {}", super::var("AZURE_STORAGE_ACCOUNT")),
            )
            .replace("https://tributary-devices.documents.azure.com:443/", cosmos)
            .replace("database: telemetry", &format!("database: {database}"));
        super::create_yaml(client, ns, &edit(text)).await;
    }
    database
}

async fn secret(client: &kube::Client, ns: &str, name: &str, key: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"accountKey": key},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
}

/// The worker container's environment with every `secretKeyRef` read from its Secret.
pub async fn deployment_env(
    client: &kube::Client,
    ns: &str,
    deployment: &Deployment,
) -> BTreeMap<String, String> {
    let container = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    super::sidecar::container_env(client, ns, container).await
}
