//! The Go example's pipeline in a real-node namespace, reconciled by a controller running as a host
//! process, and what the tests read of it: the pod, its containers' logs, the queues.

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
    api::{ListParams, LogParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::{Value, json};

use super::log::{Followed, Line, ids, parse_line, parse_log};
use crate::support::{self as common, node};

/// The ledger's image, as `examples/custom/go/image.sh` names it.
pub(super) const IMAGE: &str = "tributary.local/examples/ledger:0.1";
const CONSUMER: &str = "ledger";
const SELECTOR: &str = "tributary.dev/consumer=ledger";
/// Bound of every wait for the controller, the pod or the messages.
pub(super) const CONVERGE: Duration = Duration::from_secs(90);

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
pub(super) struct NodePipeline {
    pub(super) ns: node::NodeNamespace,
    client: kube::Client,
    pub(super) pods: Api<Pod>,
    pub(super) sqs: aws_sdk_sqs::Client,
    queue_url: String,
    pub(super) dead_letter_url: String,
    controller: Child,
    work: PathBuf,
    pub(super) applied: Instant,
}

impl NodePipeline {
    /// The example's pipeline (one replica, the Queue's visibility timeout 10 s) with `env` for the
    /// processor, in a new real-node namespace; returns once the Consumer is Available (its pod Ready).
    pub(super) async fn start(prefix: &str, env: &[(&str, &str)]) -> Self {
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
    pub(super) async fn ready_pod(&self, old: &[String]) -> Pod {
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
    pub(super) async fn log(&self, pod: &str, container: &str, previous: bool) -> Vec<Line> {
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
    pub(super) async fn follow(&self, pod: &str, container: &str) -> (Followed, tokio::task::JoinHandle<()>) {
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
    pub(super) async fn send(&self, bodies: &[String]) -> Vec<String> {
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
    pub(super) async fn wait_lines(&self, pod: &str, message: &str, wanted: &[String]) -> Vec<Line> {
        let what = format!("{message} lines for {wanted:?} in {pod}");
        let wanted: BTreeSet<&String> = wanted.iter().collect();
        common::eventually(&what, CONVERGE, || async {
            let lines = self.log(pod, "processor", false).await;
            let seen: Vec<String> = ids(&lines, message);
            wanted.iter().all(|id| seen.contains(id)).then_some(lines)
        })
        .await
    }

    /// The reasons of the dead letters, once there are `n` (received and deleted as they come).
    pub(super) async fn dead_letter_reasons(&self, n: usize) -> Vec<String> {
        let dead = std::sync::Mutex::new(Vec::new());
        common::eventually(&format!("{n} dead letters"), CONVERGE, || async {
            let received = common::receive_messages(&self.sqs, &self.dead_letter_url).await;
            let mut all = dead.lock().unwrap();
            all.extend(received);
            (all.len() >= n).then_some(())
        })
        .await;
        let reason = |message: &aws_sdk_sqs::types::Message| {
            let attribute = &message.message_attributes.as_ref().unwrap()["tributary-dead-letter-reason"];
            let reason: Value = serde_json::from_str(attribute.string_value().unwrap()).unwrap();
            reason["reason"].as_str().unwrap().to_owned()
        };
        dead.into_inner().unwrap().iter().map(reason).collect()
    }

    /// Waits until the queue holds nothing, visible or in flight.
    pub(super) async fn wait_drained(&self) {
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

    /// Stops the controller; the namespace goes with `self` (its pods leave the node).
    pub(super) async fn stop(mut self) {
        let _ = self.controller.kill();
        let _ = self.controller.wait();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// The status of the processor (an init container: a native sidecar) or the worker.
pub(super) fn container_status<'a>(pod: &'a Pod, name: &str) -> &'a ContainerStatus {
    let status = pod.status.as_ref().unwrap();
    let all = status
        .init_container_statuses
        .iter()
        .chain(&status.container_statuses);
    all.flatten()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status of container {name}: {status:?}"))
}

/// When the kubelet started `name` (whole seconds), from the pod's status.
pub(super) fn started_at(pod: &Pod, name: &str) -> Timestamp {
    let state = container_status(pod, name).state.as_ref();
    let running = state.and_then(|s| s.running.as_ref());
    running.and_then(|r| r.started_at.clone()).unwrap().0
}

/// Since when the pod is Ready (whole seconds).
pub(super) fn ready_since(pod: &Pod) -> Timestamp {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref()).unwrap();
    let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    ready.last_transition_time.clone().unwrap().0
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
pub(super) fn events(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| json!({"payment": format!("{tag}-{i}"), "cents": 100 * i}).to_string())
        .collect()
}

/// The last status of each container of pod `name` until the pod is gone: (exit code, finished at).
pub(super) async fn watch_exits(
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
