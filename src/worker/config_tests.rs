//! Tests of the worker configuration: defaults, refusals by name, retry delays.

use super::*;

fn sqs_config(processor: &str) -> String {
    format!(
        "consumer: {{namespace: shop, name: inventory}}\nprocessor: {processor}\nsource:\n  sqs: {{queueUrl: 'http://q'}}\nsink: {{table: orders}}\n"
    )
}

#[test]
fn a_minimal_file_gets_the_defaults() {
    let config: WorkerConfig = serde_yaml_ng::from_str(&sqs_config("inventory")).unwrap();
    config.validate().unwrap();
    let sqs = config.source.sqs.unwrap();
    assert_eq!(
        (
            sqs.visibility_timeout_seconds,
            sqs.receivers,
            sqs.wait_time_seconds
        ),
        (30, 4, 20)
    );
    assert_eq!(config.retry, Retry::default());
    assert_eq!(config.metrics_listen.port(), 9090);
    assert_eq!(config.consumer.to_string(), "shop/inventory");
}

#[test]
fn unknown_fields_are_reported_by_path_and_bad_combinations_refused_by_name() {
    // A field of a newer version (or a typo) is read past and named, at the top and nested.
    let newer = format!("{}recievers: 3\n", sqs_config("inventory"))
        .replace("source:\n", "source:\n  priority: high\n");
    let (config, unknown) = WorkerConfig::parse(&newer).unwrap();
    assert_eq!(unknown, ["source.priority", "recievers"]);
    config.validate().unwrap();

    let order_ack: WorkerConfig = serde_yaml_ng::from_str(&sqs_config("order-ack")).unwrap();
    let error = order_ack.validate().unwrap_err().to_string();
    assert!(error.contains("source.http"), "{error}");

    let storage = "consumer: {namespace: d, name: n}\nprocessor: noop\nsource:\n  storageQueue: {queueUrl: 'http://127.0.0.1:1/acct/q', account: acct}\n";
    let config: WorkerConfig = serde_yaml_ng::from_str(storage).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config
            .source
            .storage_queue
            .as_ref()
            .unwrap()
            .visibility_timeout_seconds,
        30
    );
    let mut both = config.clone();
    both.source.sqs = order_ack.source.sqs.clone();
    let error = both.validate().unwrap_err().to_string();
    assert!(
        error.contains("exactly one of sqs, storageQueue, kafka and http"),
        "{error}"
    );
    let mut slow = config;
    if let Some(s) = slow.source.storage_queue.as_mut() {
        s.wait_time_seconds = 30;
    }
    let error = slow.validate().unwrap_err().to_string();
    assert!(error.contains("source.storageQueue.waitTimeSeconds"), "{error}");

    let mut no_table: WorkerConfig = serde_yaml_ng::from_str(&sqs_config("shipment")).unwrap();
    no_table.sink.table = None;
    assert!(
        no_table
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sink.table")
    );
}

#[test]
fn retry_delays_double_up_to_the_cap() {
    let retry = Retry {
        max_attempts: 5,
        initial_backoff_seconds: 2,
        max_backoff_seconds: 20,
    };
    let delays: Vec<_> = (1..=6).map(|a| retry.delay_seconds(a)).collect();
    assert_eq!(delays, [2, 4, 8, 16, 20, 20]);
    assert_eq!(retry.delay_seconds(200), 20, "no overflow");
    assert!(!retry.exhausted(4) && retry.exhausted(5));
    let long = Retry {
        max_backoff_seconds: u32::MAX,
        ..retry
    };
    assert_eq!(long.delay_seconds(40), Retry::MAX_DELAY_SECONDS);
}

const DELIVERY: &str = "delivery:\n  url: http://127.0.0.1:8080/\n  readyUrl: http://127.0.0.1:8080/healthz\n  source: /apis/tributary.dev/v1alpha1/namespaces/shop/queues/orders\n  futureField: 1\n";

#[test]
fn processor_container_reads_the_delivery_block_from_a_queue_or_a_stream() {
    let text = format!("{}{DELIVERY}", sqs_config("container"));
    let (config, unknown) = WorkerConfig::parse(&text).unwrap();
    assert_eq!(unknown, ["delivery.?.futureField"], "tolerant like the rest");
    config.validate().unwrap();
    let delivery = config.delivery.as_ref().unwrap();
    assert_eq!((delivery.timeout_seconds, delivery.concurrency), (30, 8));
    assert_eq!(delivery.type_attribute, "type");

    let kafka = format!(
        "consumer: {{namespace: d, name: n}}\nprocessor: container\nsource:\n  kafka: {{bootstrapServers: '127.0.0.1:9092', topic: t, consumerGroup: g}}\n{DELIVERY}"
    );
    let (config, _) = WorkerConfig::parse(&kafka).unwrap();
    config.validate().unwrap();
}

#[test]
fn the_delivery_block_goes_with_processor_container_only() {
    let error = |text: &str| {
        let (config, _) = WorkerConfig::parse(text).unwrap();
        config.validate().unwrap_err().to_string()
    };
    let missing = error(&sqs_config("container"));
    assert!(
        missing.contains("processor container needs the delivery block"),
        "{missing}"
    );
    let stray = error(&format!("{}{DELIVERY}", sqs_config("inventory")));
    assert!(stray.contains("read by processor container only"), "{stray}");
    let bad = error(
        &format!("{}{DELIVERY}", sqs_config("container")).replace("8080/\n", "8080/\n  timeoutSeconds: 0\n"),
    );
    assert!(bad.contains("delivery.timeoutSeconds"), "{bad}");
    let http = error(&format!("{}{DELIVERY}", sqs_config("container")).replace(
        "  sqs: {queueUrl: 'http://q'}",
        "  http: {listen: '127.0.0.1:8081'}",
    ));
    assert!(http.contains("source.http serves the order endpoint"), "{http}");
}
