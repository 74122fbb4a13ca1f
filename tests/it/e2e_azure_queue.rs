//! An order processor draining an Azure Storage Queue, end to end on the test bed: a Queue on azure
//! whose `deadLetter` is a DeadLetter on azure (Storage Queues in Azurite), and an inventory Consumer of
//! it (Order table in moto), reconciled by the controller in this process. The controller renders a
//! `storageQueue` worker with the Queue's dead letter and `maxReceiveCount` (a storage queue has neither)
//! and the account key from the Queue's Secret, and scales on the queue's depth. A `tributary worker`
//! process runs from that ConfigMap: valid orders are reserved, malformed ones are dead-lettered at once
//! and orders for a product missing from the catalogue after their retries, each with its reason. Once
//! the product exists, a `spec.redrive` on the DeadLetter sends every dead letter back to the queue it
//! came from, throttled: the fixed orders are reserved and the malformed ones come back to the dead
//! letter.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeSet,
    process::Command,
    time::{Duration, Instant},
};

use azure_storage_queue::models::QueueMessage;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tributary::worker::{
    config::WorkerConfig,
    orders::{
        model::{Delivery, Item, OrderEvent, OrderRequest, states},
        store::OrderStore,
        table::OrderTable,
    },
};

const CONVERGE: Duration = Duration::from_secs(60);
const ORDERS: usize = 40;

fn azure(kind: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n  provider: azure\n  azure:\n    storageAccount: {account}\n    accountKeySecretRef: {{name: storage, key: accountKey}}\n{extra}",
        account = common::var("AZURE_STORAGE_ACCOUNT"),
    )
}

fn placed(order_id: &str, sku: &str) -> OrderEvent {
    let request = OrderRequest {
        customer_id: "c-1".into(),
        items: vec![Item {
            sku: sku.into(),
            quantity: 1,
            unit_price_cents: 1000,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Standard,
        idempotency_key: None,
    };
    OrderEvent::placed(order_id, &request)
}

async fn send(queue: &azure_storage_queue::QueueClient, text: String) {
    let message = QueueMessage {
        message_text: Some(text),
    };
    queue
        .send_message(message.try_into().unwrap(), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_storage_queue_consumer_dead_letters_and_a_redrive_after_the_fix_processes_them() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-azq").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::storage_secret(&client, &ns).await;
    let table_name = format!("{ns}-orders");
    common::create_yaml(&client, &ns, &azure("DeadLetter", "reservations-dlq", "")).await;
    let queue_extra = "    visibilityTimeoutSeconds: 10\n  deadLetter: {ref: {name: reservations-dlq}, maxReceiveCount: 4}\n";
    common::create_yaml(&client, &ns, &azure("Queue", "reservations", queue_extra)).await;
    let consumer = format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {{name: inventory}}\nspec:\n  source: {{queueRef: {{name: reservations}}}}\n  processor: inventory\n  sink: {{table: {table_name}}}\n  retry: {{maxAttempts: 2, initialBackoffSeconds: 1, maxBackoffSeconds: 1}}\n  scaling: {{minReplicas: 1, maxReplicas: 3, targetBacklogPerReplica: 20}}\n"
    );
    common::create_yaml(&client, &ns, &consumer).await;
    let queue = common::wait_reason(&client, &ns, "Queue", "reservations", "Available", CONVERGE).await;
    let dead = common::wait_reason(
        &client,
        &ns,
        "DeadLetter",
        "reservations-dlq",
        "Available",
        CONVERGE,
    )
    .await;
    let queue_url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    let dead_url = dead.data["status"]["url"].as_str().unwrap().to_owned();
    common::wait_reason(&client, &ns, "Consumer", "inventory", "Available", CONVERGE).await;

    // The rendered worker: the Storage Queue, the Queue's dead letter and receive limit, the key from the
    // Queue's Secret (never in the ConfigMap).
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("inventory-worker")
        .await
        .unwrap();
    let text = config_map.data.unwrap()["worker.yaml"].clone();
    assert!(
        !text.contains(&common::var("AZURE_STORAGE_KEY")),
        "no key in the ConfigMap"
    );
    let mut config: WorkerConfig = serde_yaml_ng::from_str(&text).unwrap();
    let source = config
        .source
        .storage_queue
        .clone()
        .expect("a storageQueue source");
    assert_eq!(source.queue_url, queue_url);
    assert_eq!(source.account, common::var("AZURE_STORAGE_ACCOUNT"));
    assert_eq!(source.visibility_timeout_seconds, 10);
    assert_eq!(source.max_receive_count, Some(4));
    assert!(config.source.sqs.is_none());
    assert_eq!(config.dead_letter.as_ref().unwrap().queue_url, dead_url);
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("inventory-worker")
        .await
        .unwrap();
    let env =
        serde_json::to_value(&deployment.spec.unwrap().template.spec.unwrap().containers[0].env).unwrap();
    let key_env = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AZURE_STORAGE_KEY")
        .cloned()
        .expect("AZURE_STORAGE_KEY in the worker environment");
    assert_eq!(
        key_env["valueFrom"]["secretKeyRef"],
        json!({"name": "storage", "key": "accountKey", "optional": false})
    );

    // The catalogue lacks `new`; the orders exist (order-ack's part) and their OrderPlaced are queued,
    // every 8th for `new`, plus two messages that are no order at all.
    let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name.clone());
    let sku = |name: &str| format!("{ns}-{name}");
    table.set_stock(&sku("a"), 1_000).await.unwrap();
    let (queues, account) = common::azure_storage();
    let queue_name = queue_url.rsplit('/').next().unwrap().to_owned();
    let queue_client = queues.client(&account, &queue_name).unwrap();
    let mut missing = BTreeSet::new();
    for i in 0..ORDERS {
        let product = if i % 8 == 3 { "new" } else { "a" };
        let event = placed(&format!("o-{ns}-{i}"), &sku(product));
        assert!(table.create_order(&event, "", None).await.unwrap());
        if product == "new" {
            missing.insert(event.order_id.clone());
        }
        let attributes = event
            .attributes()
            .into_iter()
            .map(|(name, data_type, value)| {
                let attribute = tributary::cloud::traits::MessageAttribute {
                    data_type: data_type.to_owned(),
                    string_value: Some(value),
                    binary_value: None,
                };
                (name.to_owned(), attribute)
            })
            .collect();
        let text =
            tributary::cloud::azure::envelope::encode(&serde_json::to_string(&event).unwrap(), &attributes);
        send(&queue_client, text).await;
    }
    let malformed = ["not an order", r#"{"type":"OrderPlaced","orderId":"x-1"}"#];
    for body in malformed {
        send(&queue_client, body.to_owned()).await;
    }

    // The backlog is the queue's depth, before any worker runs; 42 messages at 20 a replica is 3.
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    common::eventually("the backlog and the replicas", CONVERGE, || async {
        let status = consumers.get("inventory").await.ok()?.data["status"].clone();
        (status["backlog"] == json!(ORDERS + 2) && status["lastScale"]["to"] == 3).then_some(())
    })
    .await;

    // The worker, from that configuration, with the key its Deployment takes from the Secret.
    let work = std::env::temp_dir().join(common::unique("e2e-azq"));
    std::fs::create_dir_all(&work).unwrap();
    let metrics_port = common::free_port();
    config.metrics_listen = ([127, 0, 0, 1], metrics_port).into();
    if let Some(storage) = config.source.storage_queue.as_mut() {
        storage.wait_time_seconds = 2;
    }
    let path = work.join("inventory.yaml");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let mut worker = common::spawn_worker(&path, &work.join("inventory.log"));

    let state = |order_id: String| {
        let table = table.clone();
        async move { table.order(&order_id).await.unwrap().map(|o| o.state) }
    };
    let dead_name = dead_url.rsplit('/').next().unwrap().to_owned();
    let dead_client = queues.client(&account, &dead_name).unwrap();
    let started = Instant::now();
    common::eventually("every fine order reserved", CONVERGE, || async {
        for i in 0..ORDERS {
            let id = format!("o-{ns}-{i}");
            if !missing.contains(&id) && state(id).await.as_deref() != Some(states::RESERVED) {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Two rejected at once, five after their two attempts: seven dead letters, each with its reason.
    common::eventually("seven dead letters", CONVERGE, || async {
        let depth = queues.observe(&account, &dead_name).await.unwrap()?.messages;
        (depth == 7).then_some(())
    })
    .await;
    let elapsed = started.elapsed();
    let peeked = common::azure_peek(&dead_client).await;
    let mut reasons = Vec::new();
    for (body, attributes) in &peeked {
        let reason: serde_json::Value =
            serde_json::from_str(&attributes["tributary-dead-letter-reason"]).unwrap();
        assert_eq!(reason["queue"], queue_url, "the origin is recorded: {reason}");
        assert_eq!(reason["consumer"], format!("{ns}/inventory"));
        let text = reason["reason"].as_str().unwrap().to_owned();
        if malformed.contains(&body.as_str()) {
            assert!(
                text.contains("not an order event") || text.contains("not an order id"),
                "{text}"
            );
        } else {
            let event: OrderEvent = serde_json::from_str(body).unwrap();
            assert!(missing.contains(&event.order_id), "{body}");
            assert!(text.contains("has no stock record"), "{text}");
            assert_eq!(attributes["event"], "OrderPlaced", "attributes kept");
        }
        reasons.push(text);
    }
    assert_eq!(reasons.len(), 7, "{reasons:?}");

    // The fix, then the redrive: each back to the queue it came from, at most 5 a second.
    table.set_stock(&sku("new"), 1_000).await.unwrap();
    let dead_letters_api = common::tributary_api(&client, &ns, "DeadLetter");
    let redrive = json!({"spec": {"redrive": {"id": "catalogue-fix", "maxMessagesPerSecond": 5}}});
    let redrive_started = Instant::now();
    dead_letters_api
        .patch(
            "reservations-dlq",
            &PatchParams::default(),
            &Patch::Merge(&redrive),
        )
        .await
        .unwrap();
    let last = common::eventually("the redrive to finish", CONVERGE, || async {
        let last = dead_letters_api.get("reservations-dlq").await.ok()?.data["status"]["lastRedrive"].clone();
        (last["id"] == "catalogue-fix" && last["state"] != "Running").then_some(last)
    })
    .await;
    let redrive_seconds = redrive_started.elapsed().as_secs_f64();
    assert_eq!(last["state"], "Completed", "{last}");
    assert_eq!(last["moved"], 7, "{last}");
    assert!(
        redrive_seconds >= 1.0,
        "7 messages at 5 a second take more than a second, took {redrive_seconds:.2} s"
    );
    common::eventually("the fixed orders reserved", CONVERGE, || async {
        for id in &missing {
            if state(id.clone()).await.as_deref() != Some(states::RESERVED) {
                return None;
            }
        }
        Some(())
    })
    .await;
    // The malformed ones are still malformed: back in the dead letter, and only they.
    let back = common::eventually("the malformed ones dead-lettered again", CONVERGE, || async {
        let peeked = common::azure_peek(&dead_client).await;
        (peeked.len() == 2).then_some(peeked)
    })
    .await;
    let bodies: BTreeSet<&str> = back.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, malformed.into_iter().collect());
    println!(
        "azure queue pipeline: {ORDERS} orders + 2 malformed settled in {:.1} s; redrive of 7 at 5/s took {redrive_seconds:.1} s",
        elapsed.as_secs_f64()
    );

    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    assert!(worker.wait().unwrap().success(), "a clean shutdown");
    controller.stop().await;
    let _ = std::fs::remove_dir_all(&work);
}
