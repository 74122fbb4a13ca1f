//! The device pipeline with its worker in a pod on the test bed's real node (issue 22): the chart is
//! installed by Helm into a namespace whose pods all run on the node, with the test bed's values
//! (testbed/node-values.sh): the controller, in a pod, makes the Event Hub through the Resource Manager
//! fake this test runs (a topic on the Kafka broker, whose listener for pods is advertised on the node
//! address), the dead-letter Storage Queue in Azurite and the device processor's Deployment. The worker
//! pod reads the hub through that listener (SASL_SSL, the broker's CA shipped in its ConfigMap) and writes
//! cosmium at the node address. This process only sends the events (through the broker's host listener:
//! the same topic) and reads the results: every valid event is one document, every malformed one is in
//! the dead letter with its reason, and the consumer group has no lag.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, api::PostParams};
use serde_json::json;
use tributary::cloud::azure::cosmos::{ContainerAddress, CosmosContainer};

use super::pods_orders::{print_start_times, worker_pods};

const CONVERGE: Duration = Duration::from_secs(90);
const EVENTS: usize = 2_000;

/// Applies examples/devices into `ns`, pointed at the test bed as pods see it (cosmium at the node
/// address): a hub namespace and a Cosmos DB database of its own (returned). The worker is kept to one
/// small pod.
async fn apply_example(client: &kube::Client, ns: &str) -> String {
    let cosmos = common::node::pod_url(&common::var("COSMOS_ENDPOINT"));
    common::devices_bed::apply_example_edited(client, ns, &cosmos, |text| {
        text.replace(
            "scaling: {minReplicas: 1, maxReplicas: 4, targetBacklogPerReplica: 1000}",
            "scaling: {minReplicas: 1, maxReplicas: 1}\n  resources: {requests: {cpu: 10m, memory: 48Mi}, limits: {memory: 256Mi}}",
        )
    })
    .await
}

#[tokio::test]
async fn device_events_reach_cosmos_db_through_the_worker_in_a_pod_and_nothing_is_lost() {
    let _bed = common::shared().await;
    let started = Instant::now();
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::node::real_node_namespace(&client, "pods-devices").await;
    // The Resource Manager fake, where the chart's values send the controller (TESTBED_NODE_ARM_URL is
    // this listener at the node address), also its managed identity; its hubs are topics on the broker.
    let _arm = common::arm_fake::ArmFake::start(
        &common::var("TESTBED_ARM_LISTEN"),
        common::arm_fake::Broker {
            bootstrap: common::var("KAFKA_BOOTSTRAP"),
            username: common::var("KAFKA_SASL_USERNAME"),
            password: common::var("KAFKA_SASL_PASSWORD"),
            ca_file: common::var("KAFKA_CA_FILE"),
        },
    )
    .await;
    // cosmium's certificate is the test bed's: the Cosmos DB SDK's own switch for an emulator,
    // AZURE_COSMOS_EMULATOR_HOST, names the node address, in the workers' env Secret.
    let env_secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "device-worker-env"},
        "stringData": {
            "AZURE_COSMOS_EMULATOR_HOST": common::node::node_ip(),
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &env_secret)
        .await
        .unwrap();
    let release = common::helm::install(&ns, &["--set", "workers.envSecret=device-worker-env"]).await;
    // The webhook's pods are Ready before kube-proxy routes its Service: until then every create fails.
    release.wait_webhook_serving().await;
    let database = apply_example(&client, &ns).await;
    let dlq_url = common::devices_bed::wait_available(&client, &ns, CONVERGE).await;
    let ready = started.elapsed();
    let dlq_name = dlq_url.rsplit('/').next().unwrap().to_owned();

    // The worker reads the broker where pods reach it, with the CA the controller shipped beside its
    // configuration (its own file is not in the pod).
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let rendered = config_maps
        .get("device-processor-worker")
        .await
        .unwrap()
        .data
        .unwrap();
    let config: tributary::worker::config::WorkerConfig =
        serde_yaml_ng::from_str(&rendered["worker.yaml"]).unwrap();
    let kafka = config.source.kafka.as_ref().unwrap();
    assert!(
        kafka.bootstrap_servers.starts_with(&common::node::node_ip()),
        "{kafka:?}"
    );
    assert_eq!(kafka.ca_file.as_deref(), Some("/etc/tributary/kafka-ca.crt"));
    assert!(rendered["kafka-ca.crt"].contains("BEGIN CERTIFICATE"));

    let topic = format!("{ns}_telemetry");
    let producer = common::devices_bed::DeviceBed::producer(Duration::from_secs(60));
    let (valid, malformed) = common::devices_bed::send(&producer, &topic, "pods", 0..EVENTS).await;
    let sent = started.elapsed();

    // Every valid event becomes its document; each read once found is not read again.
    let container = CosmosContainer::open(
        &ContainerAddress {
            endpoint: common::var("COSMOS_ENDPOINT"),
            key: common::var("COSMOS_KEY"),
            database,
            container: "readings".into(),
            partition_key_path: "/deviceId".into(),
            preferred_region: "East US".into(),
        },
        true,
    )
    .await
    .unwrap();
    let deadline = Instant::now() + CONVERGE;
    let mut pending = valid.clone();
    while !pending.is_empty() {
        let container = &container;
        pending = futures::stream::iter(pending)
            .map(|(device, id)| async move {
                let found =
                    matches!(container.read(&device, &id).await, Ok(Some(d)) if d["id"] == id.as_str());
                (!found).then_some((device, id))
            })
            .buffer_unordered(16)
            .filter_map(|missing| async move { missing })
            .collect()
            .await;
        assert!(
            Instant::now() < deadline,
            "{} of {} valid events have no document, e.g. {:?}; worker pods: {:?}",
            pending.len(),
            valid.len(),
            pending.first(),
            worker_pods(&client, &ns, "device-processor")
                .await
                .iter()
                .map(|p| (
                    p.metadata.name.clone(),
                    p.status.as_ref().and_then(|s| s.phase.clone())
                ))
                .collect::<Vec<_>>()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let written = started.elapsed();

    // Every malformed event is in the dead letter once, with the reason.
    let want: BTreeSet<String> = malformed.iter().cloned().collect();
    let dead = common::eventually("every malformed event dead-lettered", CONVERGE, || {
        let (dlq_name, want) = (dlq_name.clone(), want.clone());
        async move {
            let dlq = common::azure_queue_service().queue_client(&dlq_name).ok()?;
            let read = common::azure_read(&dlq, 2).await;
            let bodies: BTreeSet<String> = read.iter().map(|(b, _)| b.clone()).collect();
            (bodies == want).then_some(read)
        }
    })
    .await;
    assert_eq!(dead.len(), want.len(), "each once");
    assert!(
        dead.iter()
            .all(|(_, a)| a.contains_key("tributary-dead-letter-reason")),
        "{:?}",
        dead.first()
    );

    // And the group has read everything.
    let endpoint = common::devices_bed::endpoint();
    common::eventually("no lag", CONVERGE, || {
        let (endpoint, topic) = (endpoint.clone(), topic.clone());
        async move {
            let lag = tokio::task::spawn_blocking(move || {
                tributary::cloud::azure::kafka::lag(
                    &endpoint,
                    &topic,
                    "device-processor",
                    Duration::from_secs(5),
                )
            })
            .await
            .unwrap()
            .ok()?;
            (lag.total == 0).then_some(())
        }
    })
    .await;
    print_start_times(&client, &ns, "pods_devices").await;
    eprintln!(
        "pods_devices: Helm release Ready after {:.1}s, pipeline Available after {:.1}s; {EVENTS} events sent by {:.1}s; {} documents by {:.1}s",
        release.ready_after.as_secs_f64(),
        ready.as_secs_f64(),
        sent.as_secs_f64(),
        valid.len(),
        written.as_secs_f64()
    );
}
