//! Worker runtime throughput on a real SQS-compatible server, in one run: the same queue is filled with
//! the same messages and drained (a) by a bare aws-sdk receive/delete-batch loop in this process, (b) by
//! the `tributary worker` binary with the no-op processor, and (c) by the worker with processor
//! `container` delivering each message over the CloudEvents contract to a no-op container (an HTTP/1.1
//! server in this process answering 200 at once), with the same number of receivers. Prints messages per
//! second for each, the ratios (the runtime's overhead; the contract's cost next to the built-in no-op),
//! the worker's peak RSS, and the latency the contract adds per message: each delivery timed from the
//! request to the response by the container processor itself (`Container::deliver`, the worker's code),
//! `BENCH_CONCURRENCY` at once, p50 and p99.
//!
//! Needs the test bed (`make testbed-up`); `bench/worker/run.sh` runs it against ElasticMQ and moto.
//! Settings from the environment: `BENCH_SQS_ENDPOINT` (default the test bed's ElasticMQ),
//! `BENCH_MESSAGES` (default 20000), `BENCH_RECEIVERS` (default 4), `BENCH_ROUNDS` (default 2),
//! `BENCH_CONCURRENCY` (deliveries in flight, default 40: the receivers' 10 messages each, so the limit
//! does not throttle the runtime).

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName, SendMessageBatchRequestEntry};

fn testbed_env() -> HashMap<String, String> {
    let dir = std::env::var_os("TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testbed"));
    let text = std::fs::read_to_string(dir.join("env")).expect("no test bed env file: run `make testbed-up`");
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn client(endpoint: &str, env: &HashMap<String, String>) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(env["AWS_REGION"].clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            env["AWS_ACCESS_KEY_ID"].clone(),
            env["AWS_SECRET_ACCESS_KEY"].clone(),
            None,
            None,
            "bench",
        ))
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// Sends `count` ~300-byte messages with two attributes, 10 per call, 8 calls at a time.
async fn fill(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) {
    let body = format!("{{\"orderId\":\"o-{{}}\",\"pad\":\"{}\"}}", "x".repeat(260));
    let batches: Vec<Vec<usize>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(<[usize]>::to_vec)
        .collect();
    for group in batches.chunks(8) {
        let calls = group.iter().map(|batch| {
            let entries = batch
                .iter()
                .map(|i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(body.replace("{}", &i.to_string()))
                        .message_attributes(
                            "event",
                            aws_sdk_sqs::types::MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value("OrderPlaced")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap()
                })
                .collect();
            sqs.send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
        });
        for result in futures::future::join_all(calls).await {
            result.expect("send_message_batch");
        }
    }
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (i64, i64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("get_queue_attributes")
        .attributes
        .unwrap_or_default();
    let get = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        get(QueueAttributeName::ApproximateNumberOfMessages),
        get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The bare loop: `receivers` tasks, each receive 10 (long poll) → delete batch, until `count` deleted.
async fn bare_loop(sqs: &aws_sdk_sqs::Client, url: &str, count: usize, receivers: usize) -> Duration {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..receivers)
        .map(|_| {
            let (sqs, url, done) = (sqs.clone(), url.to_owned(), done.clone());
            tokio::spawn(async move {
                while done.load(std::sync::atomic::Ordering::Relaxed) < count {
                    let received = sqs
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .message_attribute_names("All")
                        .send()
                        .await
                        .expect("receive");
                    let messages = received.messages.unwrap_or_default();
                    if messages.is_empty() {
                        continue;
                    }
                    let entries = messages
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                                .build()
                                .unwrap()
                        })
                        .collect();
                    sqs.delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("delete");
                    done.fetch_add(messages.len(), std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

struct Worker {
    child: Child,
    metrics_port: u16,
}

impl Worker {
    /// A worker draining `url` with `processor` (the YAML of `processor:` and what it reads).
    fn start(
        url: &str,
        endpoint: &str,
        receivers: usize,
        processor: &str,
        env: &HashMap<String, String>,
    ) -> Self {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join(format!("worker-{metrics_port}.yaml"));
        std::fs::write(
            &config,
            format!(
                "consumer: {{namespace: bench, name: noop}}\nprocessor: {processor}\nsource:\n  sqs: {{queueUrl: '{url}', receivers: {receivers}, waitTimeSeconds: 1}}\nmetricsListen: '127.0.0.1:{metrics_port}'\n"
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["worker", "--config"])
            .arg(&config)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_REGION", &env["AWS_REGION"])
            .env("AWS_ACCESS_KEY_ID", &env["AWS_ACCESS_KEY_ID"])
            .env("AWS_SECRET_ACCESS_KEY", &env["AWS_SECRET_ACCESS_KEY"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start tributary worker");
        Self { child, metrics_port }
    }

    fn metric(&self, name: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    /// Peak resident memory (VmHWM) in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Fills the queue and drains it with a worker running `processor`: messages per second (from the
/// worker's start to the queue empty), and the worker's peak RSS in MiB.
async fn worker_round(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    endpoint: &str,
    processor: &str,
    env: &HashMap<String, String>,
) -> (f64, f64) {
    let (count, receivers) = (setting("BENCH_MESSAGES", 20_000), setting("BENCH_RECEIVERS", 4));
    fill(sqs, url, count).await;
    let worker = Worker::start(url, endpoint, receivers, processor, env);
    let metric = "tributary_worker_messages_processed_total";
    while worker.metric(metric).is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    // Counted as done when the worker has acknowledged every message: processed and the queue empty.
    loop {
        let processed = worker.metric(metric).unwrap_or(0);
        if processed as usize >= count && depth(sqs, url).await == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let rss = worker.peak_rss_mib();
    worker.stop();
    (count as f64 / took.as_secs_f64(), rss)
}

/// The no-op container: answers every POST with 200 and no body, keeping connections alive; any GET (the
/// readiness path) with 200 as well. As fast as it can be: no framework, one task per connection.
async fn noop_container(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut stream = tokio::io::BufReader::new(stream);
            let mut line = String::new();
            loop {
                let mut length = 0usize;
                line.clear();
                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if stream.read_exact(&mut body).await.is_err()
                    || stream
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// p50 and p99 of the time `Container::deliver` takes per message against the no-op container at `url`,
/// `concurrency` deliveries in flight, over `count` messages like the queue's.
async fn delivery_latency(url: &str, concurrency: usize, count: usize) -> (Duration, Duration) {
    use futures::StreamExt as _;
    use tributary::worker::{
        config::DeliveryConfig, delivery::container::Container, delivery::ready::Readiness,
        delivery::reply::Reply, message::Message,
    };
    struct NoReplies;
    impl tributary::worker::delivery::reply::Replies for NoReplies {
        async fn publish(&self, _reply: Reply) -> tributary::cloud::Result<()> {
            Ok(())
        }
    }
    let config: DeliveryConfig = serde_yaml_ng::from_str(&format!(
        "url: '{url}'\nconcurrency: {concurrency}\nsource: /apis/tributary.dev/v1alpha1/namespaces/bench/queues/q\n"
    ))
    .unwrap();
    let container = Container::<NoReplies>::new(&config, None, Readiness::always()).unwrap();
    let message = |i: usize| Message {
        id: format!("m-{i}"),
        body: format!("{{\"orderId\":\"o-{i}\",\"pad\":\"{}\"}}", "x".repeat(260)),
        attributes: [("event".to_owned(), "OrderPlaced".to_owned())].into(),
        receive_count: 1,
        ..Message::default()
    };
    let mut took: Vec<Duration> = futures::stream::iter(0..count)
        .map(|i| {
            let (container, message) = (&container, message(i));
            async move {
                let started = Instant::now();
                let outcome = container.deliver(&message).await;
                assert_eq!(outcome, tributary::worker::processor::Outcome::Done);
                started.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    (at(0.50), at(0.99))
}

#[tokio::main]
async fn main() {
    let env = testbed_env();
    let endpoint =
        std::env::var("BENCH_SQS_ENDPOINT").unwrap_or_else(|_| env["ELASTICMQ_ENDPOINT_URL"].clone());
    let count = setting("BENCH_MESSAGES", 20_000);
    let receivers = setting("BENCH_RECEIVERS", 4);
    let rounds = setting("BENCH_ROUNDS", 2);
    let concurrency = setting("BENCH_CONCURRENCY", 40);
    let sqs = client(&endpoint, &env).await;
    let name = format!("bench-worker-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let container_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(noop_container(listener));
    let container = format!(
        "container\ndelivery: {{url: '{container_url}', readyUrl: '{container_url}healthz', concurrency: {concurrency}, source: /apis/tributary.dev/v1alpha1/namespaces/bench/queues/q}}"
    );
    println!("server {endpoint}: {count} messages per round, {receivers} receivers, {rounds} rounds");

    let (mut bare, mut noop, mut contract) = (Vec::new(), Vec::new(), Vec::new());
    let mut rss = 0.0f64;
    for round in 1..=rounds {
        fill(&sqs, &url, count).await;
        let took = bare_loop(&sqs, &url, count, receivers).await;
        bare.push(count as f64 / took.as_secs_f64());
        let (rate, peak) = worker_round(&sqs, &url, &endpoint, "noop", &env).await;
        noop.push(rate);
        rss = rss.max(peak);
        let (rate, peak) = worker_round(&sqs, &url, &endpoint, &container, &env).await;
        contract.push(rate);
        rss = rss.max(peak);
        println!(
            "round {round}: bare loop {:.0} msg/s | worker noop {:.0} msg/s | worker container (no-op container) {:.0} msg/s",
            bare[round - 1],
            noop[round - 1],
            contract[round - 1]
        );
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (b, n, c) = (best(&bare), best(&noop), best(&contract));
    println!(
        "best: bare loop {b:.0} msg/s; worker noop {n:.0} msg/s (ratio to bare {:.2})",
        n / b
    );
    println!(
        "best: worker container {c:.0} msg/s next to worker noop {n:.0} msg/s: ratio {:.2} (goal >= 0.80)",
        c / n
    );
    println!("worker peak RSS {rss:.1} MiB");
    let (p50, p99) = delivery_latency(&container_url, concurrency.min(8), count.min(20_000)).await;
    println!(
        "added latency per message (Container::deliver, request to response, 8 in flight): p50 {:.3} ms, p99 {:.3} ms",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    let (p50, p99) = delivery_latency(&container_url, 1, count.min(5_000)).await;
    println!(
        "added latency per message (one at a time): p50 {:.3} ms, p99 {:.3} ms",
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    let _ = sqs.delete_queue().queue_url(&url).send().await;
}
