//! The device pipeline end to end on the test bed, from `examples/devices` (with the test bed's account,
//! endpoints and unique names put in): the controller in this process makes the Event Hub through the
//! tests' ARM fake (whose hubs are topics on the Kafka broker, SASL_SSL/PLAIN as the Event Hubs
//! endpoint), the dead-letter Storage Queue in Azurite and the Consumer's workers, and scales them on the
//! consumer group's lag, capped at the 4 partitions. Two `tributary worker` processes run from the
//! ConfigMap the controller wrote, with the environment its Deployment takes from Secrets (what the
//! kubelet would do), and read 10,000 device events (some malformed, some sent twice); one is killed
//! (SIGKILL) mid-run. Afterwards every valid event is one document in cosmium, the malformed ones are in
//! the dead letter with the field and rule that refused them, and the Consumer's status shows no lag. A
//! redrive of the dead letter then sends each one back to the hub through the Kafka endpoint (the event as
//! it came, with its key), where the survivor reads it again and, since it is still malformed,
//! dead-letters it again, once.
//! The figures it prints (events per second, lag recovery after the kill, Cosmos writes per event) come
//! from this one run.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::ConfigMap};
use kube::Api;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use serde_json::json;
use tributary::{
    cloud::azure::{
        cosmos::{ContainerAddress, CosmosContainer},
        kafka::{KafkaEndpoint, lag},
    },
    worker::config::WorkerConfig,
};

const EVENTS: usize = 10_000;
const DEVICES: usize = 40;
const CONVERGE: Duration = Duration::from_secs(60);
/// How long reading the dead letter hides its messages.
const HIDE_SECONDS: i32 = 5;

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

/// The `i`th event: valid, except every 97th, which breaks one rule in turn.
fn event(i: usize) -> (String, String, Option<&'static str>) {
    let device = format!("device-{}", i % DEVICES);
    let id = format!("evt-{i:05}");
    if i % 97 == 13 {
        let (body, rule) = match (i / 97) % 4 {
            0 => (format!("{{not json {i}"), "not valid JSON"),
            1 => (
                format!(r#"{{"eventId":"{id}","deviceId":"{device}","readings":{{"celsius":1}}}}"#),
                "timestamp: required",
            ),
            2 => (
                format!(
                    r#"{{"eventId":"{id}","deviceId":"{device}","timestamp":"2026-12-03T06:00:00Z","readings":{{"celsius":"warm"}}}}"#
                ),
                "readings.celsius: must be a number",
            ),
            _ => (
                format!(
                    r#"{{"eventId":"a/{id}","deviceId":"{device}","timestamp":"2026-12-03T06:00:00Z","readings":{{"celsius":1}}}}"#
                ),
                "eventId: must not contain '/'",
            ),
        };
        return (device, body, Some(rule));
    }
    let body = format!(
        r#"{{"eventId":"{id}","deviceId":"{device}","timestamp":"2026-12-03T06:{:02}:{:02}Z","type":"reading","readings":{{"celsius":{}.5,"humidity":{}}}}}"#,
        (i / 60) % 60,
        i % 60,
        i % 40,
        i % 100
    );
    (device, body, None)
}

/// Sends every `(key, body)` to `topic`, 256 at a time.
async fn send_all(producer: &FutureProducer, topic: &str, events: &[(String, String)]) {
    futures::stream::iter(events)
        .for_each_concurrent(256, |(key, body)| async move {
            producer
                .send(
                    FutureRecord::to(topic).key(key).payload(body),
                    Duration::from_secs(30),
                )
                .await
                .unwrap();
        })
        .await;
}

/// A worker process with `env` (the Deployment's environment, Secrets resolved).
fn spawn(file: &std::path::Path, log: &std::path::Path, env: &BTreeMap<String, String>) -> Child {
    Command::new(common::tributary_bin())
        .args(["worker", "--config"])
        .arg(file)
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn group_lag(topic: &str, group: &str) -> Option<i64> {
    let (topic, group) = (topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || lag(&endpoint(), &topic, &group, Duration::from_secs(10)))
        .await
        .unwrap()
        .ok()
        .map(|l| l.total)
}

#[tokio::test]
async fn the_device_example_runs_ten_thousand_events_with_two_workers_one_killed() {
    // Alone: 10,000 events through two worker processes, the Kafka broker and cosmium load both cores for
    // minutes; the throughput and lag-recovery figures printed are those of a quiet test bed.
    let _bed = common::exclusive().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "e2e-devices").await;
    let fake = common::arm_fake().await;
    let event_hubs = common::event_hubs_config(&fake, "00000000-0000-0000-0000-000000000002", "devices");
    let controller =
        common::start_controller_with(&client, &ns, &common::aws_config().await, Some(event_hubs)).await;
    let database = common::devices_bed::apply_example(&client, &ns).await;
    let dlq_url = common::devices_bed::wait_available(&client, &ns, CONVERGE).await;
    let topic = format!("{ns}_telemetry");
    let group = "device-processor";
    let dlq = common::azure_queue_service()
        .queue_client(dlq_url.rsplit('/').next().unwrap())
        .unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let rendered = config_maps.get("device-processor-worker").await.unwrap();
    let config: WorkerConfig = serde_yaml_ng::from_str(&rendered.data.unwrap()["worker.yaml"]).unwrap();
    assert_eq!(config.source.kafka.as_ref().unwrap().topic, topic);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = deployments.get("device-processor-worker").await.unwrap();
    let env = common::devices_bed::deployment_env(&client, &ns, &deployment).await;
    assert!(
        env.contains_key("KAFKA_SASL_PASSWORD")
            && env.contains_key("AZURE_COSMOS_KEY")
            && env.contains_key("AZURE_STORAGE_KEY"),
        "{:?}",
        env.keys()
    );

    // Every event once, and every 50th valid one a second time (a device resending it).
    let producer: FutureProducer = kafka_config()
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let mut malformed = BTreeMap::new();
    let mut valid = BTreeSet::new();
    let mut sends = Vec::new();
    for i in 0..EVENTS {
        let (device, body, rule) = event(i);
        match rule {
            Some(rule) => {
                malformed.insert(body.clone(), rule);
            }
            None => {
                valid.insert((device.clone(), format!("evt-{i:05}")));
                if i % 50 == 0 {
                    sends.push((device.clone(), body.clone()));
                }
            }
        }
        sends.push((device, body));
    }
    let topic_ref = topic.as_str();
    send_all(&producer, topic_ref, &sends).await;
    assert_eq!(
        group_lag(&topic, group).await,
        Some(sends.len() as i64),
        "all sent, none read"
    );

    // The controller sees the lag and scales: ⌈10,198 / 1,000⌉ = 11 wanted, within a maxReplicas of 20,
    // capped at the 4 partitions.
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    consumers
        .patch(
            "device-processor",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"scaling": {"maxReplicas": 20}}})),
        )
        .await
        .unwrap();
    common::eventually("the backlog in status and 4 replicas", CONVERGE, || async {
        let consumer = consumers.get("device-processor").await.ok()?;
        let backlog = consumer.data["status"]["backlog"].as_i64()?;
        let replicas = deployments
            .get("device-processor-worker")
            .await
            .ok()?
            .spec?
            .replicas?;
        (backlog == sends.len() as i64 && replicas == 4).then_some(())
    })
    .await;

    let dir = std::env::temp_dir().join(common::unique("worker-devices"));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = [common::free_port(), common::free_port()];
    let mut workers = Vec::new();
    for (n, port) in ports.iter().enumerate() {
        // The test bed's tweaks: a local metrics port, and a short session so the kill is noticed soon.
        let mut config = config.clone();
        config.metrics_listen = ([127, 0, 0, 1], *port).into();
        config.consumer.name = format!("device-processor-{n}");
        if let Some(kafka) = config.source.kafka.as_mut() {
            kafka.session_timeout_seconds = 6;
        }
        let file = dir.join(format!("worker-{n}.yaml"));
        std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        workers.push(spawn(&file, &dir.join(format!("worker-{n}.log")), &env));
    }
    let started = Instant::now();

    // Kill the first worker once the pair has settled a fifth of the events (the first one must have
    // done some of them, so the kill loses work in flight).
    let mut settled = 0;
    let mut killed_at_processed = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        let a = common::metric(ports[0], "tributary_worker_messages_processed_total")
            .await
            .unwrap_or(0);
        let b = common::metric(ports[1], "tributary_worker_messages_processed_total")
            .await
            .unwrap_or(0);
        settled = a + b;
        if settled >= (EVENTS / 5) as u64 && a > 0 {
            killed_at_processed = a;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        killed_at_processed > 0,
        "both workers worked before the kill (settled {settled})"
    );
    let writes_before_kill = common::metric(ports[0], "tributary_worker_sink_writes_total")
        .await
        .unwrap_or(0);
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    let killed = Instant::now();

    let mut recovered = None;
    while killed.elapsed() < Duration::from_secs(300) {
        if group_lag(&topic, group).await == Some(0) {
            recovered = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed();
    let recovered = recovered.unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.join("worker-1.log")).unwrap_or_default();
        panic!("the surviving worker took over and caught up within 300 s; its log:\n{log}")
    });
    assert!(
        workers[1].try_wait().unwrap().is_none(),
        "the survivor is still running"
    );

    // Every valid event is its document (read back by id in its partition); no malformed one is.
    let container = CosmosContainer::open(
        &ContainerAddress {
            endpoint: common::var("COSMOS_ENDPOINT"),
            key: common::var("COSMOS_KEY"),
            database: database.clone(),
            container: "readings".into(),
            partition_key_path: "/deviceId".into(),
            preferred_region: "East US".into(),
        },
        false,
    )
    .await
    .unwrap();
    let container = &container;
    let missing: Vec<String> = futures::stream::iter(&valid)
        .map(|(device, id)| async move {
            let document = container.read(device, id).await.unwrap();
            match document {
                Some(d)
                    if d["id"] == id.as_str()
                        && d["deviceId"] == device.as_str()
                        && d["readings"]["celsius"].is_number()
                        && d["stream"]["topic"] == topic_ref =>
                {
                    None
                }
                other => Some(format!("{id}: {other:?}")),
            }
        })
        .buffer_unordered(32)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        missing.is_empty(),
        "{} valid events without their document, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    for body in malformed.keys() {
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(body)
            && let (Some(device), Some(id)) = (event["deviceId"].as_str(), event["eventId"].as_str())
            && !id.contains('/')
        {
            assert_eq!(
                container.read(device, id).await.unwrap(),
                None,
                "malformed {id} was not written"
            );
        }
    }

    // Each malformed event is in the dead letter, unchanged, with its rule in the reason. One the killed
    // worker dead-lettered but did not commit is dead-lettered again by the survivor: at least once.
    let dead = common::azure_read(&dlq, HIDE_SECONDS).await;
    let read_at = Instant::now();
    let dead_letters = dead.len();
    let mut by_body: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (body, attributes) in dead {
        let reason = attributes
            .get("tributary-dead-letter-reason")
            .cloned()
            .unwrap_or_default();
        assert!(attributes.contains_key("kafka-position"), "{attributes:?}");
        by_body.entry(body).or_default().push(reason);
    }
    assert_eq!(
        by_body.keys().collect::<BTreeSet<_>>(),
        malformed.keys().collect::<BTreeSet<_>>(),
        "the dead letter holds exactly the malformed events"
    );
    for (body, rule) in &malformed {
        let reasons = &by_body[body];
        let reason: serde_json::Value = serde_json::from_str(&reasons[0]).unwrap();
        assert!(
            reason["reason"].as_str().unwrap().contains(rule),
            "{body}: {reason}"
        );
        let consumer = reason["consumer"].as_str().unwrap();
        assert!(
            consumer.starts_with(&format!("{ns}/device-processor-")),
            "{reason}"
        );
    }

    // A redrive sends each dead letter back to the hub it was read from (the event as it came, with its
    // key), where the survivor reads it again: still malformed, so dead-lettered again with its rule.
    tokio::time::sleep(Duration::from_secs(HIDE_SECONDS as u64).saturating_sub(read_at.elapsed())).await;
    let dead_letters_api = common::tributary_api(&client, &ns, "DeadLetter");
    let redrive = json!({"spec": {"redrive": {"id": "review-1", "maxMessagesPerSecond": 50}}});
    let redrive_started = Instant::now();
    dead_letters_api
        .patch(
            "devices-dlq",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&redrive),
        )
        .await
        .unwrap();
    let last = common::eventually("the redrive to the hub to finish", CONVERGE, || async {
        let last = dead_letters_api.get("devices-dlq").await.ok()?.data["status"]["lastRedrive"].clone();
        (last["id"] == "review-1" && last["state"] != "Running").then_some(last)
    })
    .await;
    let redrive_seconds = redrive_started.elapsed().as_secs_f64();
    assert_eq!(last["state"], "Completed", "{last}");
    assert_eq!(last["moved"], dead_letters as i64, "{last}");
    common::eventually("the redriven events read again", CONVERGE, || async {
        (group_lag(&topic, group).await? == 0).then_some(())
    })
    .await;
    let again = common::eventually("every redriven event dead-lettered again", CONVERGE, || async {
        let again = common::azure_read(&dlq, 1).await;
        (again.len() >= dead_letters).then_some(again)
    })
    .await;
    assert_eq!(again.len(), dead_letters, "once each");
    for (body, attributes) in &again {
        let rule = malformed
            .get(body)
            .unwrap_or_else(|| panic!("not a malformed event: {body}"));
        let reason: serde_json::Value =
            serde_json::from_str(&attributes["tributary-dead-letter-reason"]).unwrap();
        assert!(reason["reason"].as_str().unwrap().contains(rule), "{reason}");
        assert_eq!(
            reason["consumer"],
            format!("{ns}/device-processor-1"),
            "read again by the survivor"
        );
        assert!(
            attributes["kafka-position"].starts_with(&format!("{topic}/")),
            "{attributes:?}"
        );
    }

    let writes_after = common::metric(ports[1], "tributary_worker_sink_writes_total")
        .await
        .unwrap();
    let writes = writes_before_kill + writes_after;
    let events = sends.len() - malformed.len();
    assert!(writes >= events as u64, "every valid event written at least once");
    println!(
        "device pipeline: {} events ({} distinct valid, {} malformed) in {:.1} s = {:.0} events/s end to end; \
         lag back to 0 {:.1} s after the kill (session timeout 6 s); Cosmos writes per valid event ≥ {:.3} \
         ({writes} writes seen; the killed worker's last ones are not); redrive of {dead_letters} dead letters \
         back to the hub at 50/s took {redrive_seconds:.1} s",
        sends.len(),
        valid.len(),
        malformed.len(),
        total.as_secs_f64(),
        sends.len() as f64 / total.as_secs_f64(),
        recovered.as_secs_f64(),
        writes as f64 / events as f64,
    );
    // A SIGTERM in the middle of a batch: the worker finishes and commits it, and exits cleanly.
    let more: Vec<(String, String)> = (EVENTS..EVENTS + 3_000)
        .map(|i| {
            let (d, b, _) = event(i);
            (d, b)
        })
        .collect();
    let before = common::metric(ports[1], "tributary_worker_messages_received_total")
        .await
        .unwrap();
    let sending = send_all(&producer, topic_ref, &more);
    let terminate = async {
        common::eventually("the survivor busy again", CONVERGE, || async {
            let received = common::metric(ports[1], "tributary_worker_messages_received_total").await?;
            (received > before).then_some(())
        })
        .await;
        let _ = Command::new("kill")
            .args(["-TERM", &workers[1].id().to_string()])
            .status();
    };
    tokio::join!(sending, terminate);
    assert!(workers[1].wait().unwrap().success(), "a clean shutdown mid-batch");
    let file = dir.join("worker-1.yaml");
    workers.push(spawn(&file, &dir.join("worker-2.log"), &env));
    common::eventually("the rest read by a new worker", CONVERGE, || async {
        (group_lag(&topic, group).await? == 0).then_some(())
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &workers[2].id().to_string()])
        .status();
    assert!(workers[2].wait().unwrap().success(), "a clean shutdown");
    common::eventually("no backlog in status", CONVERGE, || async {
        let consumer = consumers.get("device-processor").await.ok()?;
        (consumer.data["status"]["backlog"].as_i64()? == 0).then_some(())
    })
    .await;
    controller.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
