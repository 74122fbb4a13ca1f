//! The user's own processor end to end on the test bed, from each source kind: the event audit example
//! (`examples/custom/audit.py`, Python, standard library only) behind an SQS Queue, an Azure Storage
//! Queue and a DeviceStream (Event Hubs through the Kafka endpoint), each from its example manifest with
//! the test bed's accounts put in, reconciled by the controller in this process. The controller renders
//! `processor: container` with the `delivery` section and the user's container as a native sidecar; the
//! test bed runs that sidecar as a local process (kwok nodes run no containers; see
//! `support/sidecar.rs`) and a `tributary worker` process from the ConfigMap. Each test sends good
//! events and poisoned ones (not a JSON object): every good one is recorded in the audit log exactly
//! once, each poisoned one is in the DeadLetter with `HTTP 400` and the container's answer as reason.
//! The SQS case also checks the CloudEvent attributes the container saw and the reply CloudEvents the
//! worker published to the sink Topic.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::Api;
use serde_json::{Value, json};

use common::sidecar::{Sidecar, spawn_sidecar};

const CONVERGE: Duration = Duration::from_secs(60);
/// Good events per source.
const GOOD: usize = 20;
/// The poisoned bodies each source gets: not a JSON object.
const POISONED: [&str; 3] = ["not json at all", "[1, 2, 3]", "{\"truncated\": "];
/// The example's image prefix, which the TenantPolicy of each test's namespace allows.
const IMAGES: &str = "registry.example.com/tributary-examples/*";

/// The `i`th good event of a test.
fn good(tag: &str, i: usize) -> String {
    json!({"seq": format!("{tag}-{i:03}"), "totalCents": 2500 * i}).to_string()
}

/// A worker and its sidecar, running from what the controller rendered for one Consumer.
struct Pipeline {
    work: PathBuf,
    audit_log: PathBuf,
    sidecar: Option<Sidecar>,
    worker: Child,
    config: Value,
}

impl Pipeline {
    /// The example `file` applied into `ns` with `replace` done, then the sidecar and worker of
    /// Consumer `consumer` started once it is Available.
    async fn start(
        client: &kube::Client,
        ns: &str,
        file: &str,
        replace: &[(&str, String)],
        consumer: &str,
    ) -> Self {
        common::tenant_policy(client, ns, json!({"images": [IMAGES]})).await;
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples/custom")
            .join(file);
        let mut text = std::fs::read_to_string(path).unwrap();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        common::create_yaml(client, ns, &text).await;
        common::wait_reason(client, ns, "Consumer", consumer, "Available", CONVERGE).await;

        let worker_name = format!("{consumer}-worker");
        let rendered = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get(&worker_name)
            .await
            .unwrap()
            .data
            .unwrap()["worker.yaml"]
            .clone();
        let work = std::env::temp_dir().join(common::unique("e2e-custom"));
        std::fs::create_dir_all(&work).unwrap();
        let audit_log = work.join("audit.jsonl");
        let sidecar = spawn_sidecar(
            client,
            ns,
            &worker_name,
            &[("AUDIT_LOG", audit_log.to_str().unwrap())],
            &work.join("sidecar.log"),
        )
        .await;
        let mut config: Value = serde_yaml_ng::from_str(&rendered).unwrap();
        let mut local: Value =
            serde_yaml_ng::from_str(&common::sidecar::rebind(&rendered, &sidecar)).unwrap();
        local["metricsListen"] = json!(format!("127.0.0.1:{}", common::free_port()));
        if let Some(storage) = local["source"].get_mut("storageQueue") {
            storage["waitTimeSeconds"] = json!(1);
        }
        let file = work.join("worker.yaml");
        std::fs::write(&file, serde_yaml_ng::to_string(&local).unwrap()).unwrap();
        let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
            .get(&worker_name)
            .await
            .unwrap();
        let env = common::devices_bed::deployment_env(client, ns, &deployment).await;
        let worker = spawn_worker(&file, &work.join("worker.log"), &env);
        config["localWorker"] = local;
        Self {
            work,
            audit_log,
            sidecar: Some(sidecar),
            worker,
            config,
        }
    }

    /// Waits until the audit log holds `expected` (by `seq`), then checks each is there exactly once.
    async fn audited(&self, expected: &BTreeSet<String>) -> Vec<Value> {
        let entries = common::eventually("every good event audited", CONVERGE, || async {
            let entries = Sidecar::audit_entries(&self.audit_log);
            let seen: BTreeSet<String> = entries
                .iter()
                .filter_map(|e| e["body"]["seq"].as_str().map(str::to_owned))
                .collect();
            (seen == *expected).then_some(entries)
        })
        .await;
        let mut count = BTreeMap::new();
        for entry in &entries {
            *count.entry(entry["body"]["seq"].to_string()).or_insert(0) += 1;
        }
        assert!(count.values().all(|&n| n == 1), "one entry per event: {count:?}");
        assert_eq!(entries.len(), expected.len(), "nothing else recorded");
        entries
    }

    /// Stops the worker (SIGTERM: it drains and exits cleanly), then the sidecar, as the pod would.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.worker.id().to_string()])
            .status();
        assert!(self.worker.wait().unwrap().success(), "a clean shutdown");
        if let Some(sidecar) = self.sidecar.take() {
            sidecar.stop();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

/// A `tributary worker` process with `env` (the Deployment's, Secrets resolved) and the test bed's AWS
/// endpoint and credentials.
fn spawn_worker(file: &Path, log: &Path, env: &BTreeMap<String, String>) -> Child {
    Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(file)
        .envs(env)
        .env("AWS_ENDPOINT_URL", common::var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The rendered worker delivers to the sidecar as the contract says, from `source`.
fn assert_rendered(config: &Value, ns: &str, source: &str) {
    assert_eq!(config["processor"], "container", "{config:?}");
    let delivery = &config["delivery"];
    assert_eq!(delivery["url"], "http://127.0.0.1:8080/");
    assert_eq!(delivery["readyUrl"], "http://127.0.0.1:8080/healthz");
    assert_eq!(
        delivery["source"],
        format!("/apis/tributary.dev/v1alpha1/namespaces/{ns}/{source}")
    );
}

/// Each dead letter's reason: `HTTP 400: ` and the container's answer.
fn assert_rejected(reasons: &[String]) {
    assert_eq!(reasons.len(), POISONED.len(), "{reasons:?}");
    for reason in reasons {
        assert!(reason.starts_with("HTTP 400: body is not"), "{reason}");
    }
}

/// The reasons of a Storage Queue dead letter, once it holds every poisoned event.
async fn azure_reasons(dead_letter: &azure_storage_queue::QueueClient) -> Vec<String> {
    let peeked = common::eventually("every poisoned event dead-lettered", CONVERGE, || async {
        let peeked = common::azure_peek(dead_letter).await;
        (peeked.len() >= POISONED.len()).then_some(peeked)
    })
    .await;
    peeked
        .iter()
        .map(|(_, attributes)| {
            let reason: Value = serde_json::from_str(&attributes["tributary-dead-letter-reason"]).unwrap();
            reason["reason"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_audit_example_drains_an_sqs_queue_and_publishes_its_replies() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-custom-sqs").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    let started = Instant::now();
    let pipeline = Pipeline::start(&client, &ns, "pipeline-aws.yaml", &[], "audit").await;
    assert_rendered(&pipeline.config, &ns, "queues/audit-events");
    assert_eq!(pipeline.config["delivery"]["typeAttribute"], "event");

    // Replies: the sink Topic, read through a queue of the test's own.
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let sns = aws_sdk_sns::Client::new(&aws);
    let topic = common::wait_reason(&client, &ns, "Topic", "audit-flags", "Available", CONVERGE).await;
    let topic_arn = topic.data["status"]["arn"].as_str().unwrap().to_owned();
    let replies_url = sqs
        .create_queue()
        .queue_name(format!("{ns}-replies"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let replies_arn = common::queue_arn(&sqs, &replies_url).await;
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&replies_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let queue = common::wait_reason(&client, &ns, "Queue", "audit-events", "Available", CONVERGE).await;
    let queue_url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    let attribute = |value: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    let mut expected = BTreeSet::new();
    let mut message_ids = BTreeMap::new();
    for i in 0..GOOD {
        let body = good("sqs", i);
        let sent = sqs
            .send_message()
            .queue_url(&queue_url)
            .message_body(&body)
            .message_attributes("event", attribute("AuditMe"))
            .message_attributes("Region", attribute("eu-west"))
            .send()
            .await
            .unwrap();
        message_ids.insert(format!("sqs-{i:03}"), sent.message_id.unwrap());
        expected.insert(format!("sqs-{i:03}"));
    }
    for body in POISONED {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let entries = pipeline.audited(&expected).await;
    for entry in &entries {
        let seq = entry["body"]["seq"].as_str().unwrap();
        assert_eq!(entry["id"], message_ids[seq], "ce-id is the SQS MessageId");
        assert_eq!(entry["type"], "AuditMe", "ce-type from delivery.typeAttribute");
        assert_eq!(
            entry["source"],
            format!("/apis/tributary.dev/v1alpha1/namespaces/{ns}/queues/audit-events")
        );
        assert_eq!(entry["extensions"]["region"], "eu-west", "{entry}");
    }
    let dead = common::wait_reason(&client, &ns, "DeadLetter", "audit-dlq", "Available", CONVERGE).await;
    let dead_url = dead.data["status"]["url"].as_str().unwrap().to_owned();
    // Received and deleted as they come, so each is counted once.
    let dead_letters = std::sync::Mutex::new(Vec::new());
    common::eventually("every poisoned event dead-lettered", CONVERGE, || async {
        let received = common::receive_messages(&sqs, &dead_url).await;
        let mut all = dead_letters.lock().unwrap();
        all.extend(received);
        (all.len() >= POISONED.len()).then_some(())
    })
    .await;
    let mut reasons = Vec::new();
    let mut bodies = BTreeSet::new();
    for message in dead_letters.into_inner().unwrap() {
        let reason = &message.message_attributes.as_ref().unwrap()["tributary-dead-letter-reason"];
        let reason: Value = serde_json::from_str(reason.string_value().unwrap()).unwrap();
        assert_eq!(reason["consumer"], format!("{ns}/audit"));
        reasons.push(reason["reason"].as_str().unwrap().to_owned());
        bodies.insert(message.body.unwrap());
    }
    assert_rejected(&reasons);
    assert_eq!(bodies, POISONED.iter().map(|b| (*b).to_owned()).collect());

    // totalCents above 10000: events 5 to 19 are flagged, each reply published once.
    let flagged: BTreeSet<String> = (5..GOOD)
        .map(|i| message_ids[&format!("sqs-{i:03}")].clone())
        .collect();
    let received = std::sync::Mutex::new(Vec::new());
    common::eventually("every reply on the sink topic", CONVERGE, || async {
        let bodies = common::receive_all(&sqs, &replies_url).await;
        let mut all = received.lock().unwrap();
        all.extend(bodies);
        (all.len() >= flagged.len()).then_some(())
    })
    .await;
    let replies = received.into_inner().unwrap();
    let replied: BTreeSet<String> = replies
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(r).unwrap()["flagged"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(replied, flagged);
    assert_eq!(replies.len(), flagged.len(), "one reply each");
    println!(
        "custom processor from SQS: {GOOD} events audited once, {} poisoned dead-lettered with HTTP 400, {} replies published, {:.1} s from apply",
        POISONED.len(),
        replies.len(),
        started.elapsed().as_secs_f64()
    );
    pipeline.stop();
    controller.stop().await;
}

#[tokio::test]
async fn the_audit_example_drains_a_storage_queue() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-custom-azq").await;
    let controller = common::start_controller(&client, &ns, &common::aws_config().await).await;
    common::storage_secret(&client, &ns).await;
    let started = Instant::now();
    let replace = [
        ("tributaryaudit", common::var("AZURE_STORAGE_ACCOUNT")),
        ("name: audit-storage", "name: storage".to_owned()),
    ];
    let pipeline = Pipeline::start(
        &client,
        &ns,
        "pipeline-storage-queue.yaml",
        &replace,
        "audit-azure",
    )
    .await;
    assert_rendered(&pipeline.config, &ns, "queues/audit-azure-events");

    let queue = common::wait_reason(&client, &ns, "Queue", "audit-azure-events", "Available", CONVERGE).await;
    let dead = common::wait_reason(
        &client,
        &ns,
        "DeadLetter",
        "audit-azure-dlq",
        "Available",
        CONVERGE,
    )
    .await;
    let name = |object: &kube::api::DynamicObject| {
        object.data["status"]["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let service = common::azure_queue_service();
    let queue_client = service.queue_client(&name(&queue)).unwrap();
    let mut expected = BTreeSet::new();
    let mut bodies: Vec<String> = POISONED.iter().map(|b| (*b).to_owned()).collect();
    for i in 0..GOOD {
        bodies.push(good("azq", i));
        expected.insert(format!("azq-{i:03}"));
    }
    for body in bodies {
        let message = azure_storage_queue::models::QueueMessage {
            message_text: Some(body),
        };
        queue_client
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    pipeline.audited(&expected).await;
    let dead_client = service.queue_client(&name(&dead)).unwrap();
    assert_rejected(&azure_reasons(&dead_client).await);
    println!(
        "custom processor from a Storage Queue: {GOOD} events audited once, {} poisoned dead-lettered with HTTP 400, {:.1} s from apply",
        POISONED.len(),
        started.elapsed().as_secs_f64()
    );
    pipeline.stop();
    controller.stop().await;
}

#[tokio::test]
async fn the_audit_example_reads_a_device_stream() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-custom-hub").await;
    let fake = common::arm_fake().await;
    let hubs = common::event_hubs_config(&fake, "00000000-0000-0000-0000-000000000021", "audit");
    let controller =
        common::start_controller_with(&client, &ns, &common::aws_config().await, Some(hubs)).await;
    common::storage_secret(&client, &ns).await;
    let started = Instant::now();
    let replace = [
        ("tributaryaudit", common::var("AZURE_STORAGE_ACCOUNT")),
        ("name: audit-storage", "name: storage".to_owned()),
        (
            "namespace: tributary-audit",
            format!("namespace: {}", common::unique("audit-hubs")),
        ),
    ];
    let pipeline = Pipeline::start(
        &client,
        &ns,
        "pipeline-device-stream.yaml",
        &replace,
        "audit-devices",
    )
    .await;
    assert_rendered(&pipeline.config, &ns, "devicestreams/sensors");

    let producer = common::devices_bed::DeviceBed::producer(Duration::from_secs(30));
    let topic = format!("{ns}_sensors");
    let mut expected = BTreeSet::new();
    let mut sends: Vec<(String, String)> = POISONED
        .iter()
        .map(|b| ("bad".to_owned(), (*b).to_owned()))
        .collect();
    for i in 0..GOOD {
        sends.push((format!("device-{}", i % 4), good("hub", i)));
        expected.insert(format!("hub-{i:03}"));
    }
    for (key, body) in &sends {
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&topic).key(key).payload(body),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
    pipeline.audited(&expected).await;
    let dead = common::wait_reason(
        &client,
        &ns,
        "DeadLetter",
        "audit-devices-dlq",
        "Available",
        CONVERGE,
    )
    .await;
    let dead_name = dead.data["status"]["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let dead_client = common::azure_queue_service().queue_client(&dead_name).unwrap();
    assert_rejected(&azure_reasons(&dead_client).await);
    println!(
        "custom processor from a DeviceStream (Kafka): {GOOD} events audited once, {} poisoned dead-lettered with HTTP 400, {:.1} s from apply",
        POISONED.len(),
        started.elapsed().as_secs_f64()
    );
    pipeline.stop();
    controller.stop().await;
}
