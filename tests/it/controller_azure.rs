//! Queue and DeadLetter on `azure`: Storage Queues in Azurite, reconciled by the controller in this process.
//! A missing account-key Secret is waited for; queues are created with ownership marks in their metadata
//! and status shows URL and depth; a queue that is not ours is refused until `adopt: true`; deletion
//! removes ours and `deletionPolicy: Retain` keeps it; a Queue's dead letter must be on azure too.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tributary::cloud::azure::storage_queues::{Account, StorageQueues};

const CONVERGE: Duration = Duration::from_secs(30);

fn azure_yaml(kind: &str, name: &str, azure_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n  provider: azure\n  azure:\n    storageAccount: {account}\n    accountKeySecretRef: {{name: storage, key: accountKey}}\n{azure_extra}{spec_extra}",
        account = common::var("AZURE_STORAGE_ACCOUNT"),
    )
}

fn status_str(object: &kube::api::DynamicObject, field: &str) -> String {
    object.data["status"][field]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn gone(queues: &StorageQueues, account: &Account, name: &str) {
    common::eventually(&format!("Storage Queue {name} deleted"), CONVERGE, || async {
        queues
            .observe(account, name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn storage_queues_are_created_refused_adopted_and_deleted() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-azure").await;
    let controller = common::start_controller(&client, &ns, &common::aws_config().await).await;
    let (queues, account) = common::azure_storage();
    common::tenant_policy(&client, &ns, json!({"allowAdoption": true})).await;

    // Without the Secret the dead letter waits for it, then comes up once it exists.
    let retained = "  deletionPolicy: Retain\n";
    common::create_yaml(&client, &ns, &azure_yaml("DeadLetter", "dead", "", retained)).await;
    let waiting =
        common::wait_reason(&client, &ns, "DeadLetter", "dead", "DependencyNotReady", CONVERGE).await;
    let (_, _, message, _) = common::condition(&waiting, "Ready").unwrap();
    assert!(message.contains("Secret storage does not exist"), "{message}");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "storage"},
        "stringData": {"accountKey": common::var("AZURE_STORAGE_KEY")},
    }))
    .unwrap();
    kube::Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let dead = common::wait_reason(&client, &ns, "DeadLetter", "dead", "Available", CONVERGE).await;
    let dead_name = tributary::cloud::names::hashed_dns(&ns, "dead", 63);
    assert!(
        status_str(&dead, "url").ends_with(&format!("/{dead_name}")),
        "{dead:?}"
    );
    let observed = queues
        .observe(&account, &dead_name)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(observed.metadata["tributary_kind"], "DeadLetter");
    assert_eq!(observed.metadata["tributary_namespace"], ns);
    assert_eq!(observed.metadata["tributary_cluster"], common::TEST_CLUSTER);

    // A Queue with that dead letter: created, depth in status.
    let dead_letter = "  deadLetter: {ref: {name: dead}, maxReceiveCount: 3}\n";
    common::create_yaml(&client, &ns, &azure_yaml("Queue", "orders", "", dead_letter)).await;
    let orders = common::wait_reason(&client, &ns, "Queue", "orders", "Available", CONVERGE).await;
    assert_eq!(orders.data["status"]["depth"], 0);
    let orders_name = tributary::cloud::names::hashed_dns(&ns, "orders", 63);
    assert_eq!(
        queues
            .observe(&account, &orders_name)
            .await
            .unwrap()
            .unwrap()
            .metadata["tributary_name"],
        "orders"
    );

    // A queue that exists and is not ours is refused, then adopted with adopt: true.
    let legacy = format!("{ns}-legacy").to_lowercase();
    queues
        .create(&account, &legacy, &Default::default())
        .await
        .unwrap();
    let named = format!("    name: {legacy}\n");
    common::create_yaml(&client, &ns, &azure_yaml("Queue", "legacy", &named, "")).await;
    let refused = common::wait_reason(&client, &ns, "Queue", "legacy", "AlreadyExists", CONVERGE).await;
    let (status, _, message, _) = common::condition(&refused, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(
        message.contains("not created by Tributary") && message.contains("adopt"),
        "{message}"
    );
    let api = common::tributary_api(&client, &ns, "Queue");
    api.patch(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"adopt": true}})),
    )
    .await
    .unwrap();
    common::wait_reason(&client, &ns, "Queue", "legacy", "Available", CONVERGE).await;
    let adopted = queues.observe(&account, &legacy).await.unwrap().unwrap();
    assert_eq!(adopted.metadata["tributary_name"], "legacy");

    // A dead letter on another provider is refused by name.
    let aws_dead = "apiVersion: tributary.dev/v1alpha1\nkind: DeadLetter\nmetadata: {name: sqs-dead}\nspec:\n  provider: aws\n  aws: {}\n";
    common::create_yaml(&client, &ns, aws_dead).await;
    let mixed = "  deadLetter: {ref: {name: sqs-dead}, maxReceiveCount: 3}\n";
    common::create_yaml(&client, &ns, &azure_yaml("Queue", "mixed", "", mixed)).await;
    let refused = common::wait_reason(&client, &ns, "Queue", "mixed", "InvalidSpec", CONVERGE).await;
    let (_, _, message, _) = common::condition(&refused, "Ready").unwrap();
    assert!(
        message.contains("spec.deadLetter.ref") && message.contains("is on aws"),
        "{message}"
    );

    // Deleting removes ours; Retain keeps the dead letter's queue.
    for name in ["orders", "legacy", "mixed"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    gone(&queues, &account, &orders_name).await;
    gone(&queues, &account, &legacy).await;
    let dead_letters = common::tributary_api(&client, &ns, "DeadLetter");
    for name in ["dead", "sqs-dead"] {
        dead_letters.delete(name, &DeleteParams::default()).await.unwrap();
    }
    common::eventually("the DeadLetters gone", CONVERGE, || {
        let dead_letters = dead_letters.clone();
        async move { dead_letters.get_opt("dead").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(
        queues.observe(&account, &dead_name).await.unwrap().is_some(),
        "deletionPolicy Retain keeps the Storage Queue"
    );
    queues.delete(&account, &dead_name).await.unwrap();
    controller.stop().await;
}
