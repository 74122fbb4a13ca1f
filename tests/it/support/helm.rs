//! Tributary installed by Helm, as a user installs it: the chart (`charts/tributary`) with the test bed's
//! values for its real node (`testbed/node-values.sh`), so the controller and the webhook run as containers
//! of the image, and the controller's workers too. The namespace must already run its pods on the real node
//! (`support::node`'s real-node namespace); the release watches only that namespace, so releases of
//! several tests live side by side.
//!
//! ```ignore
//! let release = helm::install(&ns, &[]).await;    // waits for the controller and the webhook Ready
//! release.wait_webhook_serving().await;          // the API server reaches the webhook through its Service
//! release.upgrade(&["--set", "image.tag=other"]).await;
//! release.uninstall();
//! ```
#![allow(clippy::unwrap_used)]

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api,
    api::{DynamicObject, ListParams, PostParams},
};

use super::tools::{helm, run};

/// The chart, from the repository.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tributary");

/// The release's name; the chart then names its objects `tributary` (the controller) and
/// `tributary-webhook`.
pub const RELEASE: &str = "tributary";

/// How long an install or an upgrade may take to have every pod Ready (image already on the node; the
/// probes' first period is 10 s).
pub const READY_WITHIN: Duration = Duration::from_secs(120);

/// The test bed's values for the real node, for a release in `namespace` (`testbed/node-values.sh`).
pub fn node_values(namespace: &str) -> String {
    super::node::require();
    node_values_sh(&["values", namespace])
}

fn node_values_sh(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/node-values.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .env("TESTBED_DIR", super::var("TESTBED_DIR"))
        .env("TRIBUTARY_BIN", super::tributary_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testbed/node-values.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// An installed release of the chart.
pub struct Release {
    /// Its namespace, which its controller watches.
    pub namespace: String,
    /// From `helm install` until the controller's and the webhook's pods were all Ready.
    pub ready_after: Duration,
    values: PathBuf,
    uninstalled: bool,
}

/// Installs the chart as [`RELEASE`] into `namespace` with the real node's values and `args` (more
/// `--set`/`-f` arguments), after applying the CRDs (Helm never upgrades its `crds/`) and the values'
/// AWS Secret `tributary-testbed-aws`; returns once every pod of the controller and the webhook is Ready
/// (their probes).
pub async fn install(namespace: &str, args: &[&str]) -> Release {
    let client = super::kube_client().await;
    super::install_crds(&client).await;
    super::tools::ok(
        "kubectl",
        &["apply", "-f", "-"],
        Some(&node_values_sh(&["secret", namespace])),
    );
    let values = std::env::temp_dir()
        .join(super::unique("helm-values"))
        .with_extension("yaml");
    std::fs::write(&values, node_values(namespace)).unwrap();
    let mut release = Release {
        namespace: namespace.to_owned(),
        ready_after: Duration::ZERO,
        values,
        uninstalled: false,
    };
    let started = Instant::now();
    let values = release.values.to_str().unwrap().to_owned();
    let mut install = vec!["install", RELEASE, CHART, "-n", namespace, "-f", &values];
    install.extend(args);
    helm(&install);
    release.wait_ready(READY_WITHIN).await;
    release.ready_after = started.elapsed();
    release
}

impl Release {
    /// `helm upgrade` with the values it was installed with and `args`; returns once both Deployments
    /// have rolled out (every pod of the new template Ready, none of the old left), and how long that took.
    pub async fn upgrade(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let values = self.values.to_str().unwrap();
        let mut upgrade = vec!["upgrade", RELEASE, CHART, "-n", &self.namespace, "-f", values];
        upgrade.extend(args);
        helm(&upgrade);
        self.wait_ready(READY_WITHIN).await;
        started.elapsed()
    }

    /// Waits until the controller's and the webhook's Deployments have rolled out: their current
    /// template observed, every replica of it Ready and available, no replica of an older one left.
    pub async fn wait_ready(&self, within: Duration) {
        let deployments: Api<Deployment> = Api::namespaced(super::kube_client().await, &self.namespace);
        let deadline = Instant::now() + within;
        for name in [RELEASE.to_owned(), format!("{RELEASE}-webhook")] {
            loop {
                if let Ok(deployment) = deployments.get(&name).await
                    && rolled_out(&deployment)
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Deployment {name} not rolled out within {within:?}:\n{}",
                    self.diagnostics()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// Waits until the API server admits a valid object through the webhook (failurePolicy Fail: a
    /// webhook it cannot reach refuses everything), i.e. the webhook's Service is served by kube-proxy.
    pub async fn wait_webhook_serving(&self) {
        let gvk = kube::api::GroupVersionKind::gvk("tributary.dev", "v1alpha1", "Topic");
        let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "topics");
        let topics: Api<DynamicObject> =
            Api::namespaced_with(super::kube_client().await, &self.namespace, &resource);
        let probe: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "tributary.dev/v1alpha1", "kind": "Topic",
            "metadata": {"name": "webhook-probe"},
            "spec": {"provider": "aws", "aws": {}}
        }))
        .unwrap();
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match topics.create(&dry_run, &probe).await {
                Ok(_) => return,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "the API server never reached the webhook through its Service: {error}\n{}",
                    self.diagnostics()
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The pods of the release's Deployment `name` (`tributary` or `tributary-webhook`).
    pub async fn pods(&self, name: &str) -> Vec<Pod> {
        let pods: Api<Pod> = Api::namespaced(super::kube_client().await, &self.namespace);
        let selector = format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/name={name}");
        pods.list(&ListParams::default().labels(&selector))
            .await
            .unwrap()
            .items
    }

    /// `helm uninstall --wait`: every object of the release deleted and its pods gone.
    pub fn uninstall(mut self) {
        helm(&[
            "uninstall",
            RELEASE,
            "-n",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ]);
        self.uninstalled = true;
    }

    /// The namespace's pods and its latest Events, for a failure message.
    pub fn diagnostics(&self) -> String {
        let ns = self.namespace.as_str();
        let pods = run("kubectl", &["get", "pods", "-n", ns, "-o", "wide"], None);
        let events = run(
            "kubectl",
            &["get", "events", "-n", ns, "--sort-by=.lastTimestamp"],
            None,
        );
        let tail: Vec<&str> = events.stdout.lines().rev().take(30).collect();
        format!(
            "pods:\n{}{}\nlatest events:\n{}",
            pods.stdout,
            pods.stderr,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.values);
        if !self.uninstalled {
            // Not uninstalled by the test (it ended, or failed): leave nothing of the release running on
            // the shared node (a failed test's namespace stays for a look).
            let _ = run(
                "helm",
                &["uninstall", RELEASE, "-n", &self.namespace, "--wait=false"],
                None,
            );
        }
    }
}

/// Whether `deployment` has rolled out as `kubectl rollout status` says it: its generation observed,
/// every replica updated, Ready and available, and no other replica left.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas == Some(wanted)
        && status.replicas == Some(wanted)
        && status.ready_replicas == Some(wanted)
        && status.available_replicas == Some(wanted)
}
