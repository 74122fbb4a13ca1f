//! Conformance of processor `container` (the delivery contract of issue 21) against a test processor:
//! `tributary worker` runs as a process and delivers to an HTTP server in the test ([`processor`]), which
//! records each request and answers as the message's body scripts. Every CloudEvents attribute, extension
//! and the trace context arrive; each outcome ends as promised (done; dead letter with the status and the
//! start of the body; retried, then done); a reply is published to the sink topic; nothing is lost, and no
//! message is answered 2xx twice. From SQS on moto (every outcome), and one outcome each from a Storage
//! Queue on Azurite and from Kafka.
#![allow(clippy::unwrap_used)]

mod crash;
mod drain;
mod processor;
mod retry_after;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use tributary::cloud::queue::DEAD_LETTER_REASON;

use self::processor::Log;
use crate::support as common;

const SOURCE: &str = "/apis/tributary.dev/v1alpha1/namespaces/test/queues/orders";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CONVERGE: Duration = Duration::from_secs(40);

/// The scripted bodies (see `processor::script`) and what must become of them.
const DONE_AT_ONCE: [&str; 3] = ["ok-1", "ok-2", "reply-1"];
const RETRIED_THEN_DONE: [&str; 5] = ["t408-1", "t429-1", "t500-1", "slow-1", "drop-1"];
const DEAD_LETTERED: [&str; 2] = ["bad-1", "gone-1"];

/// A test processor on a free port, and its log.
async fn test_processor() -> (u16, Log, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Log::default();
    let server = processor::serve(listener, log.clone());
    (port, log, server)
}

/// A worker configuration for processor container delivering to the test processor on `port`, with the
/// source block given (YAML, indented under `source:`) and the rest of the contract's settings.
fn config(source: &str, port: u16, extra: &str) -> String {
    let ready = format!("  readyUrl: http://127.0.0.1:{port}/healthz\n");
    config_at(source, port, &ready, common::free_port(), extra)
}

/// [`config`] with the `readyUrl` line given (or none) and `/readyz` on `metrics`.
fn config_at(source: &str, port: u16, ready: &str, metrics: u16, extra: &str) -> String {
    format!(
        "consumer: {{namespace: test, name: delivery}}\nprocessor: container\nsource:\n{source}\n\
         retry: {{maxAttempts: 4, initialBackoffSeconds: 1, maxBackoffSeconds: 1}}\n\
         delivery:\n  url: http://127.0.0.1:{port}/events\n{ready}  timeoutSeconds: 1\n  concurrency: 4\n  source: {SOURCE}\n\
         metricsListen: 127.0.0.1:{metrics}\ndrainSeconds: 5\n{extra}"
    )
}

/// A worker process running `config`; stopped with SIGTERM by [`stop`].
fn start_worker(name: &str, config: &str) -> (std::process::Child, PathBuf) {
    start_worker_with(name, config, &[])
}

/// [`start_worker`] with `env` on top of the test bed's (an AWS endpoint of the test's own, say).
fn start_worker_with(name: &str, config: &str, env: &[(&str, &str)]) -> (std::process::Child, PathBuf) {
    let work = std::env::temp_dir().join(common::unique(name));
    std::fs::create_dir_all(&work).unwrap();
    let path = work.join("worker.yaml");
    std::fs::write(&path, config).unwrap();
    let log = work.join("worker.log");
    let worker = std::process::Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(&path)
        .env("AZURE_STORAGE_KEY", common::var("AZURE_STORAGE_KEY"))
        .env("KAFKA_SASL_PASSWORD", common::var("KAFKA_SASL_PASSWORD"))
        .env("AWS_ENDPOINT_URL", common::var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (worker, log)
}

/// A process killed when dropped unless taken back first: a failing test leaves none behind.
struct Reap(Option<std::process::Child>);

impl Reap {
    fn take(&mut self) -> std::process::Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn stop(mut worker: std::process::Child, log: &PathBuf) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || worker.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "the worker exits cleanly on SIGTERM: {status}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

async fn sqs_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> String {
    sqs.create_queue()
        .queue_name(common::unique(prefix))
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// A topic with a queue subscribed to it (raw delivery): where replies go, and where the test reads them.
async fn reply_topic(aws: &aws_config::SdkConfig) -> (String, String) {
    let (sns, sqs) = (aws_sdk_sns::Client::new(aws), aws_sdk_sqs::Client::new(aws));
    let topic = sns
        .create_topic()
        .name(common::unique("replies"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = sqs_queue(&sqs, "replies").await;
    let arn = common::queue_arn(&sqs, &queue).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    (topic, queue)
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str, attributes: &[(&str, &str)]) -> String {
    let mut request = sqs.send_message().queue_url(url).message_body(body);
    for (name, value) in attributes {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(*value)
            .build()
            .unwrap();
        request = request.message_attributes(*name, value);
    }
    request.send().await.unwrap().message_id.unwrap()
}

/// Messages received from `url` (and deleted) until `want` have come, each with its string attributes.
async fn collect(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    want: usize,
    what: &str,
) -> Vec<(String, BTreeMap<String, String>)> {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    let mut all = Vec::new();
    while all.len() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {all:?}"
        );
        for message in common::receive_messages(sqs, url).await {
            let attributes = message
                .message_attributes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.string_value?)))
                .collect();
            all.push((message.body.unwrap_or_default(), attributes));
        }
    }
    all
}

/// How many messages `url` still holds, visible or not.
async fn left_in(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes.values().map(|v| v.parse::<u64>().unwrap_or(0)).sum()
}

/// Waits until the worker has dead-lettered bad-1 into the Storage Queue `dead_letter` and the test
/// processor has answered 2xx to ok-1 and t500-1, then stops the worker and the processor. Returns the
/// dead letter, asserted to be one message with the 400's reason.
async fn bad_dead_lettered_and_the_rest_done(
    dead_letter: &azure_storage_queue::QueueClient,
    log: &Log,
    worker: std::process::Child,
    worker_log: &PathBuf,
    server: tokio::task::JoinHandle<()>,
) -> Vec<(String, BTreeMap<String, String>)> {
    let dead = common::eventually("the dead letter of bad-1", CONVERGE, || async {
        let dead = common::azure_drain(dead_letter).await;
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    common::eventually("ok-1 and t500-1 answered 2xx", CONVERGE, || async {
        (log.done().len() == 2).then_some(())
    })
    .await;
    stop(worker, worker_log).await;
    server.abort();
    assert_eq!(dead.len(), 1);
    assert!(
        reason_of(&dead[0].1).starts_with("HTTP 400: invalid order"),
        "{:?}",
        dead[0].1
    );
    dead
}

/// The reason a dead letter carries.
fn reason_of(attributes: &BTreeMap<String, String>) -> String {
    let json: serde_json::Value = serde_json::from_str(&attributes[DEAD_LETTER_REASON]).unwrap();
    json["reason"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_outcome_from_sqs_ends_as_the_contract_promises() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (source, dead_letter) = (
        sqs_queue(&sqs, "delivery").await,
        sqs_queue(&sqs, "delivery-dlq").await,
    );
    let (topic, replies) = reply_topic(&aws).await;
    let (port, log, server) = test_processor().await;

    let attributed = send(
        &sqs,
        &source,
        "{\"orderId\":\"o-1\"}",
        &[
            ("type", "OrderPlaced"),
            ("traceparent", PARENT),
            ("tracestate", "vendor=1"),
            ("Region", "eu west"),
            ("order_total", "42"),
        ],
    )
    .await;
    let bodies: Vec<&str> = [&DONE_AT_ONCE[..], &RETRIED_THEN_DONE, &DEAD_LETTERED].concat();
    let mut ids = BTreeMap::new();
    for body in &bodies {
        ids.insert(*body, send(&sqs, &source, body, &[]).await);
    }
    let sqs_source = format!(
        "  sqs: {{queueUrl: '{source}', visibilityTimeoutSeconds: 30, receivers: 2, waitTimeSeconds: 1}}\nsink: {{topicArn: '{topic}'}}\ndeadLetter: {{queueUrl: '{dead_letter}'}}"
    );
    let (worker, worker_log) = start_worker("delivery-sqs", &config(&sqs_source, port, ""));

    let dead = collect(&sqs, &dead_letter, DEAD_LETTERED.len(), "the dead letters").await;
    let reply = collect(&sqs, &replies, 1, "the reply on the sink topic").await;
    common::eventually("every other message answered 2xx", CONVERGE, || async {
        let done = log.done();
        let all = ids
            .iter()
            .filter(|(b, _)| !DEAD_LETTERED.contains(b))
            .all(|(_, id)| done.contains_key(id));
        // The slow one's late first answer is counted when the test processor sends it.
        let late = done.get(&ids["slow-1"]) == Some(&2);
        (all && late && done.contains_key(&attributed)).then_some(())
    })
    .await;
    stop(worker, &worker_log).await;
    server.abort();

    // Every attribute, extension and the trace context of the attributed message.
    let request = log.requests_of("{\"orderId\":\"o-1\"}").remove(0);
    let expected = [
        ("ce-specversion", "1.0"),
        ("ce-id", attributed.as_str()),
        ("ce-source", SOURCE),
        ("ce-type", "OrderPlaced"),
        ("content-type", "application/json"),
        ("traceparent", PARENT),
        ("tracestate", "vendor=1"),
        ("ce-region", "eu%20west"),
        ("ce-ordertotal", "42"),
    ];
    for (name, value) in expected {
        assert_eq!(
            request.header(name),
            Some(value),
            "{name} in {:?}",
            request.headers
        );
    }
    let time = request.header("ce-time").unwrap();
    assert!(
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(),
        "{time}"
    );
    let plain = log.requests_of("ok-1").remove(0);
    assert_eq!(plain.header("ce-type"), Some("dev.tributary.message"));
    assert_eq!(plain.header("content-type"), Some("application/octet-stream"));
    assert_eq!(plain.header("traceparent"), None, "no trace context is made up");

    // Outcomes: done once; retried then done once; dead-lettered at once with the status and body start.
    for body in DONE_AT_ONCE {
        assert_eq!(log.requests_of(body).len(), 1, "{body} delivered once");
    }
    for body in RETRIED_THEN_DONE {
        assert_eq!(log.requests_of(body).len(), 2, "{body} retried once, then done");
    }
    for body in DEAD_LETTERED {
        assert_eq!(log.requests_of(body).len(), 1, "{body} not retried");
    }
    // A message whose 2xx reached the worker is never delivered again; only the slow one's first 2xx,
    // sent after the worker had given up on it, is followed by a second delivery (at least once).
    let done = log.done();
    for (body, id) in &ids {
        let expected = if *body == "slow-1" {
            2
        } else {
            u32::from(!DEAD_LETTERED.contains(body))
        };
        assert_eq!(done.get(id).copied().unwrap_or(0), expected, "{body}: {done:?}");
    }
    let reasons: BTreeMap<String, String> = dead.iter().map(|(b, a)| (b.clone(), reason_of(a))).collect();
    let bad = &reasons["bad-1"];
    assert!(bad.starts_with("HTTP 400: invalid order: bad-1 xxx"), "{bad}");
    assert_eq!(
        bad.len(),
        "HTTP 400: ".len() + 256,
        "the first 256 bytes of the body: {bad}"
    );
    assert_eq!(reasons["gone-1"], "HTTP 404: no such route");

    // The reply: its body, type, extension, media type, and a trace context.
    let (body, attributes) = &reply[0];
    assert_eq!(body, "{\"reply\":\"reply-1\"}");
    assert_eq!(
        attributes.get("type").map(String::as_str),
        Some("com.example.replied")
    );
    assert_eq!(attributes.get("shard").map(String::as_str), Some("s 1"));
    assert_eq!(
        attributes.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert!(attributes.contains_key("traceparent"), "{attributes:?}");

    // Nothing lost, nothing left.
    assert_eq!(left_in(&sqs, &source).await, 0, "the source is empty");
}

/// `/readyz` of the worker whose metrics listen on `port`: status and body.
async fn readyz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    Some((response.status().as_u16(), response.text().await.ok()?))
}

/// A worker whose container is not there yet: without a readiness URL its deliveries are refused and
/// retried, then done once the container listens; with one, `/readyz` fails naming the container and
/// nothing is sent until it answers, then the worker is ready and delivers.
#[tokio::test]
async fn a_refused_connection_is_retried_and_an_unready_container_is_waited_for() {
    let _bed = common::shared().await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let (refused, waited) = (sqs_queue(&sqs, "refused").await, sqs_queue(&sqs, "unready").await);
    send(&sqs, &refused, "ok-refused", &[]).await;
    send(&sqs, &waited, "ok-waited", &[]).await;
    let sqs_source = |url: &str| format!("  sqs: {{queueUrl: '{url}', receivers: 1, waitTimeSeconds: 1}}");
    let (port, metrics) = (common::free_port(), common::free_port());
    let (first, first_log) = start_worker(
        "delivery-refused",
        &config_at(&sqs_source(&refused), port, "", metrics, ""),
    );
    common::eventually("a refused delivery", CONVERGE, || async {
        (common::metric(metrics, "tributary_worker_messages_failed_total").await? >= 1).then_some(())
    })
    .await;
    let ready = format!("  readyUrl: http://127.0.0.1:{port}/healthz\n");
    let unready_metrics = common::free_port();
    let (second, second_log) = start_worker(
        "delivery-unready",
        &config_at(&sqs_source(&waited), port, &ready, unready_metrics, ""),
    );
    let (status, reason) = common::eventually("/readyz of the second worker", CONVERGE, || {
        readyz(unready_metrics)
    })
    .await;
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains("the container") && reason.contains("/healthz"),
        "{reason}"
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let log = Log::default();
    let server = processor::serve(listener, log.clone());
    common::eventually("both delivered", CONVERGE, || async {
        (log.done().len() == 2).then_some(())
    })
    .await;
    let (status, _) = common::eventually("the second worker ready", CONVERGE, || async {
        readyz(unready_metrics).await.filter(|(status, _)| *status == 200)
    })
    .await;
    assert_eq!(status, 200);
    stop(first, &first_log).await;
    stop(second, &second_log).await;
    server.abort();
    assert_eq!(
        log.requests_of("ok-refused").len(),
        1,
        "the refused attempts never arrived"
    );
    assert_eq!(
        log.requests_of("ok-waited").len(),
        1,
        "nothing was sent before the container was ready"
    );
    let failed = std::fs::read_to_string(&first_log).unwrap();
    assert!(failed.contains("cannot connect to the container"), "{failed}");
    assert_eq!(left_in(&sqs, &refused).await + left_in(&sqs, &waited).await, 0);
}

#[tokio::test]
async fn a_storage_queue_message_refused_by_the_container_is_dead_lettered_and_the_others_done() {
    let _bed = common::shared().await;
    let service = common::azure_queue_service();
    let (name, dlq) = (
        common::unique("delivery").to_lowercase(),
        common::unique("delivery-dlq").to_lowercase(),
    );
    let (source, dead_letter) = (
        service.queue_client(&name).unwrap(),
        service.queue_client(&dlq).unwrap(),
    );
    source.create(None).await.unwrap();
    dead_letter.create(None).await.unwrap();
    for body in ["ok-1", "bad-1", "t500-1"] {
        let message = azure_storage_queue::models::QueueMessage {
            message_text: Some(tributary::cloud::azure::envelope::encode(body, &BTreeMap::new())),
        };
        source
            .send_message(message.try_into().unwrap(), None)
            .await
            .unwrap();
    }
    let (port, log, server) = test_processor().await;
    let endpoint = common::var("AZURE_STORAGE_QUEUE_ENDPOINT");
    let account = common::var("AZURE_STORAGE_ACCOUNT");
    let storage = format!(
        "  storageQueue: {{queueUrl: '{endpoint}/{name}', account: {account}, receivers: 1, waitTimeSeconds: 1}}\ndeadLetter: {{queueUrl: '{endpoint}/{dlq}'}}"
    );
    let (worker, worker_log) = start_worker("delivery-azure", &config(&storage, port, ""));
    let dead = bad_dead_lettered_and_the_rest_done(&dead_letter, &log, worker, &worker_log, server).await;
    assert_eq!(dead[0].0, "bad-1");
    let request = log.requests_of("ok-1").remove(0);
    assert_eq!(request.header("ce-source"), Some(SOURCE));
    assert!(
        request.header("ce-time").is_some(),
        "Azure says when it was inserted"
    );
    assert!(log.requests_of("t500-1").len() >= 2, "the 500 was retried");
    assert!(log.done().values().all(|answers| *answers == 1));
    assert!(common::azure_drain(&source).await.is_empty(), "nothing left");
}

#[tokio::test]
async fn kafka_events_are_delivered_retried_and_dead_lettered_within_the_stream_bounds() {
    use rdkafka::{
        message::{Header, OwnedHeaders},
        producer::{FutureProducer, FutureRecord},
    };
    let _bed = common::shared().await;
    let endpoint = crate::support::devices_bed::endpoint();
    let topic = common::unique("delivery");
    common::devices_bed::create_topic(&topic, 1).await;
    let producer: FutureProducer = endpoint.client_config().create().unwrap();
    for body in ["ok-1", "t500-1", "bad-1"] {
        let headers = OwnedHeaders::new().insert(Header {
            key: "ce_type",
            value: Some("Reading"),
        });
        let record = FutureRecord::to(&topic)
            .key("thermo-1")
            .payload(body)
            .headers(headers);
        producer.send(record, Duration::from_secs(30)).await.unwrap();
    }
    let service = common::azure_queue_service();
    let dlq = common::unique("delivery-dlq").to_lowercase();
    let dead_letter = service.queue_client(&dlq).unwrap();
    dead_letter.create(None).await.unwrap();
    let (port, log, server) = test_processor().await;
    let storage = common::var("AZURE_STORAGE_QUEUE_ENDPOINT");
    let kafka = format!(
        "  kafka: {{bootstrapServers: '{}', topic: {topic}, consumerGroup: {topic}, username: '{}', caFile: '{}', sessionTimeoutSeconds: 6}}\ndeadLetter: {{queueUrl: '{storage}/{dlq}', storageAccount: {}}}",
        common::var("KAFKA_BOOTSTRAP"),
        common::var("KAFKA_SASL_USERNAME"),
        common::var("KAFKA_CA_FILE"),
        common::var("AZURE_STORAGE_ACCOUNT"),
    );
    let (worker, worker_log) = start_worker("delivery-kafka", &config(&kafka, port, ""));
    bad_dead_lettered_and_the_rest_done(&dead_letter, &log, worker, &worker_log, server).await;
    let request = log.requests_of("ok-1").remove(0);
    assert_eq!(request.header("ce-id"), Some(format!("{topic}-0-0").as_str()));
    assert_eq!(request.header("ce-type"), Some("Reading"));
    assert_eq!(request.header("ce-partitionkey"), Some("thermo-1"));
    assert!(request.header("ce-time").is_some());
    assert!(log.requests_of("t500-1").len() >= 2, "the 500 was retried");
    assert!(log.done().values().all(|answers| *answers == 1));
}
