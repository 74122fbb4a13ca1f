//! The device worker's bounds on the test bed (Kafka broker over SASL_SSL as the Event Hubs endpoint,
//! cosmium, Azurite), as local `tributary worker` processes: large events go through a worker whose batches
//! are bounded by bytes and its peak memory stays bounded; a dead letter that cannot be sent (its queue does
//! not exist) stalls its partition visibly (`/readyz` 503 naming it, the failure counter, the stalled
//! gauge, nothing committed past the event) while the other partition goes on, and once the queue exists
//! the partition catches up with nothing lost. A Consumer's `spec.resources` reaches its real Deployment.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures::StreamExt as _;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
    producer::{FutureProducer, FutureRecord},
};
use tributary::cloud::azure::{
    cosmos::{ContainerAddress, CosmosContainer},
    kafka::KafkaEndpoint,
};

const SETTLE: Duration = Duration::from_secs(120);

fn endpoint() -> KafkaEndpoint {
    KafkaEndpoint {
        bootstrap_servers: common::var("KAFKA_BOOTSTRAP"),
        security_protocol: "SASL_SSL".into(),
        username: common::var("KAFKA_SASL_USERNAME"),
        password: common::var("KAFKA_SASL_PASSWORD"),
        ca_file: Some(common::var("KAFKA_CA_FILE")),
    }
}

fn kafka_config() -> ClientConfig {
    endpoint().client_config()
}

/// Sends `(partition, body)` pairs to `topic`, in order per partition.
async fn send(topic: &str, events: &[(i32, String)]) {
    let producer: FutureProducer = kafka_config()
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    for (partition, body) in events {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(*partition)
                    .key("k")
                    .payload(body),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
}

fn event(id: &str, device: &str, padding: usize) -> String {
    format!(
        r#"{{"eventId":"{id}","deviceId":"{device}","timestamp":"2026-12-03T06:00:00Z","readings":{{"celsius":1.5}},"blob":"{}"}}"#,
        "x".repeat(padding)
    )
}

/// The worker's `worker.yaml`: `kafka` extra fields, and a dead letter at `dead_letter` if any.
fn config(topic: &str, database: &str, port: u16, kafka: &str, dead_letter: Option<&str>) -> String {
    let dead_letter = dead_letter.map_or(String::new(), |url| {
        format!(
            "deadLetter: {{queueUrl: '{url}', storageAccount: {}}}\n",
            common::var("AZURE_STORAGE_ACCOUNT")
        )
    });
    format!(
        "consumer: {{namespace: test, name: {topic}}}\nprocessor: device\nsource:\n  kafka: {{bootstrapServers: '{}', topic: {topic}, consumerGroup: {topic}, username: '{}', caFile: '{}', sessionTimeoutSeconds: 6, {kafka}}}\nsink:\n  cosmos: {{endpoint: '{}', database: {database}, container: readings, createIfMissing: true}}\nretry: {{maxAttempts: 3, initialBackoffSeconds: 1, maxBackoffSeconds: 1}}\n{dead_letter}metricsListen: 127.0.0.1:{port}\ndrainSeconds: 2\n",
        common::var("KAFKA_BOOTSTRAP"),
        common::var("KAFKA_SASL_USERNAME"),
        common::var("KAFKA_CA_FILE"),
        common::var("COSMOS_ENDPOINT"),
    )
}

fn spawn(dir: &Path, text: &str) -> Child {
    let file = dir.join("worker.yaml");
    std::fs::write(&file, text).unwrap();
    Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(&file)
        .env("KAFKA_SASL_PASSWORD", common::var("KAFKA_SASL_PASSWORD"))
        .env("AZURE_COSMOS_KEY", common::var("COSMOS_KEY"))
        .env("AZURE_STORAGE_KEY", common::var("AZURE_STORAGE_KEY"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("worker.log")).unwrap())
        .spawn()
        .unwrap()
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn stop(mut worker: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
}

async fn container(database: &str) -> CosmosContainer {
    let address = ContainerAddress {
        endpoint: common::var("COSMOS_ENDPOINT"),
        key: common::var("COSMOS_KEY"),
        database: database.to_owned(),
        container: "readings".into(),
        partition_key_path: "/deviceId".into(),
        preferred_region: "East US".into(),
    };
    CosmosContainer::open(&address, false).await.unwrap()
}

/// The committed offset of each of `partitions` of `topic` in the group named like it.
async fn committed(topic: &str, partitions: i32) -> BTreeMap<i32, Option<i64>> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka_config().set("group.id", &topic).create().unwrap();
        let mut wanted = TopicPartitionList::new();
        for p in 0..partitions {
            wanted.add_partition(&topic, p);
        }
        let offsets = consumer
            .committed_offsets(wanted, Duration::from_secs(10))
            .unwrap();
        offsets
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => (e.partition(), Some(o)),
                _ => (e.partition(), None),
            })
            .collect()
    })
    .await
    .unwrap()
}

async fn readyz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// 150 events of about 900 KB (135 MB) through a worker whose batches may hold 4 MiB: every one is written,
/// and the worker's peak memory stays far below what a count-bound batch of them would take.
#[tokio::test]
async fn large_events_go_through_within_the_byte_bound() {
    const EVENTS: usize = 150;
    let _bed = common::shared().await;
    let topic = common::unique("large");
    let database = common::unique("large");
    common::devices_bed::create_topic(&topic, 2).await;
    let events: Vec<(i32, String)> = (0..EVENTS)
        .map(|i| {
            (
                (i % 2) as i32,
                event(&format!("e-{i}"), &format!("d-{}", i % 4), 900_000),
            )
        })
        .collect();
    send(&topic, &events).await;
    let dir = std::env::temp_dir().join(common::unique("worker-large"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let bytes = std::env::var("DEVICE_TEST_BATCH_BYTES").unwrap_or_else(|_| "4194304".into());
    let kafka = format!("maxBatchBytes: {bytes}, writers: 8");
    let worker = spawn(&dir, &config(&topic, &database, port, &kafka, None));
    let processed = common::eventually("every large event written", SETTLE, || async {
        let n = common::metric(port, "tributary_worker_messages_processed_total").await?;
        (n >= EVENTS as u64).then_some(n)
    })
    .await;
    assert_eq!(processed, EVENTS as u64, "each written once");
    let peak = peak_rss_kib(worker.id());
    eprintln!("peak RSS with maxBatchBytes {bytes}: {} MiB", peak / 1024);
    stop(worker);
    let container = container(&database).await;
    let document = container.read("d-1", "e-1").await.unwrap().unwrap();
    assert_eq!(document["attributes"]["blob"].as_str().unwrap().len(), 900_000);
    if bytes == "4194304" {
        // 4 MiB batches, 2 MiB prefetch, 1 MiB parsed at once: the process stays under 160 MiB where a
        // count-bound batch of these events would hold all 135 MB before parsing them.
        assert!(peak < 160 * 1024, "peak RSS {} MiB", peak / 1024);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Partition 0 holds a malformed event whose dead letter cannot be sent (its queue does not exist yet),
/// then valid ones; partition 1 only valid ones. Partition 1 is written whole while partition 0 is
/// stalled: `/readyz` answers 503 naming it, the failure counter and the stalled gauge show it, and its
/// committed offset stays at the malformed event. Once the queue exists the dead letter goes, the worker
/// is ready again and partition 0 is written and committed to its end.
#[tokio::test]
async fn an_unsendable_dead_letter_stalls_its_partition_visibly_while_the_others_go_on() {
    const VALID: usize = 20;
    let _bed = common::shared().await;
    let topic = common::unique("stall");
    let database = common::unique("stall");
    common::devices_bed::create_topic(&topic, 2).await;
    let queue_name = common::unique("stall-dlq").to_lowercase();
    let queue_url = format!(
        "{}/{queue_name}",
        common::var("AZURE_STORAGE_QUEUE_ENDPOINT").trim_end_matches('/')
    );
    let mut events = vec![(0, "{not json".to_owned())];
    for i in 0..VALID {
        events.push((0, event(&format!("p0-{i}"), "d-0", 10)));
        events.push((1, event(&format!("p1-{i}"), "d-1", 10)));
    }
    send(&topic, &events).await;
    let dir = std::env::temp_dir().join(common::unique("worker-stall"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let kafka = "maxPollIntervalSeconds: 10, writers: 4";
    let worker = spawn(&dir, &config(&topic, &database, port, kafka, Some(&queue_url)));

    let (status, reason) = common::eventually("the worker reports the stall", SETTLE, || async {
        readyz(port).await.filter(|(status, _)| *status == 503)
    })
    .await;
    assert_eq!(status, 503);
    assert!(
        reason.starts_with(&format!(
            "{topic}/0 is stalled: the dead letter of offset 0 cannot be sent"
        )),
        "{reason}"
    );
    let container = container(&database).await;
    let container = &container;
    common::eventually("partition 1 written whole meanwhile", SETTLE, || async {
        let written = futures::stream::iter(0..VALID)
            .filter_map(|i| async move { container.read("d-1", &format!("p1-{i}")).await.ok().flatten() })
            .count()
            .await;
        (written == VALID).then_some(())
    })
    .await;
    assert!(
        common::metric(port, "tributary_worker_dead_letter_failures_total")
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(
        common::metric(port, "tributary_worker_stalled_partitions").await,
        Some(1)
    );
    let offsets = common::eventually("partition 1 committed", SETTLE, || async {
        let offsets = committed(&topic, 2).await;
        (offsets[&1] == Some(VALID as i64)).then_some(offsets)
    })
    .await;
    assert!(
        offsets[&0].is_none_or(|o| o == 0),
        "nothing committed past the stalled event: {offsets:?}"
    );

    let queue = common::azure_queue_service().queue_client(&queue_name).unwrap();
    queue.create(None).await.unwrap();
    common::eventually(
        "ready again and partition 0 committed to its end",
        SETTLE,
        || async {
            let ready = readyz(port).await? == (200, "ok".to_owned());
            let offsets = committed(&topic, 2).await;
            (ready && offsets[&0] == Some(VALID as i64 + 1)).then_some(())
        },
    )
    .await;
    assert_eq!(
        common::metric(port, "tributary_worker_stalled_partitions").await,
        Some(0)
    );
    for i in 0..VALID {
        assert!(
            container.read("d-0", &format!("p0-{i}")).await.unwrap().is_some(),
            "p0-{i} written"
        );
    }
    let letters = common::azure_drain(&queue).await;
    assert_eq!(letters.len(), 1, "the malformed event dead-lettered once");
    stop(worker);
    queue.delete(None).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
