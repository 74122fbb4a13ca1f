//! The test bed's real node (`TESTBED_NODE=1`, docs/testbed-node.md): kubelet on containerd 2 and runc,
//! beside the kwok nodes. Compiled only with the `testbed-node` feature, which `make test-node` turns on after
//! starting the test bed with the node; `make test` neither builds nor counts these tests.
//!
//! Pods here run for real: the node is Ready with its taint and label, a Pod of the tributary image runs to
//! completion with a pod IP and its log is read through the API server, and pods reach one another, a
//! ClusterIP Service (kube-proxy), a Service name (CoreDNS), an emulator and the API server (TLS verified) on
//! the node's address.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::{
    Api,
    api::{LogParams, PostParams},
};
use serde_json::{Value, json};

const NODE: &str = "tributary-node";

/// A pod spec for the real node: its selector and toleration, no service account token, no pulls.
fn real_node_pod(name: &str, labels: Value, containers: Value, restart: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeSelector": {"tributary.dev/node": "real"},
            "tolerations": [{"key": "tributary.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": false,
            "restartPolicy": restart,
            "containers": containers,
        }
    }))
    .unwrap()
}

/// A container of the node's probe image (testbed/tools/nodeprobe) running `args`.
fn probe(name: &str, args: &[&str]) -> Value {
    json!({"name": name, "image": common::var("TESTBED_NODE_PROBE_IMAGE"), "imagePullPolicy": "Never", "args": args})
}

/// Waits until the pod's phase is one of `phases` and returns the pod.
async fn wait_phase(pods: &Api<Pod>, name: &str, phases: &[&str], timeout: Duration) -> Pod {
    common::eventually(&format!("pod {name} in phase {phases:?}"), timeout, || {
        let pods = pods.clone();
        let name = name.to_owned();
        async move {
            let pod = pods.get(&name).await.ok()?;
            let phase = pod.status.as_ref()?.phase.clone()?;
            phases.contains(&phase.as_str()).then_some(pod)
        }
    })
    .await
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap()
}

#[tokio::test]
async fn the_node_is_ready_tainted_and_labelled_on_containerd_2() {
    let _bed = common::shared().await;
    let nodes: Api<Node> = Api::all(common::kube_client().await);
    let node = nodes.get(NODE).await.unwrap();
    let status = node.status.unwrap();
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True", "{ready:?}");
    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version.starts_with("containerd://2."),
        "{info:?}"
    );
    assert_eq!(info.kubelet_version, "v1.36.3");
    let taints = node.spec.unwrap().taints.unwrap();
    assert!(
        taints
            .iter()
            .any(|t| t.key == "tributary.dev/real-node" && t.effect == "NoSchedule"),
        "{taints:?}"
    );
    assert_eq!(node.metadata.labels.unwrap()["tributary.dev/node"], "real");
    let address = status
        .addresses
        .unwrap()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap();
    assert_eq!(address.address, common::var("TESTBED_NODE_IP"));
}

#[tokio::test]
async fn a_pod_of_the_tributary_image_runs_and_its_log_is_read_through_the_api_server() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "node-image").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let image = common::var("TESTBED_NODE_TRIBUTARY_IMAGE");
    let container =
        json!({"name": "tributary", "image": image, "imagePullPolicy": "Never", "args": ["version"]});
    let started = Instant::now();
    pods.create(
        &PostParams::default(),
        &real_node_pod("version", json!({}), json!([container]), "Never"),
    )
    .await
    .unwrap();
    let pod = wait_phase(
        &pods,
        "version",
        &["Succeeded", "Failed"],
        Duration::from_secs(60),
    )
    .await;
    eprintln!("pod of {image} created to Succeeded in {:?}", started.elapsed());
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded"),
        "{pod:?}"
    );
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    let prefix = common::var("TESTBED_NODE_POD_PREFIX");
    assert!(
        pod_ip(&pod).starts_with(&prefix),
        "pod IP {} outside {prefix}*",
        pod_ip(&pod)
    );
    let log = pods.logs("version", &LogParams::default()).await.unwrap();
    assert!(log.starts_with("tributary "), "log: {log:?}");
}

#[tokio::test]
async fn pods_reach_a_pod_a_cluster_ip_a_service_name_an_emulator_and_the_api_server() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "node-net").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client, &ns);
    let server = real_node_pod(
        "web",
        json!({"app": "web"}),
        json!([probe("web", &["serve", "8080"])]),
        "Always",
    );
    pods.create(&PostParams::default(), &server).await.unwrap();
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let service = services.create(&PostParams::default(), &service).await.unwrap();
    let cluster_ip = service.spec.unwrap().cluster_ip.unwrap();
    let web_ip = pod_ip(&wait_phase(&pods, "web", &["Running"], Duration::from_secs(60)).await);
    let node_ip = common::var("TESTBED_NODE_IP");
    let port = |url: String| url.rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let moto_port = port(common::var("AWS_ENDPOINT_URL"));
    let api_port = port(common::var("TESTBED_APISERVER_URL"));
    let web = "200 nodeprobe web";
    // (container, URL, the start of what it must print). Each container is restarted until it succeeds
    // (the Service works once kube-proxy has synced), so the pod succeeds when all of them have.
    let checks = [
        ("pod", format!("http://{web_ip}:8080/"), web),
        ("cluster-ip", format!("http://{cluster_ip}/"), web),
        ("service-name", format!("http://web.{ns}.svc.cluster.local/"), web),
        (
            "emulator",
            format!("http://{node_ip}:{moto_port}/moto-api/"),
            "200 ",
        ),
        // The API server at the node address, its certificate verified against the cluster's CA (the
        // kube-root-ca.crt ConfigMap every namespace gets).
        (
            "api-server",
            format!("https://{node_ip}:{api_port}/version"),
            "200 {",
        ),
    ];
    let containers: Vec<Value> = checks
        .iter()
        .map(|(name, url, _)| {
            let mut container = probe(name, &["get", url]);
            container["env"] = json!([{"name": "SSL_CERT_FILE", "value": "/ca/ca.crt"}]);
            container["volumeMounts"] = json!([{"name": "ca", "mountPath": "/ca"}]);
            container
        })
        .collect();
    let mut client_pod = real_node_pod("client", json!({}), json!(containers), "OnFailure");
    client_pod.spec.as_mut().unwrap().volumes = Some(
        serde_json::from_value(json!([{"name": "ca", "configMap": {"name": "kube-root-ca.crt"}}])).unwrap(),
    );
    pods.create(&PostParams::default(), &client_pod).await.unwrap();
    let client_pod = wait_phase(&pods, "client", &["Succeeded"], Duration::from_secs(90)).await;
    for (name, _, expected) in &checks {
        let log = pods
            .logs(
                "client",
                &LogParams {
                    container: Some((*name).to_owned()),
                    ..LogParams::default()
                },
            )
            .await
            .unwrap();
        assert!(log.starts_with(expected), "{name}: {log:?} ({client_pod:?})");
    }
}
