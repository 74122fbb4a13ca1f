//! DeviceStream: Event Hubs through Resource Manager, reconciled by the controller in this process against
//! the tests' ARM fake (`common::arm_fake`, a fake that follows the documented contract: no ARM emulator
//! exists) whose hubs are topics on the test bed's Kafka broker. A missing namespace is waited for; one
//! created on request goes through the long-running-operation protocol; the hub gets its partitions,
//! retention and consumer groups, the connection Secret works with the broker, steady state makes no
//! writes, drift is corrected, partitions grow, a foreign hub is refused until adopted, and deletion
//! follows `deletionPolicy`.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";

fn stream_yaml(name: &str, azure: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: DeviceStream\nmetadata: {{name: {name}}}\nspec:\n  provider: azure\n  azure:\n{azure}{spec_extra}"
    )
}

fn namespace_id(namespace: &str) -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/plant/providers/Microsoft.EventHub/namespaces/{namespace}"
    )
}

/// Partitions of `topic` on the broker, through the connection Secret's own settings.
fn broker_partitions(secret: &Secret, topic: &str) -> usize {
    let data = secret.data.as_ref().unwrap();
    let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", text("bootstrapServers"))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", text("saslUsername"))
        .set("sasl.password", text("connectionString"))
        .set("ssl.ca.location", common::var("KAFKA_CA_FILE"))
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions().len()
}

#[tokio::test]
async fn event_hubs_are_provisioned_corrected_adopted_and_deleted() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-hubs").await;
    let fake = common::arm_fake().await;
    let event_hubs = common::event_hubs_config(&fake, SUBSCRIPTION, "plant");
    let controller =
        common::start_controller_with(&client, &ns, &common::aws_config().await, Some(event_hubs)).await;
    let streams = common::tributary_api(&client, &ns, "DeviceStream");
    let hub_namespace = common::unique("plant-hubs");
    common::tenant_policy(&client, &ns, json!({"allowAdoption": true})).await;

    // The namespace does not exist and is not to be created: waited for, with the reason.
    let waiting = "    namespace: missing-namespace\n";
    common::create_yaml(&client, &ns, &stream_yaml("waiting", waiting, "")).await;
    let object = common::wait_reason(
        &client,
        &ns,
        "DeviceStream",
        "waiting",
        "DependencyNotReady",
        CONVERGE,
    )
    .await;
    let (_, _, message, _) = common::condition(&object, "Ready").unwrap();
    assert!(
        message.contains("namespace missing-namespace does not exist"),
        "{message}"
    );

    // Created on request: the namespace through its asynchronous operation, then the hub.
    let azure = format!(
        "    namespace: {hub_namespace}\n    createNamespace: true\n    location: westeurope\n    partitions: 4\n    retentionHours: 24\n    consumerGroups: [analytics]\n"
    );
    common::create_yaml(&client, &ns, &stream_yaml("telemetry", &azure, "")).await;
    let ready = common::wait_reason(&client, &ns, "DeviceStream", "telemetry", "Available", CONVERGE).await;
    assert_eq!(ready.data["status"]["partitions"], 4);
    assert_eq!(
        ready.data["status"]["kafkaEndpoint"],
        common::var("KAFKA_BOOTSTRAP")
    );
    assert_eq!(ready.data["status"]["connectionSecretName"], "telemetry-eventhub");
    let namespace = fake.resource(&namespace_id(&hub_namespace)).unwrap();
    assert_eq!(namespace["properties"]["provisioningState"], "Succeeded");
    assert_eq!(namespace["sku"]["name"], "Standard");
    assert_eq!(namespace["properties"]["kafkaEnabled"], true);
    let hub_name = format!("{ns}_telemetry");
    assert_eq!(ready.data["status"]["hubName"], hub_name.as_str());
    let hub_id = format!("{}/eventhubs/{hub_name}", namespace_id(&hub_namespace));
    let hub = fake.resource(&hub_id).unwrap();
    assert_eq!(
        hub["properties"]["retentionDescription"]["retentionTimeInHours"],
        24
    );
    assert!(
        hub["properties"]["userMetadata"]
            .as_str()
            .unwrap()
            .contains("DeviceStream")
    );
    assert!(
        fake.resource(&format!("{hub_id}/consumergroups/analytics"))
            .is_some()
    );
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    let secret = secrets.get("telemetry-eventhub").await.unwrap();
    assert_eq!(
        secret.metadata.owner_references.as_ref().unwrap()[0].kind,
        "DeviceStream"
    );
    assert_eq!(
        broker_partitions(&secret, &hub_name),
        4,
        "the Secret reaches the hub's topic"
    );

    // Steady state: resyncs (every 3 s) read but do not write.
    let puts = fake.count("PUT");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(fake.count("PUT"), puts, "no writes while nothing changes");

    // Drift made outside is corrected at the next resync.
    fake.tamper(
        &hub_id,
        "/properties/retentionDescription/retentionTimeInHours",
        json!(48),
    );
    common::eventually("retention corrected", CONVERGE, || async {
        let hub = fake.resource(&hub_id)?;
        (hub["properties"]["retentionDescription"]["retentionTimeInHours"] == 24).then_some(())
    })
    .await;

    // Partitions grow with the spec, on the broker too.
    streams
        .patch(
            "telemetry",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"azure": {"partitions": 6}}})),
        )
        .await
        .unwrap();
    common::eventually("6 partitions in status", CONVERGE, || async {
        let object = streams.get("telemetry").await.ok()?;
        (object.data["status"]["partitions"] == 6).then_some(())
    })
    .await;
    assert_eq!(broker_partitions(&secret, &hub_name), 6);

    // A hub someone else made is refused, then adopted when asked; it is kept on deletion (Retain).
    let foreign_id = format!("{}/eventhubs/foreign", namespace_id(&hub_namespace));
    fake.insert(
        &foreign_id,
        json!({"name": "foreign", "properties": {"partitionCount": 2, "retentionDescription": {"retentionTimeInHours": 24}, "status": "Active"}}),
    );
    let foreign = format!("    namespace: {hub_namespace}\n    hubName: foreign\n    partitions: 2\n");
    common::create_yaml(
        &client,
        &ns,
        &stream_yaml("foreign", &foreign, "  deletionPolicy: Retain\n"),
    )
    .await;
    let refused =
        common::wait_reason(&client, &ns, "DeviceStream", "foreign", "AlreadyExists", CONVERGE).await;
    let (_, _, message, _) = common::condition(&refused, "Ready").unwrap();
    assert!(message.contains("spec.adopt"), "{message}");
    streams
        .patch(
            "foreign",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"adopt": true}})),
        )
        .await
        .unwrap();
    common::wait_reason(&client, &ns, "DeviceStream", "foreign", "Available", CONVERGE).await;
    assert!(
        fake.resource(&foreign_id).unwrap()["properties"]["userMetadata"]
            .as_str()
            .unwrap()
            .contains("foreign")
    );

    // Deletion: ours is deleted through the asynchronous operation; the retained one stays.
    for name in ["telemetry", "foreign", "waiting"] {
        streams.delete(name, &DeleteParams::default()).await.unwrap();
    }
    common::eventually("DeviceStreams gone", CONVERGE, || async {
        streams
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(fake.resource(&hub_id).is_none(), "our hub is deleted");
    assert!(fake.resource(&foreign_id).is_some(), "the retained hub is kept");
    controller.stop().await;
}
