//! Readiness that tracks the source: the order endpoint's `/readyz` turns 503, naming its table, while
//! moto (its DynamoDB) is stopped, and 200 again once moto is back; the device worker's `/readyz` turns
//! 503, naming its Kafka topic, while the broker is stopped, and 200 again once it is back. Both run with
//! a 3-second readiness bound (`unreachableAfterSeconds`) instead of the default 30 s, so each test takes
//! seconds. The figures (outage start to 503, restart to 200) are printed.
#![allow(clippy::unwrap_used)]

use crate::support::{self as common, outage::Service};

use std::time::{Duration, Instant};

use tributary::worker::{
    endpoints,
    health::{Bounds, Health},
    metrics::WorkerMetrics,
    orders::{ingress::Ingress, model::OrderEvent, publish::Publisher, table::OrderTable},
};

/// The readiness bound of these tests.
const BOUND: Duration = Duration::from_secs(3);
/// How long `/readyz` may take to follow the source, either way: the bound, the checks' period and a
/// failed call's retries, with room for a loaded machine.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(30);

/// Publishes nothing: the relay's reads are what these tests look at.
#[derive(Clone)]
struct Nowhere;

impl Publisher for Nowhere {
    async fn publish(&self, _event: &OrderEvent, _traceparent: &str) -> tributary::cloud::Result<()> {
        Ok(())
    }
}

/// `/readyz` on `port`: status and body.
async fn readyz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Asserts `/readyz` on `port` keeps answering 200 for longer than the bound: every check of the source
/// succeeds while it is up (a check that failed all along would still answer 200 within the bound).
async fn stays_ready(port: u16) {
    let until = Instant::now() + BOUND + Duration::from_secs(2);
    while Instant::now() < until {
        let answer = readyz(port).await;
        assert!(
            matches!(&answer, Some((200, _))),
            "/readyz while the source is up: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `/readyz` on `port` answers `status`; its body and how long it took from `since`.
async fn readyz_becomes(port: u16, status: u16, since: Instant) -> (String, Duration) {
    let body = common::eventually(&format!("/readyz to answer {status}"), FOLLOWS_WITHIN, || async {
        readyz(port)
            .await
            .filter(|(s, _)| *s == status)
            .map(|(_, body)| body)
    })
    .await;
    (body, since.elapsed())
}

#[tokio::test]
async fn the_order_endpoint_is_not_ready_while_its_table_cannot_be_reached() {
    let _bed = common::exclusive().await;
    let aws = common::aws_config().await;
    let name = common::unique("ready-orders");
    let table = OrderTable::new(aws_sdk_dynamodb::Client::new(&aws), &name);
    table.ensure().await.unwrap();
    let metrics = WorkerMetrics::with_health(Health::with_bounds(Bounds {
        unreachable_after: BOUND,
        ..Bounds::default()
    }));
    metrics.health().name_source(format!("DynamoDB table {name}"));
    let ingress = Ingress::new(table, Nowhere, metrics.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    // The relay's pass every 500 ms reads the outbox: the endpoint's periodic check of its table.
    let relay = tokio::spawn(ingress.relay(Duration::from_millis(500), Duration::from_secs(30), shutdown()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = endpoints::State {
        metrics,
        consumer: "test/orders".into(),
        processor: "order-ack",
    };
    let server = tokio::spawn(endpoints::serve(listener, state, shutdown()));
    readyz_becomes(port, 200, Instant::now()).await;

    let down = Service::Moto.stop().await;
    let stopped_at = Instant::now();
    let (body, to_503) = readyz_becomes(port, 503, stopped_at).await;
    assert!(
        body.contains("cannot be reached") && body.contains(&format!("DynamoDB table {name}")),
        "{body}"
    );
    assert!(to_503 >= BOUND, "not before the bound: {to_503:?}");
    down.start().await;
    let started_at = Instant::now();
    let (body, to_200) = readyz_becomes(port, 200, started_at).await;
    assert_eq!(body, "ok");
    eprintln!(
        "order endpoint readiness (bound {} s): 503 {} ms after moto stopped, 200 {} ms after it started",
        BOUND.as_secs(),
        to_503.as_millis(),
        to_200.as_millis()
    );
    stop.send(true).unwrap();
    relay.await.unwrap();
    server.await.unwrap();
}

/// The device worker's `worker.yaml`: `topic` read into the database `database`, readiness bound
/// [`BOUND`].
fn device_config(topic: &str, database: &str, port: u16) -> String {
    format!(
        "consumer: {{namespace: test, name: {topic}}}\nprocessor: device\nsource:\n  kafka: {{bootstrapServers: '{}', topic: {topic}, consumerGroup: {topic}, username: '{}', caFile: '{}', sessionTimeoutSeconds: 6}}\nsink:\n  cosmos: {{endpoint: '{}', database: {database}, container: readings, createIfMissing: true}}\nmetricsListen: 127.0.0.1:{port}\ndrainSeconds: 2\nunreachableAfterSeconds: {}\n",
        common::var("KAFKA_BOOTSTRAP"),
        common::var("KAFKA_SASL_USERNAME"),
        common::var("KAFKA_CA_FILE"),
        common::var("COSMOS_ENDPOINT"),
        BOUND.as_secs(),
    )
}

/// Stops the worker (SIGTERM) and waits for it.
fn stop(mut worker: std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let _ = worker.wait();
}

#[tokio::test]
async fn the_device_worker_is_not_ready_while_the_broker_cannot_be_reached() {
    let _bed = common::exclusive().await;
    let topic = common::unique("ready-devices");
    common::devices_bed::create_topic(&topic, 1).await;
    let dir = std::env::temp_dir().join(common::unique("ready-devices"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = common::free_port();
    let file = dir.join("worker.yaml");
    std::fs::write(&file, device_config(&topic, &topic, port)).unwrap();
    let worker = std::process::Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(&file)
        .env("KAFKA_SASL_PASSWORD", common::var("KAFKA_SASL_PASSWORD"))
        .env("AZURE_COSMOS_KEY", common::var("COSMOS_KEY"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("worker.log")).unwrap())
        .spawn()
        .unwrap();
    readyz_becomes(port, 200, Instant::now()).await;
    stays_ready(port).await;

    let down = Service::Kafka.stop().await;
    let stopped_at = Instant::now();
    let (body, to_503) = readyz_becomes(port, 503, stopped_at).await;
    assert!(
        body.contains("cannot be reached") && body.contains(&format!("Kafka topic {topic}")),
        "{body}"
    );
    down.start().await;
    let started_at = Instant::now();
    let (body, to_200) = readyz_becomes(port, 200, started_at).await;
    assert_eq!(body, "ok");
    eprintln!(
        "device worker readiness (bound {} s): 503 {} ms after the broker stopped, 200 {} ms after it started",
        BOUND.as_secs(),
        to_503.as_millis(),
        to_200.as_millis()
    );
    stop(worker);
    std::fs::remove_dir_all(&dir).unwrap();
}
