//! The container killed mid-request, for real: the processor is the audit example (`examples/custom/
//! audit.py`, idempotent by `ce-id` across restarts) running as an OS process of its own, with a hook
//! (`hold_audit.py`) that holds two requests without an answer — one before its audit record is written,
//! one after. The test SIGKILLs the process while both are in flight, then starts it again on the same
//! port (what the kubelet does with a crashed native sidecar). Both messages are redelivered: the first
//! is recorded by the new process, the second (whose effect happened before the kill) is acknowledged
//! again without a second record. Every message is in the audit log exactly once and the source is
//! empty: nothing lost, no effect twice. From SQS, a Storage Queue and Kafka.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use tributary::cloud::queue::reason_attribute;

use super::{CONVERGE, Reap, config_at, left_in, send, sqs_queue, start_worker, stop};
use crate::support as common;

/// Plain events per test, besides the two held ones.
const PLAIN: usize = 8;

/// The audit example as a process, killed when dropped.
struct Audit(Child);

impl Drop for Audit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where one test's processor keeps its audit log and hold markers.
struct Work {
    dir: PathBuf,
    port: u16,
}

impl Work {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(common::unique("delivery-crash"));
        std::fs::create_dir_all(dir.join("holds")).unwrap();
        Self {
            dir,
            port: common::free_port(),
        }
    }

    /// Starts the audit example on the test's port; returns once it answers `/healthz`.
    async fn start_audit(&self, run: usize) -> Audit {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let child = Command::new("python3")
            .arg(root.join("tests/it/worker_delivery/hold_audit.py"))
            .arg(root.join("examples/custom/audit.py"))
            .env("PORT", self.port.to_string())
            .env("HOST", "127.0.0.1")
            .env("AUDIT_LOG", self.audit_log())
            .env("HOLD_DIR", self.dir.join("holds"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(format!("audit-{run}.log"))).unwrap())
            .spawn()
            .unwrap();
        let audit = Audit(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        common::eventually("the audit process ready", CONVERGE, || async {
            let answer = reqwest::get(&url).await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        audit
    }

    fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    /// The audit log's entries.
    fn entries(&self) -> Vec<Value> {
        entries(&self.audit_log())
    }

    /// The ce-id held at `stage`, once a request is held there.
    fn held(&self, stage: &str) -> Option<String> {
        std::fs::read_dir(self.dir.join("holds"))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find_map(|name| name.strip_prefix(&format!("{stage}-")).map(str::to_owned))
    }
}

fn entries(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The events of a test: `PLAIN` plain ones and the two held ones, by their `seq`, with the `hold`
/// attribute each carries.
fn events(tag: &str) -> Vec<(String, Option<&'static str>)> {
    let mut events: Vec<_> = (0..PLAIN).map(|i| (format!("{tag}-{i}"), None)).collect();
    events.push((format!("{tag}-held-before"), Some("before")));
    events.push((format!("{tag}-held-after"), Some("after")));
    events
}

fn body(seq: &str) -> String {
    serde_json::json!({ "seq": seq }).to_string()
}

/// Runs a worker on `source` (a YAML source block) against the audit process, kills the process with
/// both held requests in flight, starts it again, and checks every event of `tag` is audited once.
async fn killed_mid_request(work: &Work, name: &str, source: &str, tag: &str) {
    let first = work.start_audit(1).await;
    let ready = format!("  readyUrl: http://127.0.0.1:{}/healthz\n", work.port);
    let metrics = common::free_port();
    // A long delivery timeout: the held requests stay in flight until the kill, not until a timeout.
    let config = config_at(source, work.port, &ready, metrics, "")
        .replace("timeoutSeconds: 1\n", "timeoutSeconds: 60\n")
        .replace("maxAttempts: 4", "maxAttempts: 6");
    let (worker, worker_log) = start_worker(name, &config);
    let mut worker = Reap(Some(worker));

    let (before, after) = common::eventually("both held requests in flight", CONVERGE, || async {
        Some((work.held("before")?, work.held("after")?))
    })
    .await;
    let recorded: BTreeSet<String> = work
        .entries()
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    assert!(recorded.contains(&after), "held after its record");
    assert!(!recorded.contains(&before), "held before its record");

    let mut killed = first;
    killed.0.kill().unwrap();
    let status = killed.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "SIGKILLed mid-request: {status}");
    let second = work.start_audit(2).await;

    let expected: BTreeSet<String> = events(tag).into_iter().map(|(seq, _)| seq).collect();
    let entries = common::eventually("every event audited", CONVERGE, || async {
        let entries = work.entries();
        let seen: BTreeSet<String> = entries
            .iter()
            .filter_map(|e| e["body"]["seq"].as_str().map(str::to_owned))
            .collect();
        (seen == expected).then_some(entries)
    })
    .await;
    let failed = common::metric(metrics, "tributary_worker_messages_failed_total")
        .await
        .unwrap_or(0);
    stop(worker.take(), &worker_log).await;
    drop(second);

    let mut count = BTreeMap::new();
    for entry in &entries {
        *count.entry(entry["id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    assert!(count.values().all(|&n| n == 1), "one record per event: {count:?}");
    assert_eq!(entries.len(), expected.len(), "nothing else recorded");
    assert!(
        failed >= 2,
        "both held deliveries failed with the kill and were retried: {failed}"
    );
    let _ = std::fs::remove_dir_all(&work.dir);
}

#[tokio::test]
async fn a_container_killed_mid_request_loses_nothing_and_records_once_from_sqs() {
    let _bed = common::shared().await;
    let sqs = aws_sdk_sqs::Client::new(&common::aws_config().await);
    let source = sqs_queue(&sqs, "delivery-crash").await;
    for (seq, hold) in events("sqs") {
        let attributes: Vec<(&str, &str)> = hold.iter().map(|h| ("hold", *h)).collect();
        send(&sqs, &source, &body(&seq), &attributes).await;
    }
    let work = Work::new();
    let started = std::time::Instant::now();
    let sqs_source = format!("  sqs: {{queueUrl: '{source}', receivers: 2, waitTimeSeconds: 1}}");
    killed_mid_request(&work, "delivery-crash-sqs", &sqs_source, "sqs").await;
    assert_eq!(left_in(&sqs, &source).await, 0, "nothing left in the queue");
    println!(
        "killed mid-request (SQS): {} events audited once in {:.1} s",
        PLAIN + 2,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_container_killed_mid_request_loses_nothing_and_records_once_from_a_storage_queue() {
    let _bed = common::shared().await;
    let service = common::azure_queue_service();
    let name = common::unique("delivery-crash").to_lowercase();
    let source = service.queue_client(&name).unwrap();
    source.create(None).await.unwrap();
    for (seq, hold) in events("azq") {
        let attributes = hold
            .iter()
            .map(|h| ("hold".to_owned(), reason_attribute(h)))
            .collect();
        let message = azure_storage_queue::models::QueueMessage {
            message_text: Some(tributary::cloud::azure::envelope::encode(
                &body(&seq),
                &attributes,
            )),
        };
        source
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    let work = Work::new();
    let started = std::time::Instant::now();
    let storage = format!(
        "  storageQueue: {{queueUrl: '{}/{name}', account: {}, receivers: 2, waitTimeSeconds: 1}}",
        common::var("AZURE_STORAGE_QUEUE_ENDPOINT"),
        common::var("AZURE_STORAGE_ACCOUNT"),
    );
    killed_mid_request(&work, "delivery-crash-azure", &storage, "azq").await;
    assert!(
        common::azure_drain(&source).await.is_empty(),
        "nothing left in the queue"
    );
    println!(
        "killed mid-request (Storage Queue): {} events audited once in {:.1} s",
        PLAIN + 2,
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn a_container_killed_mid_request_loses_nothing_and_records_once_from_kafka() {
    use rdkafka::{
        message::{Header, OwnedHeaders},
        producer::FutureRecord,
    };
    let _bed = common::shared().await;
    let topic = common::unique("delivery-crash");
    common::devices_bed::create_topic(&topic, 1).await;
    let producer = common::devices_bed::DeviceBed::producer(std::time::Duration::from_secs(30));
    for (seq, hold) in events("hub") {
        let mut headers = OwnedHeaders::new();
        if let Some(hold) = hold {
            headers = headers.insert(Header {
                key: "hold",
                value: Some(hold),
            });
        }
        let body = body(&seq);
        let record = FutureRecord::to(&topic)
            .key("thermo-1")
            .payload(&body)
            .headers(headers);
        producer
            .send(record, std::time::Duration::from_secs(30))
            .await
            .unwrap();
    }
    let work = Work::new();
    let started = std::time::Instant::now();
    let kafka = format!(
        "  kafka: {{bootstrapServers: '{}', topic: {topic}, consumerGroup: {topic}, username: '{}', caFile: '{}', sessionTimeoutSeconds: 6}}",
        common::var("KAFKA_BOOTSTRAP"),
        common::var("KAFKA_SASL_USERNAME"),
        common::var("KAFKA_CA_FILE"),
    );
    killed_mid_request(&work, "delivery-crash-kafka", &kafka, "hub").await;
    println!(
        "killed mid-request (Kafka): {} events audited once in {:.1} s",
        PLAIN + 2,
        started.elapsed().as_secs_f64()
    );
}
