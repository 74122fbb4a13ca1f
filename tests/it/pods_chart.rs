//! The chart on the test bed's real node: Tributary installed by Helm as a user installs it, its controller,
//! webhook and workers running as containers of the image (`support::helm`, `testbed/node-values.sh`).
//! Each test installs its own release into its own namespace, which enforces the `restricted` Pod Security
//! Standard and runs its pods on the real node.
//!
//! - The controller's and the webhook's pods become Ready through their probes; the API server (a host
//!   process) reaches the webhook through its Service's ClusterIP (kube-proxy) and refuses a bad filter
//!   policy; `helm uninstall` leaves nothing of the release but what Helm and controllers leave by
//!   convention (the CRDs, and the controller's leader Lease, released).
//! - `helm upgrade` to another image (another digest of the same binary) rolls the controller, the webhook
//!   and a Consumer's worker while messages keep coming, and none is lost.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::{
    collections::BTreeSet,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    helm::{self, RELEASE, Release},
    tools::kubectl,
};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Pod};
use kube::{Api, api::PostParams};

/// How long a Tributary object or a worker may take to converge once the controller runs.
const CONVERGE: Duration = Duration::from_secs(90);

/// A namespace whose pods run on the real node and must meet `restricted`.
async fn node_namespace(client: &kube::Client, prefix: &str) -> common::node::NodeNamespace {
    common::node::real_node_namespace(client, prefix).await
}

/// Whether `pod` runs on the real node, Ready, every container ready and never restarted.
fn ready_on_the_node(pod: &Pod) -> Result<(), String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    if node.as_deref() != Some(common::node::NAME) {
        return Err(format!("{name} is on {node:?}, not the real node"));
    }
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let containers = status.container_statuses.unwrap_or_default();
    if !ready || containers.is_empty() {
        return Err(format!("{name} is not Ready"));
    }
    for container in containers {
        if !container.ready || container.restart_count > 0 {
            return Err(format!(
                "{name}/{}: ready {}, {} restarts",
                container.name, container.ready, container.restart_count
            ));
        }
    }
    Ok(())
}

/// Checks the release's pods: `n` of Deployment `name`, each Ready on the real node, its container
/// running as 65532 with a read-only root filesystem behind a readiness probe.
async fn check_pods(release: &Release, name: &str, n: usize) -> Vec<Pod> {
    let pods = release.pods(name).await;
    assert_eq!(pods.len(), n, "pods of {name}:\n{}", release.diagnostics());
    for pod in &pods {
        if let Err(problem) = ready_on_the_node(pod) {
            panic!("{problem}\n{}", release.diagnostics());
        }
        let container = &pod.spec.as_ref().unwrap().containers[0];
        assert!(
            container.readiness_probe.is_some(),
            "{name} has no readiness probe"
        );
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        let pod_security = pod.spec.as_ref().unwrap().security_context.as_ref().unwrap();
        assert_eq!(pod_security.run_as_user, Some(65_532));
    }
    pods
}

#[tokio::test]
async fn the_chart_runs_under_restricted_refuses_a_bad_filter_in_cluster_and_uninstalls_cleanly() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns = node_namespace(&client, "chart-pods").await;
    // The namespace really enforces `restricted`: a pod that may escalate is refused.
    common::tools::assert_enforces_restricted(&ns);

    let release = helm::install(&ns, &[]).await;
    eprintln!("helm install to every pod Ready: {:?}", release.ready_after);
    let controller = check_pods(&release, "tributary", 1).await;
    check_pods(&release, "tributary-webhook", 2).await;
    // The controller in its pod reached the API server (in-cluster configuration) and leads.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let leader = controller[0].metadata.name.clone().unwrap();
    common::eventually("the controller pod to hold the Lease", CONVERGE, || {
        let (leases, leader) = (leases.clone(), leader.clone());
        async move {
            let lease = leases.get_opt(RELEASE).await.ok()??;
            (lease.spec?.holder_identity? == leader).then_some(())
        }
    })
    .await;

    // The API server calls the webhook through its Service; a policy the filter engine rejects is refused
    // at create time with the key and the rule.
    release.wait_webhook_serving().await;
    let subscriptions = common::tributary_api(&client, &ns, "Subscription");
    let bad = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    policy:\n      total: [{numeric: [\"<\", 5, \">\", 1]}]\n",
    )[0];
    match subscriptions.create(&PostParams::default(), bad).await {
        Err(kube::Error::Api(status)) => {
            assert!(
                status
                    .message
                    .contains("admission webhook \"validate.tributary.dev\" denied"),
                "{}",
                status.message
            );
            assert!(
                status.message.contains("spec.filter.policy.total"),
                "{}",
                status.message
            );
        }
        other => panic!("the bad filter was not refused by the webhook: {other:?}"),
    }

    release.uninstall();
    assert_uninstalled(&client, &ns).await;
    kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Nothing of the release is left in `ns` or cluster-wide, not even the controller's leader Lease (the
/// chart makes it, so Helm deletes it), but what Helm leaves by convention: the CRDs (Helm never deletes a
/// chart's `crds/`: that would delete every pipeline).
async fn assert_uninstalled(client: &kube::Client, ns: &str) {
    let selector = format!("app.kubernetes.io/instance={RELEASE}");
    let namespaced = "deployments,replicasets,pods,services,endpointslices,secrets,serviceaccounts,configmaps,roles,rolebindings,networkpolicies,poddisruptionbudgets,leases";
    let left = common::eventually("nothing of the release left", CONVERGE, || {
        let selector = selector.clone();
        async move {
            let mut left: Vec<String> =
                kubectl(&["get", namespaced, "-n", ns, "-l", &selector, "-o", "name"])
                    .lines()
                    .map(str::to_owned)
                    .collect();
            let cluster = kubectl(&[
                "get",
                "clusterroles,clusterrolebindings,validatingwebhookconfigurations",
                "-l",
                &selector,
                "-o",
                "name",
            ]);
            left.extend(cluster.lines().filter(|l| l.contains(ns)).map(str::to_owned));
            // Every pod, whatever its labels: nothing of the release may still run.
            left.extend(
                kubectl(&["get", "pods", "-n", ns, "-o", "name"])
                    .lines()
                    .map(str::to_owned),
            );
            left.is_empty().then_some(left)
        }
    })
    .await;
    assert!(left.is_empty());
    let records = kubectl(&["get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name"]);
    assert!(records.is_empty(), "helm's release records are left: {records}");
    kubectl(&["get", "crd", "topics.tributary.dev"]);
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(RELEASE)
        .await
        .unwrap();
    assert!(lease.is_none(), "the controller's Lease is left: {lease:?}");
}

/// A second image of the same binary under another tag, with another digest (the tag is in the image's
/// configuration, as `org.opencontainers.image.version`), imported into the node's containerd as
/// `tributary:<version>-upgrade`: what a release upgrade looks like to the node. Laid out as the node's
/// own image is (testbed/node-up.sh: the debug build without its debug sections, scripts/image.sh), written
/// by scripts/image_archive.py. Returns the tag.
fn import_second_image() -> String {
    let dir = std::env::temp_dir().join(common::unique("chart-image"));
    std::fs::create_dir_all(&dir).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let sh = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(root)
            .env("TRIBUTARY_IMAGE_FORMAT", "none")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dir_s = dir.to_str().unwrap();
    let stripped = format!("{dir_s}/tributary");
    let bin = common::tributary_bin();
    sh("objcopy", &["--strip-debug", bin.to_str().unwrap(), &stripped]);
    sh("bash", &["scripts/image.sh", "assemble", &stripped, dir_s]);
    let rootfs = format!("{dir_s}/rootfs");
    let first = common::node::tributary_image();
    let tag = format!("{}-upgrade", first.rsplit_once(':').unwrap().1);
    let archive = dir.join("upgrade.tar");
    let reference = format!("tributary:{tag}");
    // The `docker save` format only: imported through an OCI index, containerd would keep the bare name,
    // which the CRI does not find (docs/testbed-node.md).
    sh(
        "python3",
        &[
            "scripts/image_archive.py",
            &rootfs,
            archive.to_str().unwrap(),
            &reference,
            "--format",
            "docker",
        ],
    );
    let ctr = format!("{}/bin/ctr", common::var("TESTBED_DIR"));
    let address = common::var("CONTAINERD_ADDRESS");
    let ctr_args = ["--address", &address, "--namespace", "k8s.io", "images"];
    sh(
        &ctr,
        &[&ctr_args[..], &["import", archive.to_str().unwrap()]].concat(),
    );
    // Under its normalized name, which the CRI looks `tributary:<tag>` up by.
    let images = sh(&ctr, &[&ctr_args[..], &["ls", "-q"]].concat());
    assert!(
        images
            .lines()
            .any(|l| l == format!("docker.io/library/{reference}")),
        "ctr did not import {reference}: {images}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    tag
}

/// OrderPlaced for order `id`, the notification processor's input.
fn placed(id: &str) -> String {
    use tributary::worker::orders::model::{Delivery, Item, OrderEvent, OrderRequest};
    let request = OrderRequest {
        customer_id: "c-1".into(),
        items: vec![Item {
            sku: "sku-1".into(),
            quantity: 1,
            unit_price_cents: 1000,
        }],
        region: "eu-west".into(),
        delivery: Delivery::Standard,
        idempotency_key: None,
    };
    serde_json::to_string(&OrderEvent::placed(id, &request)).unwrap()
}

/// The orders of table `table` with a notification recorded.
async fn notified(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> BTreeSet<String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut orders = BTreeSet::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .filter_expression("begins_with(sk, :n)")
            .expression_attribute_values(":n", AttributeValue::S("NOTIFICATION#".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                orders.insert(pk.trim_start_matches("ORDER#").to_owned());
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return orders;
        }
    }
}

/// Sends OrderPlaced for `o-0`, `o-1`, … to the SQS queue at `url`, one every 100 ms, until `stop`; returns
/// the ids sent.
async fn feed(sqs: aws_sdk_sqs::Client, url: String, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let id = format!("o-{}", sent.len());
        sqs.send_message()
            .queue_url(&url)
            .message_body(placed(&id))
            .send()
            .await
            .unwrap();
        sent.push(id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sent
}

/// The names and image ids of the running pods of Deployment `name` in `ns`, once it has rolled out.
async fn rolled_out(client: &kube::Client, ns: &str, name: &str, image: &str) -> Vec<(String, String)> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    common::eventually(&format!("{name} rolled out with {image}"), CONVERGE, || {
        let (deployments, pods) = (deployments.clone(), pods.clone());
        async move {
            let deployment = deployments.get(name).await.ok()?;
            let spec = deployment.spec.as_ref()?.template.spec.as_ref()?;
            if spec.containers[0].image.as_deref() != Some(image) || !helm::rolled_out(&deployment) {
                return None;
            }
            let selector = deployment.spec.as_ref()?.selector.match_labels.clone()?;
            let selector: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let list = pods
                .list(&kube::api::ListParams::default().labels(&selector.join(",")))
                .await
                .ok()?;
            let mut running = Vec::new();
            for pod in list.items {
                ready_on_the_node(&pod).ok()?;
                let status = pod.status?.container_statuses?;
                let worker = status
                    .iter()
                    .find(|c| c.image == image || c.image.ends_with(&format!("/{image}")))?;
                running.push((pod.metadata.name?, worker.image_id.clone()));
            }
            (!running.is_empty()).then_some(running)
        }
    })
    .await
}

#[tokio::test]
async fn a_helm_upgrade_to_another_image_rolls_every_pod_and_loses_no_message() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns = node_namespace(&client, "chart-upgrade").await;
    let t0 = Instant::now();
    let second = import_second_image();
    eprintln!("second image assembled and imported: {:?}", t0.elapsed());
    let release = helm::install(&ns, &[]).await;
    eprintln!("helm install to every pod Ready: {:?}", release.ready_after);
    release.wait_webhook_serving().await;
    let first = common::node::tributary_image();

    // A Queue and a Consumer of it, whose worker records a notification per order in `<ns>-orders`.
    let created = Instant::now();
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {name: jobs}\nspec: {provider: aws, aws: {visibilityTimeoutSeconds: 10}}\n---\napiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {name: notify}\nspec:\n  source: {queueRef: {name: jobs}}\n  processor: notification\n",
    )
    .await;
    let queue = common::wait_reason(&client, &ns, "Queue", "jobs", "Available", CONVERGE).await;
    let url = queue.data["status"]["url"].as_str().unwrap().to_owned();
    common::wait_reason(&client, &ns, "Consumer", "notify", "Available", CONVERGE).await;
    let workers_before = rolled_out(&client, &ns, "notify-worker", &first).await;
    eprintln!(
        "Queue and Consumer created to the worker pod Ready: {:?}",
        created.elapsed()
    );
    let controller_before = rolled_out(&client, &ns, RELEASE, &first).await;
    let webhook_before = rolled_out(&client, &ns, &format!("{RELEASE}-webhook"), &first).await;

    let aws = common::aws_config().await;
    let (sqs, dynamodb) = (
        aws_sdk_sqs::Client::new(&aws),
        aws_sdk_dynamodb::Client::new(&aws),
    );
    let table = format!("{ns}-orders");
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = tokio::spawn(feed(sqs.clone(), url.clone(), stop.clone()));
    common::eventually(
        "the worker to process orders before the upgrade",
        CONVERGE,
        || {
            let (dynamodb, table) = (dynamodb.clone(), table.clone());
            async move { (notified(&dynamodb, &table).await.len() >= 5).then_some(()) }
        },
    )
    .await;

    let upgraded = Instant::now();
    let took = release.upgrade(&["--set", &format!("image.tag={second}")]).await;
    eprintln!("helm upgrade to the controller and the webhook rolled out: {took:?}");
    let image = format!("tributary:{second}");
    let workers_after = rolled_out(&client, &ns, "notify-worker", &image).await;
    eprintln!("helm upgrade to the worker rolled out: {:?}", upgraded.elapsed());
    let controller_after = rolled_out(&client, &ns, RELEASE, &image).await;
    let webhook_after = rolled_out(&client, &ns, &format!("{RELEASE}-webhook"), &image).await;
    for (what, before, after) in [
        ("controller", &controller_before, &controller_after),
        ("webhook", &webhook_before, &webhook_after),
        ("worker", &workers_before, &workers_after),
    ] {
        for (pod, image_id) in after {
            assert!(
                before
                    .iter()
                    .all(|(old, old_id)| old != pod && old_id != image_id),
                "{what} pod {pod} ({image_id}) is not a new pod of the new image: {before:?}"
            );
        }
    }
    // The new worker processes orders too; then every order sent must have its notification.
    let at_roll = notified(&dynamodb, &table).await.len();
    common::eventually("the new worker to process orders", CONVERGE, || {
        let (dynamodb, table) = (dynamodb.clone(), table.clone());
        async move { (notified(&dynamodb, &table).await.len() >= at_roll + 5).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let sent: BTreeSet<String> = feeder.await.unwrap().into_iter().collect();
    let deadline = Instant::now() + CONVERGE;
    let missing = loop {
        let done = notified(&dynamodb, &table).await;
        let missing: Vec<String> = sent.difference(&done).cloned().collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        missing.is_empty(),
        "{} of {} orders lost: {missing:?}",
        missing.len(),
        sent.len()
    );
    eprintln!(
        "{} orders sent through the upgrade, every one notified",
        sent.len()
    );

    // The pipeline goes while the controller runs (its finalizers remove the queue), then the release.
    for kind in ["Consumer", "Queue"] {
        kubectl(&[
            "delete",
            &format!("{}s.tributary.dev", kind.to_lowercase()),
            "--all",
            "-n",
            &ns,
            "--timeout=60s",
        ]);
    }
    release.uninstall();
    assert_uninstalled(&client, &ns).await;
    kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    eprintln!("the whole test: {:?}", t0.elapsed());
}
