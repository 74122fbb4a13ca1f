//! The test bed's real node (docs/testbed-node.md), for tests whose pods really run: its address and images,
//! a namespace whose every pod runs on it (the API server's PodNodeSelector and PodTolerationRestriction
//! admission plugins place them, so the controller's own worker pods land there too), a container killed
//! through the node's containerd, and bounded waits for pods.
//!
//! Every function fails with a message saying how to start the node when the test bed runs without it.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};

use super::{eventually, kube_client, unique, var};

/// The node's name.
pub const NAME: &str = "tributary-node";
/// The label the node carries and the namespaces' node selector names.
pub const LABEL: (&str, &str) = ("tributary.dev/node", "real");
/// The taint that keeps every other pod off the node.
pub const TAINT: &str = "tributary.dev/real-node";
/// The namespace annotation PodNodeSelector reads.
pub const NODE_SELECTOR_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/node-selector";
/// The namespace annotation PodTolerationRestriction reads.
pub const DEFAULT_TOLERATIONS_ANNOTATION: &str = "scheduler.alpha.kubernetes.io/defaultTolerations";

/// Panics, saying how to start it, unless the test bed runs the real node.
pub fn require() {
    let on = super::env().get("TESTBED_NODE").is_some_and(|v| v == "1");
    assert!(
        on,
        "the test bed runs without its real node: start it as root with `TESTBED_NODE=1 bash testbed/up.sh` \
         (after `bash testbed/down.sh`; docs/testbed-node.md)"
    );
}

/// A value of the test bed's env file that only the node writes.
fn node_var(key: &str) -> String {
    require();
    var(key)
}

/// The node's address: where pods and host processes alike reach the API server, every emulator and any
/// server a test starts on 127.0.0.1 (same port).
pub fn node_ip() -> String {
    node_var("TESTBED_NODE_IP")
}

/// `url` with its host `127.0.0.1` (or `localhost`) replaced by the node's address, for a pod (or a host
/// process) to use: `http://127.0.0.1:4566/x` → `http://10.200.28.1:4566/x`.
pub fn pod_url(url: &str) -> String {
    let ip = node_ip();
    url.replacen("127.0.0.1", &ip, 1).replacen("localhost", &ip, 1)
}

/// The tributary image imported into the node (`tributary:<version>`, from the debug build).
pub fn tributary_image() -> String {
    let image = node_var("TESTBED_NODE_TRIBUTARY_IMAGE");
    assert!(
        !image.is_empty(),
        "the node started without the tributary image: build the binary first \
         (cargo build --bin tributary, scripts/cargo-env.sh sourced), then start the test bed again"
    );
    image
}

/// The network probe image (testbed/tools/nodeprobe: serve, get, lookup, whoami, tls, kafka).
pub fn probe_image() -> String {
    node_var("TESTBED_NODE_PROBE_IMAGE")
}

/// A container `securityContext` that the `restricted` Pod Security level admits.
pub fn restricted_security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// A namespace whose pods run on the real node, deleted when a test that passed lets it go: its pods (a
/// Helm release's controller, the workers it made) would otherwise go on working against the emulators
/// until `make test` ends, loading the tests that follow and counted among their clients. A failed
/// test's namespace stays for a look; testbed/clean.sh removes it after the run.
pub struct NodeNamespace(String);

impl std::ops::Deref for NodeNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for NodeNamespace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = super::tools::run("kubectl", &["delete", "namespace", &self.0, "--wait=false"], None);
        }
    }
}

/// Creates a namespace named from `prefix` whose pods all run on the real node (node selector and
/// toleration added by admission) under the `restricted` Pod Security level, labelled for
/// testbed/clean.sh (which waits for these to be gone between `make test`'s two runs, by the node
/// label); returns it once its default ServiceAccount exists (pods need it).
pub async fn real_node_namespace(client: &Client, prefix: &str) -> NodeNamespace {
    require();
    let name = unique(prefix);
    let tolerations = json!([{"key": TAINT, "operator": "Exists", "effect": "NoSchedule"}]).to_string();
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {
                "tributary.dev/test": "true",
                LABEL.0: LABEL.1,
                "pod-security.kubernetes.io/enforce": "restricted",
            },
            "annotations": {
                NODE_SELECTOR_ANNOTATION: format!("{}={}", LABEL.0, LABEL.1),
                DEFAULT_TOLERATIONS_ANNOTATION: tolerations,
            },
        }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let namespace = NodeNamespace(name);
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    eventually(
        &format!("the default ServiceAccount of {namespace}"),
        Duration::from_secs(30),
        || {
            let accounts = accounts.clone();
            async move { accounts.get_opt("default").await.ok().flatten() }
        },
    )
    .await;
    namespace
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits (at most `timeout`) until the pod `name` is Ready, and returns it.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    eventually(&format!("pod {name} Ready"), timeout, || {
        let pods = pods.clone();
        let name = name.to_owned();
        async move { pods.get_opt(&name).await.ok().flatten().filter(is_ready) }
    })
    .await
}

/// Waits (at most `timeout`) until exactly `n` pods match the label `selector`, none of them being deleted
/// and all of them Ready, and returns them.
pub async fn wait_pods(pods: &Api<Pod>, selector: &str, n: usize, timeout: Duration) -> Vec<Pod> {
    let what = format!("exactly {n} Ready pods with {selector}");
    eventually(&what, timeout, || {
        let pods = pods.clone();
        let params = ListParams::default().labels(selector);
        async move {
            let list = pods.list(&params).await.ok()?.items;
            let settled = list.len() == n
                && list
                    .iter()
                    .all(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p));
            settled.then_some(list)
        }
    })
    .await
}

/// Kills the running `container` of `pod` in `namespace` with SIGKILL through the node's containerd (`ctr
/// tasks kill`), as a crash would, and returns its container id. The kubelet then restarts it by the pod's
/// restart policy.
pub async fn kill_container(namespace: &str, pod: &str, container: &str) -> String {
    kill_container_with(namespace, pod, container, "SIGKILL").await
}

/// [`kill_container`] with another `signal` (`SIGTERM`, …).
pub async fn kill_container_with(namespace: &str, pod: &str, container: &str, signal: &str) -> String {
    require();
    let pods: Api<Pod> = Api::namespaced(kube_client().await, namespace);
    let status = pods.get(pod).await.unwrap().status.unwrap_or_default();
    let statuses = status
        .init_container_statuses
        .into_iter()
        .flatten()
        .chain(status.container_statuses.into_iter().flatten());
    let id = statuses
        .filter(|s| s.name == container)
        .find_map(|s| s.container_id)
        .unwrap_or_else(|| panic!("pod {namespace}/{pod} has no started container {container}"));
    let id = id.rsplit("://").next().unwrap().to_owned();
    let ctr = format!("{}/bin/ctr", var("TESTBED_DIR"));
    let output = std::process::Command::new(&ctr)
        .args([
            "--address",
            &node_var("CONTAINERD_ADDRESS"),
            "--namespace",
            "k8s.io",
        ])
        .args(["tasks", "kill", "--signal", signal, &id])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {ctr}: {e}"));
    assert!(
        output.status.success(),
        "ctr tasks kill {id} ({namespace}/{pod} {container}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    id
}
