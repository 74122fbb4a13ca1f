//! The user's processor running for real: the Go example (`examples/custom/go`, its image built by
//! `image.sh` and imported into the test bed's real node) as the native sidecar of a Consumer's worker pod
//! on an SQS Queue, the pod on the real node (a namespace placed there, `support/node.rs`), the worker of
//! the node's tributary image. The controller runs as a host process with the emulators' endpoints at the
//! node address, which it hands to the workers in their pods.
//!
//! What is checked, from the pod's status, both containers' logs (with the kubelet's nanosecond
//! timestamps) and the queues:
//! - the processor starts first, the worker only once the processor answers its readiness path (held back
//!   by `READY_AFTER`), and messages flow end to end: each recorded once, a poisoned one dead-lettered
//!   with `HTTP 400` and the processor's answer;
//! - the processor's container killed (SIGKILL through containerd) with requests in flight: the pod is not
//!   ready until the restarted container answers, and every message in flight is delivered again to the
//!   new container and recorded once, nothing dead-lettered;
//! - the pod deleted with deliveries in flight: the worker stops receiving, finishes them, exits, and only
//!   then is the processor stopped; every message is recorded once, those sent after the deletion by the
//!   replacement pod.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use aws_sdk_sqs::types::QueueAttributeName;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::{
    api::core::v1::{ContainerStatus, Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::{Value, json};

use common::node;

/// The ledger's image, as `examples/custom/go/image.sh` names it.
const IMAGE: &str = "tributary.local/examples/ledger:0.1";
const CONSUMER: &str = "ledger";
const SELECTOR: &str = "tributary.dev/consumer=ledger";
/// Bound of every wait for the controller, the pod or the messages.
const CONVERGE: Duration = Duration::from_secs(90);

/// One line of a container's log: when the kubelet read it, and the JSON object the program wrote.
#[derive(Clone, Debug)]
struct Line {
    at: Timestamp,
    entry: Value,
}

impl Line {
    /// The line's message: the Go processor's `msg`, the worker's `fields.message`.
    fn message(&self) -> &str {
        self.entry["msg"]
            .as_str()
            .or_else(|| self.entry["fields"]["message"].as_str())
            .unwrap_or_default()
    }

    /// The event id the processor's line is about.
    fn id(&self) -> &str {
        self.entry["id"].as_str().unwrap_or_default()
    }
}

/// The lines of a log read with `timestamps: true`; lines that are not JSON (none expected) are skipped.
fn parse_log(text: &str) -> Vec<Line> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Line> {
    let (at, rest) = line.split_once(' ')?;
    Some(Line {
        at: at.parse().ok()?,
        entry: serde_json::from_str(rest).ok()?,
    })
}

/// The ids of the lines saying `message`.
fn ids(lines: &[Line], message: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.message() == message)
        .map(|l| l.id().to_owned())
        .collect()
}

/// The first line saying `message`.
fn first<'a>(lines: &'a [Line], message: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.message() == message)
        .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

/// Builds the ledger's image (`examples/custom/go/image.sh`) and imports it into the node, once per run.
async fn import_ledger_image() {
    static IMPORTED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    IMPORTED
        .get_or_init(|| async {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let archive = root.join("target/image/ledger.tar");
            let started = Instant::now();
            let built = Command::new("bash")
                .arg(root.join("examples/custom/go/image.sh"))
                .arg(&archive)
                .arg(IMAGE)
                .output()
                .unwrap();
            assert!(
                built.status.success(),
                "examples/custom/go/image.sh failed: {}",
                String::from_utf8_lossy(&built.stderr)
            );
            import_image(&archive);
            eprintln!(
                "ledger image built and imported into the node in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        })
        .await;
}

/// The lines of a followed log, as they come.
type Followed = std::sync::Arc<std::sync::Mutex<Vec<Line>>>;

/// Imports an image archive into the node's containerd (the namespace of the kubelet's pods).
fn import_image(archive: &std::path::Path) {
    let ctr = format!("{}/bin/ctr", common::var("TESTBED_DIR"));
    let output = Command::new(&ctr)
        .args([
            "--address",
            &common::var("CONTAINERD_ADDRESS"),
            "--namespace",
            "k8s.io",
        ])
        .args(["images", "import"])
        .arg(archive)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {ctr}: {e}"));
    assert!(
        output.status.success(),
        "ctr images import {}: {}",
        archive.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A namespace on the real node running the Go example's pipeline, and the controller reconciling it.
struct NodePipeline {
    ns: String,
    client: kube::Client,
    pods: Api<Pod>,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dead_letter_url: String,
    controller: Child,
    work: PathBuf,
    applied: Instant,
}

impl NodePipeline {
    /// The example's pipeline (one replica, the Queue's visibility timeout 10 s) with `env` for the
    /// processor, in a new real-node namespace; returns once the Consumer is Available (its pod Ready).
    async fn start(prefix: &str, env: &[(&str, &str)]) -> Self {
        let client = common::kube_client().await;
        common::install_crds(&client).await;
        import_ledger_image().await;
        let ns = node::real_node_namespace(&client, prefix).await;
        common::tenant_policy(&client, &ns, json!({"images": ["tributary.local/examples/*"]})).await;
        worker_credentials(&client, &ns).await;
        let work = std::env::temp_dir().join(common::unique("pods-custom"));
        std::fs::create_dir_all(&work).unwrap();
        let controller = spawn_controller(&ns, &work);

        let applied = Instant::now();
        for object in pipeline_objects(env) {
            let kind = object.types.as_ref().unwrap().kind.clone();
            common::tributary_api(&client, &ns, &kind)
                .create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
        }
        let url =
            |object: kube::api::DynamicObject| object.data["status"]["url"].as_str().unwrap().to_owned();
        let queue = common::wait_reason(&client, &ns, "Queue", "ledger-events", "Available", CONVERGE).await;
        let dead = common::wait_reason(&client, &ns, "DeadLetter", "ledger-dlq", "Available", CONVERGE).await;
        let pipeline = Self {
            pods: Api::namespaced(client.clone(), &ns),
            sqs: aws_sdk_sqs::Client::new(&common::aws_config().await),
            queue_url: url(queue),
            dead_letter_url: url(dead),
            ns,
            client,
            controller,
            work,
            applied,
        };
        pipeline.wait_available().await;
        pipeline
    }

    async fn wait_available(&self) {
        let what = format!(
            "Consumer {CONSUMER} Available (controller log: {})",
            self.work.join("controller.log").display()
        );
        common::eventually(&what, CONVERGE, || async {
            let object = common::tributary_api(&self.client, &self.ns, "Consumer")
                .get(CONSUMER)
                .await
                .ok()?;
            let (_, reason, _, _) = common::condition(&object, "Ready")?;
            (reason == "Available").then_some(())
        })
        .await;
    }

    /// The Consumer's pod that is Ready and not one of `old`.
    async fn ready_pod(&self, old: &[String]) -> Pod {
        common::eventually("a Ready worker pod", CONVERGE, || async {
            let pods = self
                .pods
                .list(&ListParams::default().labels(SELECTOR))
                .await
                .ok()?;
            pods.items.into_iter().find(|pod| {
                let name = pod.metadata.name.clone().unwrap_or_default();
                !old.contains(&name) && pod.metadata.deletion_timestamp.is_none() && node::is_ready(pod)
            })
        })
        .await
    }

    /// The log of `container` of `pod` (its previous instance with `previous`).
    async fn log(&self, pod: &str, container: &str, previous: bool) -> Vec<Line> {
        let params = LogParams {
            container: Some(container.to_owned()),
            timestamps: true,
            previous,
            ..LogParams::default()
        };
        parse_log(&self.pods.logs(pod, &params).await.unwrap())
    }

    /// Follows the log of `container` of `pod` until the container ends: the lines as they come, and the
    /// task reading them (done when the container is).
    async fn follow(&self, pod: &str, container: &str) -> (Followed, tokio::task::JoinHandle<()>) {
        let params = LogParams {
            container: Some(container.to_owned()),
            timestamps: true,
            follow: true,
            ..LogParams::default()
        };
        let mut lines = self.pods.log_stream(pod, &params).await.unwrap().lines();
        let read = Followed::default();
        let task = tokio::spawn({
            let read = read.clone();
            async move {
                while let Ok(Some(line)) = lines.try_next().await {
                    read.lock().unwrap().extend(parse_line(&line));
                }
            }
        });
        (read, task)
    }

    /// Sends each body to the queue; their SQS MessageIds (the `ce-id`s) in order.
    async fn send(&self, bodies: &[String]) -> Vec<String> {
        let mut sent = Vec::new();
        for body in bodies {
            let output = self
                .sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
            sent.push(output.message_id.unwrap());
        }
        sent
    }

    /// Waits until the processor log of `pod` (current instance) says `message` for every id of `ids`.
    async fn wait_lines(&self, pod: &str, message: &str, ids: &[String]) -> Vec<Line> {
        let wanted: BTreeSet<&String> = ids.iter().collect();
        common::eventually(
            &format!("{message} lines for {ids:?} in {pod}"),
            CONVERGE,
            || async {
                let lines = self.log(pod, "processor", false).await;
                let seen: Vec<String> = self::ids(&lines, message);
                wanted.iter().all(|id| seen.contains(id)).then_some(lines)
            },
        )
        .await
    }

    /// Waits until the queue holds nothing, visible or in flight.
    async fn wait_drained(&self) {
        common::eventually("the queue drained", CONVERGE, || async {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(&self.queue_url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .ok()?
                .attributes?;
            let count = |name: QueueAttributeName| {
                attributes
                    .get(&name)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
            };
            (count(QueueAttributeName::ApproximateNumberOfMessages)
                + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                == 0)
                .then_some(())
        })
        .await;
    }

    /// Stops the controller and removes the namespace (its pods leave the node).
    async fn stop(mut self) {
        let _ = self.controller.kill();
        let _ = self.controller.wait();
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The status of the processor (an init container: a native sidecar) or the worker.
fn container_status<'a>(pod: &'a Pod, name: &str) -> &'a ContainerStatus {
    let status = pod.status.as_ref().unwrap();
    let all = status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses);
    all.flatten()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status of container {name}: {status:?}"))
}

/// The example's objects, the Consumer with one replica and `env` for the processor, the Queue's
/// visibility timeout 10 s (messages a stopping worker leaves come back sooner).
fn pipeline_objects(env: &[(&str, &str)]) -> Vec<kube::api::DynamicObject> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/custom/go/pipeline-aws.yaml");
    let mut objects = common::yaml_objects(&std::fs::read_to_string(file).unwrap());
    for object in &mut objects {
        match object.types.as_ref().unwrap().kind.as_str() {
            "Consumer" => {
                let env: Vec<Value> = env
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
                object.data["spec"]["container"]["env"] = json!(env);
                object.data["spec"]["scaling"] = json!({"minReplicas": 1, "maxReplicas": 1});
            }
            "Queue" => object.data["spec"]["aws"]["visibilityTimeoutSeconds"] = json!(10),
            _ => {}
        }
    }
    objects
}

/// The Secret the controller names as the workers' env Secret: the test bed's AWS keys.
async fn worker_credentials(client: &kube::Client, ns: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws"},
        "stringData": {
            "AWS_ACCESS_KEY_ID": common::var("AWS_ACCESS_KEY_ID"),
            "AWS_SECRET_ACCESS_KEY": common::var("AWS_SECRET_ACCESS_KEY"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

/// `tributary controller` for namespace `ns` as a host process: moto at the node address (the same
/// endpoint for it and for the workers it runs in pods), the node's tributary image for the workers,
/// their AWS keys from the Secret `aws`.
fn spawn_controller(ns: &str, work: &std::path::Path) -> Child {
    let log = std::fs::File::create(work.join("controller.log")).unwrap();
    Command::new(common::tributary_bin())
        .args(["controller", "--watch-namespace", ns, "--resync-seconds", "3"])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", common::free_port())])
        .args(["--leader-election-namespace", ns, "--identity", "pods-custom"])
        .args(["--quiet-start-seconds", "0", "--aws-rate-limit", "*=unlimited"])
        .args(["--cluster-id", common::TEST_CLUSTER])
        .env("KUBECONFIG", common::var("KUBECONFIG"))
        .env(
            "AWS_ENDPOINT_URL",
            node::pod_url(&common::var("AWS_ENDPOINT_URL")),
        )
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "TRIBUTARY_WORKER_IMAGE",
            common::var("TESTBED_NODE_TRIBUTARY_IMAGE"),
        )
        .env("TRIBUTARY_WORKER_ENV_SECRET", "aws")
        .env("TRIBUTARY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// `n` good events tagged `tag`.
fn events(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| json!({"payment": format!("{tag}-{i}"), "cents": 100 * i}).to_string())
        .collect()
}

/// Seconds from `from` to `to`.
fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

/// A timestamp cut to whole seconds, as the API's container and condition times are.
fn whole_seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap()
}

#[tokio::test]
async fn the_processor_starts_first_the_pod_is_ready_once_it_answers_and_messages_flow() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-flow", &[("READY_AFTER", "4s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let apply_to_ready = bed.applied.elapsed();
    let name = pod.metadata.name.clone().unwrap();
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some(node::NAME), "on the real node");
    let sidecar = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        (
            sidecar.name.as_str(),
            sidecar.restart_policy.as_deref(),
            sidecar.image.as_deref()
        ),
        ("processor", Some("Always"), Some(IMAGE)),
        "the processor is a native sidecar"
    );

    // The worker was held back until the processor answered its readiness path: the processor's first
    // 200 (its `ready` line, READY_AFTER after it listened) comes before the worker's first log line, and
    // the worker container started no earlier than that (the API's times are whole seconds).
    let processor = bed.log(&name, "processor", false).await;
    let worker = bed.log(&name, "worker", false).await;
    let (listening, became_ready) = (first(&processor, "listening"), first(&processor, "ready"));
    assert!(
        seconds(listening.at, became_ready.at) >= 3.9,
        "{listening:?} {became_ready:?}"
    );
    assert!(
        became_ready.at < worker[0].at,
        "{became_ready:?} before {:?}",
        worker[0]
    );
    let started = |name: &str| {
        container_status(&pod, name)
            .state
            .as_ref()
            .unwrap()
            .running
            .as_ref()
            .unwrap()
            .started_at
            .clone()
            .unwrap()
            .0
    };
    assert!(started("processor") <= whole_seconds(listening.at));
    assert!(
        started("worker") >= whole_seconds(became_ready.at),
        "worker started before the processor was ready"
    );
    let ready_since = pod
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready_since.last_transition_time.as_ref().unwrap().0 >= whole_seconds(became_ready.at));

    // End to end: every good event recorded once, the poisoned one dead-lettered with the answer.
    let ids = bed.send(&events("flow", 10)).await;
    bed.send(&["[\"not an object\"]".to_owned()]).await;
    let lines = bed.wait_lines(&name, "recorded", &ids).await;
    let mut recorded = self::ids(&lines, "recorded");
    recorded.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(recorded, expected, "each event recorded once");
    assert!(self::ids(&lines, "duplicate").is_empty());
    let dead = std::sync::Mutex::new(Vec::new());
    common::eventually("the poisoned event dead-lettered", CONVERGE, || async {
        let received = common::receive_messages(&bed.sqs, &bed.dead_letter_url).await;
        let mut all = dead.lock().unwrap();
        all.extend(received);
        (!all.is_empty()).then_some(())
    })
    .await;
    let dead = dead.into_inner().unwrap();
    let reason = dead[0].message_attributes.as_ref().unwrap()["tributary-dead-letter-reason"]
        .string_value()
        .unwrap()
        .to_owned();
    let reason: Value = serde_json::from_str(&reason).unwrap();
    assert!(
        reason["reason"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 400: body is not a JSON object"),
        "{reason}"
    );
    assert_eq!(dead.len(), 1);
    bed.wait_drained().await;
    let created = pod.metadata.creation_timestamp.as_ref().unwrap().0;
    eprintln!(
        "pods_custom: pod created {created}, processor started {}, ready (READY_AFTER 4 s) {}, worker started {}, pod Ready {}; Consumer applied to pod Ready {:.1} s",
        started("processor"),
        became_ready.at,
        started("worker"),
        ready_since.last_transition_time.as_ref().unwrap().0,
        apply_to_ready.as_secs_f64()
    );
    bed.stop().await;
}

#[tokio::test]
async fn a_processor_killed_mid_request_gets_the_messages_again_after_its_restart_and_records_each_once() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-kill", &[("DELAY", "4s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let name = pod.metadata.name.clone().unwrap();
    let ids = bed.send(&events("kill", 3)).await;
    bed.wait_lines(&name, "holding", &ids).await;

    let killed = Instant::now();
    node::kill_container(&bed.ns, &name, "processor").await;
    // Not ready while the processor does not answer; ready again once the restarted one does.
    common::eventually("the pod not Ready after the kill", CONVERGE, || async {
        (!node::is_ready(&bed.pods.get(&name).await.ok()?)).then_some(())
    })
    .await;
    let restarted = bed.ready_pod(&[]).await;
    assert_eq!(
        restarted.metadata.name.as_deref(),
        Some(name.as_str()),
        "the same pod"
    );
    assert!(container_status(&restarted, "processor").restart_count >= 1);
    let back = killed.elapsed();

    let lines = bed.wait_lines(&name, "recorded", &ids).await;
    let before = bed.log(&name, "processor", true).await;
    let mut held: Vec<String> = self::ids(&before, "holding");
    held.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(held, expected, "the killed container had all three in flight");
    assert!(
        self::ids(&before, "recorded").is_empty(),
        "killed before recording: {before:?}"
    );
    let mut recorded = self::ids(&lines, "recorded");
    recorded.sort();
    assert_eq!(
        recorded, expected,
        "each recorded once, by the restarted container"
    );
    assert_eq!(
        container_status(&bed.pods.get(&name).await.unwrap(), "worker").restart_count,
        0
    );
    bed.wait_drained().await;
    assert!(
        common::receive_messages(&bed.sqs, &bed.dead_letter_url)
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
    eprintln!(
        "pods_custom: processor killed with 3 requests in flight; pod Ready again after {:.1} s, all 3 recorded once {:.1} s after the kill",
        back.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    bed.stop().await;
}

/// The last status of each container of pod `name` until the pod is gone: (exit code, finished at).
async fn watch_exits(
    pods: Api<Pod>,
    name: String,
) -> tokio::task::JoinHandle<BTreeMap<String, (i32, Timestamp)>> {
    let version = pods.get(&name).await.unwrap().metadata.resource_version.unwrap();
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let stream = pods.watch(&params, &version).await.unwrap();
    tokio::spawn(async move {
        let mut exits = BTreeMap::new();
        let mut stream = stream.boxed();
        while let Ok(Some(event)) = stream.try_next().await {
            let (pod, gone) = match event {
                WatchEvent::Modified(pod) => (pod, false),
                WatchEvent::Deleted(pod) => (pod, true),
                _ => continue,
            };
            let status = pod.status.unwrap_or_default();
            let all = status
                .init_container_statuses
                .into_iter()
                .chain(status.container_statuses)
                .flatten();
            for container in all {
                if let Some(done) = container.state.and_then(|s| s.terminated) {
                    exits.insert(container.name, (done.exit_code, done.finished_at.unwrap().0));
                }
            }
            if gone {
                break;
            }
        }
        exits
    })
}

#[tokio::test]
async fn a_deleted_pod_stops_receiving_finishes_its_deliveries_then_stops_the_processor() {
    let _bed = common::shared().await;
    let bed = NodePipeline::start("pods-custom-drain", &[("DELAY", "5s")]).await;
    let pod = bed.ready_pod(&[]).await;
    let name = pod.metadata.name.clone().unwrap();
    let in_flight = bed.send(&events("drain", 6)).await;
    bed.wait_lines(&name, "holding", &in_flight).await;

    let (worker_lines, worker_log) = bed.follow(&name, "worker").await;
    let (processor_lines, processor_log) = bed.follow(&name, "processor").await;
    let exits = watch_exits(bed.pods.clone(), name.clone()).await;
    let deleted = Instant::now();
    bed.pods.delete(&name, &DeleteParams::default()).await.unwrap();
    // More events once the worker has its SIGTERM: for the replacement pod, never this one.
    common::eventually("the worker's SIGTERM", CONVERGE, || async {
        let lines = worker_lines.lock().unwrap();
        lines
            .iter()
            .any(|l| l.message() == "received SIGTERM; shutting down")
            .then_some(())
    })
    .await;
    let later = bed.send(&events("after", 4)).await;
    tokio::time::timeout(CONVERGE, worker_log).await.unwrap().unwrap();
    tokio::time::timeout(CONVERGE, processor_log)
        .await
        .unwrap()
        .unwrap();
    let exits = tokio::time::timeout(CONVERGE, exits).await.unwrap().unwrap();
    let gone = deleted.elapsed();
    let worker = worker_lines.lock().unwrap().clone();
    let processor = processor_lines.lock().unwrap().clone();
    for line in &worker {
        eprintln!("worker {} {}", line.at, line.entry["fields"]);
    }

    // The order, in the kubelet's timestamps: SIGTERM reaches the worker; no delivery starts after it; the
    // deliveries in flight finish (the processor answers them) before the worker stops; only then does the
    // processor get its SIGTERM. Every event sent before the deletion is recorded once by this pod.
    let sigterm = first(&worker, "received SIGTERM; shutting down").at;
    let stopped = first(&worker, "worker stopped");
    let recorded: Vec<&Line> = processor.iter().filter(|l| l.message() == "recorded").collect();
    let mut old_ids: Vec<String> = recorded.iter().map(|l| l.id().to_owned()).collect();
    old_ids.sort();
    let mut expected = in_flight.clone();
    expected.sort();
    assert_eq!(
        old_ids, expected,
        "every event sent before the deletion, once: {processor:#?}"
    );
    assert_eq!(
        stopped.entry["fields"]["processed"],
        in_flight.len(),
        "{stopped:?}"
    );
    let finishing: Vec<&&Line> = recorded.iter().filter(|l| l.at > sigterm).collect();
    assert!(
        !finishing.is_empty(),
        "no delivery was in flight at SIGTERM: {processor:#?}"
    );
    assert!(
        finishing.iter().all(|l| l.at < stopped.at),
        "finished before the worker stopped: {finishing:?} {stopped:?}"
    );
    let arrivals_after: Vec<&Line> = processor
        .iter()
        .filter(|l| l.message() == "holding" && l.at > sigterm)
        .collect();
    assert!(
        arrivals_after.is_empty(),
        "no delivery after SIGTERM: {arrivals_after:?}"
    );
    let stopping = first(&processor, "stopping");
    assert!(
        stopping.at > stopped.at,
        "the processor stopped after the worker: {stopping:?} {stopped:?}"
    );
    assert_eq!(stopping.entry["in_flight"], 0);
    first(&processor, "stopped");
    // The exit codes and times the kubelet reported (whole seconds).
    let (worker_exit, processor_exit) = (exits["worker"], exits["processor"]);
    assert_eq!((worker_exit.0, processor_exit.0), (0, 0), "{exits:?}");
    assert!(worker_exit.1 <= processor_exit.1, "{exits:?}");

    // The events sent after the deletion go to the replacement pod; every event is recorded once.
    let replacement = bed.ready_pod(std::slice::from_ref(&name)).await;
    let replacement = replacement.metadata.name.unwrap();
    let lines = bed.wait_lines(&replacement, "recorded", &later).await;
    let mut all: Vec<String> = self::ids(&processor, "recorded");
    all.extend(self::ids(&lines, "recorded"));
    all.sort();
    let mut every = in_flight.iter().chain(&later).cloned().collect::<Vec<_>>();
    every.sort();
    assert_eq!(all, every, "each event recorded once over both pods");
    bed.wait_drained().await;
    eprintln!(
        "pods_custom: pod deleted with {} of 6 deliveries in flight; worker drained {:.2} s after SIGTERM, processor stopped {:.2} s after the worker; pod gone {:.1} s after the delete",
        finishing.len(),
        seconds(sigterm, stopped.at),
        seconds(stopped.at, stopping.at),
        gone.as_secs_f64()
    );
    bed.stop().await;
}
