//! Consumers of Azure sources against the Azure fake: a Storage Queue's approximate message count and a
//! DeviceStream consumer group's lag are the backlog the replicas follow; the keys reach the workers as
//! environment from their Secrets, never through the ConfigMap or the status.

use k8s_openapi::api::core::v1::EnvVar;

use super::*;
use crate::{
    api::{DeviceStream, device_stream::DeviceStreamStatus},
    cloud::{
        StorageQueueAdmin as _,
        azure::{kafka::Lag, storage_queues::Account},
    },
};

const ACCOUNT: &str = "acct";
/// The account key, in Secret `acct-key`.
const KEY: &str = "c2VjcmV0LWFjY291bnQta2V5";
/// The Storage Queue of Queue `jobs`, and its URL in the fake.
const STORAGE_QUEUE: &str = "shop-jobs";
const STORAGE_URL: &str = "https://acct.queue.fake/shop-jobs";

/// Queue `jobs` on azure with its Storage Queue (`messages` in it) and its key Secret.
fn storage_jobs(h: &mut Harness, messages: i64) {
    let mut queue: Queue = object(
        "jobs",
        json!({"provider": "azure", "azure": {"storageAccount": ACCOUNT, "name": STORAGE_QUEUE,
               "accountKeySecretRef": {"name": "acct-key", "key": "key"}}}),
    );
    queue.status = Some(QueueStatus {
        observed: QueueObservation {
            url: Some(STORAGE_URL.into()),
            ..QueueObservation::default()
        },
        ..QueueStatus::default()
    });
    h.store(queue);
    h.azure.add_storage_queue(ACCOUNT, STORAGE_QUEUE, &[]);
    h.azure.set_message_count(ACCOUNT, STORAGE_QUEUE, messages, None);
    h.azure.set_account_key(ACCOUNT, KEY);
    h.secret("acct-key", "key", KEY);
}

/// The worker container's variables.
fn worker_env(h: &Harness) -> Vec<EnvVar> {
    let deployment: Deployment = child(h).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    pod.containers[0].env.clone().unwrap_or_default()
}

/// The Secret and key variable `name` is read from.
fn from_secret(env: &[EnvVar], name: &str) -> (String, String) {
    let var = env
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(var.value, None, "{name} has no literal value");
    let source = var.value_from.clone().unwrap().secret_key_ref.unwrap();
    (source.name, source.key)
}

/// Whether any request to the API carried `text`.
fn sent_anywhere(h: &Harness, text: &str) -> bool {
    h.api.sent().iter().any(|s| s.body.to_string().contains(text))
}

#[tokio::test]
async fn a_storage_queue_consumer_scales_on_the_queues_message_count() {
    let mut h = Harness::new();
    storage_jobs(&mut h, 250);
    let applied = apply(&h, &of_jobs()).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        [format!("GetQueueMetadata {ACCOUNT}/{STORAGE_QUEUE}")]
    );
    assert_eq!(applied.status.backlog, Some(250));
    let deployment: Deployment = child(&h).unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(3), "⌈250 / 100⌉");
    let config = worker_yaml(&h);
    assert!(
        config.contains(STORAGE_URL) && config.contains(ACCOUNT),
        "{config}"
    );

    h.azure.set_message_count(ACCOUNT, STORAGE_QUEUE, 0, None);
    let mut idle = scaled_from(&of_jobs(), &applied.status);
    idle.spec.scaling.scale_down_stabilization_seconds = 0;
    let applied = apply(&h, &idle).await.unwrap();
    assert_eq!(applied.status.backlog, Some(0));
    assert_eq!(
        child::<Deployment>(&h).unwrap().spec.unwrap().replicas,
        Some(1),
        "down to minReplicas (no stabilization window)"
    );
}

#[tokio::test]
async fn an_old_oldest_message_adds_a_replica_though_the_count_is_under_target() {
    let mut h = Harness::new();
    storage_jobs(&mut h, 20);
    h.azure.set_message_count(ACCOUNT, STORAGE_QUEUE, 20, Some(900));
    let mut jobs = of_jobs();
    jobs.spec.scaling.signals.max_oldest_message_age_seconds = Some(300);
    jobs.spec.scaling.signals.scale_up_observations = 1;
    let first = apply(&h, &jobs).await.unwrap();
    assert_eq!(
        h.new_azure_calls(),
        [
            format!("GetQueueMetadata {ACCOUNT}/{STORAGE_QUEUE}"),
            format!("PeekMessages {ACCOUNT}/{STORAGE_QUEUE}")
        ],
        "the age is read (a peek) only when the Consumer scales on it"
    );
    let running = scaled_from(&jobs, &first.status);
    let applied = apply(&h, &running).await.unwrap();
    let decision = applied.status.last_scale.unwrap();
    assert_eq!(
        (decision.from, decision.to),
        (1, 2),
        "20 messages ask for one; their age for one more"
    );
    assert_eq!(decision.reason, "oldest message 900 s old, over 300 s");
    h.azure.set_message_count(ACCOUNT, STORAGE_QUEUE, 20, Some(60));
    let young = apply(&h, &scaled_from(&jobs, &first.status)).await.unwrap();
    assert_eq!(
        young.status.last_scale.map(|d| d.to),
        Some(1),
        "young: the count decides"
    );
}

/// `consumer` with `status`, its last scale decision made long ago.
fn scaled_from(consumer: &Consumer, status: &ConsumerStatus) -> Consumer {
    let mut consumer = consumer.clone();
    let mut status = status.clone();
    if let Some(decision) = status.last_scale.as_mut() {
        decision.time = "2026-01-01T00:00:00Z".into();
    }
    consumer.status = Some(status);
    consumer
}

#[tokio::test]
async fn the_storage_account_key_reaches_the_workers_from_its_secret_only() {
    let mut h = Harness::new();
    storage_jobs(&mut h, 5);
    let status = apply(&h, &of_jobs()).await.unwrap().status;
    let env = worker_env(&h);
    assert_eq!(
        from_secret(&env, "AZURE_STORAGE_KEY"),
        ("acct-key".to_owned(), "key".to_owned())
    );
    assert!(!worker_yaml(&h).contains(KEY));
    assert!(!serde_json::to_string(&status).unwrap().contains(KEY));
    assert!(!sent_anywhere(&h, KEY), "the key is in no request");
}

#[tokio::test]
async fn the_queues_key_is_what_signs_the_backlog_read() {
    let mut h = Harness::new();
    storage_jobs(&mut h, 5);
    h.secret("acct-key", "key", "a-stale-key");
    let refused = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(refused.reason(), "CloudRejected");
    assert!(
        refused.condition_message().contains("AuthenticationFailed"),
        "{refused}"
    );
    assert!(patched_paths(&h).is_empty());

    h.secret("acct-key", "other", KEY);
    h.new_azure_calls();
    let waiting = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    let message = waiting.condition_message();
    assert!(
        message.starts_with("spec.source.queueRef: Queue jobs: ")
            && message.contains("Secret acct-key has no key key"),
        "the Queue's Secret, named as the Queue's: {message}"
    );
    assert!(h.new_azure_calls().is_empty(), "nothing asked without the key");
}

#[tokio::test]
async fn a_storage_queue_gone_from_the_account_is_waited_for() {
    let mut h = Harness::new();
    storage_jobs(&mut h, 5);
    h.azure
        .fail_next("GetQueueMetadata", crate::cloud::ErrorKind::Transient);
    let failed = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(failed.reason(), "CloudUnavailable");

    let account = Account {
        name: ACCOUNT.into(),
        key: KEY.into(),
    };
    h.azure.delete(&account, STORAGE_QUEUE).await.unwrap();
    let waiting = apply(&h, &of_jobs()).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting
            .condition_message()
            .contains(&format!("Storage Queue {STORAGE_QUEUE} does not exist")),
        "{waiting}"
    );
    assert!(patched_paths(&h).is_empty());
}

/// The hub of DeviceStream `telemetry`, its group and its connection string.
const HUB: &str = "telemetry-hub";
const GROUP: &str = "devices";
const CONNECTION: &str = "Endpoint=sb://shop-ns.servicebus.windows.net/;SharedAccessKey=bGlzdGVu";

/// DeviceStream `telemetry` with 4 partitions and the group `devices`, ready; its connection Secret in
/// the API when `connection`.
fn telemetry(h: &mut Harness, connection: bool) {
    let mut stream: DeviceStream = object(
        "telemetry",
        json!({"provider": "azure", "azure": {"namespace": "shop-ns", "partitions": 4,
               "consumerGroups": [GROUP]}}),
    );
    stream.status = Some(DeviceStreamStatus {
        kafka_endpoint: Some("shop-ns.servicebus.windows.net:9093".into()),
        connection_secret_name: Some("telemetry-connection".into()),
        partitions: Some(4),
        hub_name: Some(HUB.into()),
        ..DeviceStreamStatus::default()
    });
    h.store(stream);
    if connection {
        h.secret("telemetry-connection", "connectionString", CONNECTION);
    }
}

fn device_consumer() -> Consumer {
    consumer(json!({
        "source": {"deviceStreamRef": {"name": "telemetry", "consumerGroup": GROUP}},
        "processor": "device",
        "sink": {"cosmos": {"endpoint": "https://shop.documents.azure.com", "database": "d",
                            "container": "c", "keySecretRef": {"name": "cosmos-key", "key": "key"}}},
    }))
}

#[tokio::test]
async fn a_device_consumer_scales_on_its_groups_lag_capped_at_the_partitions() {
    let mut h = Harness::new();
    telemetry(&mut h, true);
    h.azure.set_lag(
        HUB,
        GROUP,
        Lag {
            partitions: 4,
            total: 150,
        },
    );
    let applied = apply(&h, &device_consumer()).await.unwrap();
    assert_eq!(h.new_azure_calls(), [format!("Lag {HUB} in group {GROUP}")]);
    assert!(
        h.new_calls().is_empty(),
        "no Order table for the device processor"
    );
    assert_eq!(applied.status.backlog, Some(150));
    assert_eq!(child::<Deployment>(&h).unwrap().spec.unwrap().replicas, Some(2));

    h.azure.set_lag(
        HUB,
        GROUP,
        Lag {
            partitions: 4,
            total: 2_500,
        },
    );
    let applied = apply(&h, &device_consumer()).await.unwrap();
    assert_eq!(applied.status.backlog, Some(2_500));
    assert_eq!(
        child::<Deployment>(&h).unwrap().spec.unwrap().replicas,
        Some(4),
        "not 5 (maxReplicas): a fifth reader would have no partition"
    );
}

#[tokio::test]
async fn a_device_consumers_secrets_reach_the_workers_from_their_secrets_only() {
    let mut h = Harness::new();
    telemetry(&mut h, true);
    h.azure.set_lag(HUB, GROUP, Lag::default());
    let status = apply(&h, &device_consumer()).await.unwrap().status;
    let env = worker_env(&h);
    assert_eq!(
        from_secret(&env, "KAFKA_SASL_PASSWORD"),
        ("telemetry-connection".to_owned(), "connectionString".to_owned())
    );
    assert_eq!(
        from_secret(&env, "AZURE_COSMOS_KEY"),
        ("cosmos-key".to_owned(), "key".to_owned())
    );
    let config = worker_yaml(&h);
    assert!(
        config.contains(HUB) && !config.contains("SharedAccessKey"),
        "{config}"
    );
    assert!(
        !serde_json::to_string(&status)
            .unwrap()
            .contains("SharedAccessKey")
    );
    assert!(
        !sent_anywhere(&h, "SharedAccessKey"),
        "the connection string is in no request"
    );
}

#[tokio::test]
async fn a_device_consumer_waits_for_its_streams_connection_secret_by_name() {
    let mut h = Harness::new();
    telemetry(&mut h, false);
    let waiting = apply(&h, &device_consumer()).await.unwrap_err();
    assert_eq!(waiting.reason(), "DependencyNotReady");
    assert!(
        waiting.condition_message().contains(
            "spec.source.deviceStreamRef (the DeviceStream's connection Secret): Secret \
             telemetry-connection does not exist"
        ),
        "{waiting}"
    );
    assert!(h.new_azure_calls().is_empty());
    assert!(patched_paths(&h).is_empty());

    // A lag the broker cannot give (the hub is gone) is a failure to retry, not a backlog of zero.
    h.secret("telemetry-connection", "connectionString", CONNECTION);
    let failed = apply(&h, &device_consumer()).await.unwrap_err();
    assert_eq!(failed.reason(), "CloudUnavailable");
    assert!(patched_paths(&h).is_empty());
}
