//! The test bed's real node (docs/testbed-node.md): kubelet on containerd 2 and runc, beside the kwok nodes.
//! Each test fails at once, saying how to start it, when the test bed runs without the node.
//!
//! Pods here run for real: the node is Ready with its taint and label, a Pod of the tributary image runs to
//! completion with a pod IP and its log is read through the API server, and pods reach one another, a
//! ClusterIP Service (kube-proxy), a Service name (CoreDNS), an emulator and the API server (TLS verified) on
//! the node's address. A real-node namespace (support/node.rs) places a pod that asks for nothing on the
//! node under `restricted`, where in-cluster configuration reaches the API server with the pod's token,
//! Kafka's metadata leads back to the node address, the emulators' certificates name it, and a server the
//! test starts on 127.0.0.1 answers; host processes reach every emulator at the same node address.
#![allow(clippy::unwrap_used)]

use crate::support as common;
use crate::support::node;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::{
    Api,
    api::{LogParams, PostParams},
};
use serde_json::{Value, json};

const NODE: &str = node::NAME;

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
    node::require();
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
    node::require();
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "node-image").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let image = node::tributary_image();
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
    node::require();
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
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let spec = services
        .create(&PostParams::default(), &service)
        .await
        .unwrap()
        .spec
        .unwrap();
    let cluster_ip = spec.cluster_ip.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();
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
    // From the host too: the ClusterIP through kube-proxy's OUTPUT rules, and the NodePort on the node
    // address (kube-proxy's, not the node address's DNAT to 127.0.0.1).
    for url in [
        format!("http://{cluster_ip}/"),
        format!("http://{node_ip}:{node_port}/"),
    ] {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let body = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(body.starts_with("nodeprobe web"), "{url}: {body:?}");
    }
}

/// A one-response HTTP server on a free 127.0.0.1 port, as a test starts a fake: answers `ok` to every
/// connection. Returns its port.
async fn test_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await;
        }
    });
    port
}

/// The host and port of an `http(s)://host:port/...` URL.
fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_real_node_namespace_runs_a_plain_pod_on_the_node_with_in_cluster_access_kafka_and_emulators() {
    let _bed = common::shared().await;
    node::require();
    let client = common::kube_client().await;
    let ns = node::real_node_namespace(&client, "node-ns").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    let node_ip = node::node_ip();
    let server = test_server().await;
    let account = "/var/run/secrets/kubernetes.io/serviceaccount";
    let plaintext = common::var("TESTBED_NODE_KAFKA_PLAINTEXT_BOOTSTRAP");
    let sasl = common::var("TESTBED_NODE_KAFKA_BOOTSTRAP");
    let cosmos = host_port(&common::var("TESTBED_NODE_COSMOS_URL"));
    let elasticmq = format!("{}/?Action=ListQueues", common::var("TESTBED_NODE_ELASTICMQ_URL"));
    // A server of the test's own on 127.0.0.1, as the Resource Manager fake or a collector would be.
    let test_url = node::pod_url(&format!("http://127.0.0.1:{server}/"));
    // (container, probe arguments, what its log must contain).
    let checks = [
        (
            "whoami",
            ["whoami", "-"],
            format!("system:serviceaccount:{ns}:default"),
        ),
        ("kafka", ["kafka", &plaintext], format!("broker {node_ip}:")),
        ("kafka-tls", ["tls", &sasl], "tls ok".to_owned()),
        ("cosmos-tls", ["tls", &cosmos], "tls ok".to_owned()),
        ("elasticmq", ["get", &elasticmq], "200 ".to_owned()),
        ("test-server", ["get", &test_url], "200 ok".to_owned()),
    ];
    // No node selector, no toleration, no image pull policy beyond Never: admission places the pod.
    let containers: Vec<Value> = checks
        .iter()
        .map(|(name, args, _)| {
            json!({
                "name": name, "image": node::probe_image(), "imagePullPolicy": "Never", "args": args,
                "env": [{"name": "SSL_CERT_FILE", "value": format!("{account}/ca.crt")}],
                "securityContext": node::restricted_security_context(),
            })
        })
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "plain"},
        "spec": {"restartPolicy": "OnFailure", "containers": containers}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let pod = wait_phase(&pods, "plain", &["Succeeded"], Duration::from_secs(90)).await;
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    for (name, _, expected) in &checks {
        let params = LogParams {
            container: Some((*name).to_owned()),
            ..LogParams::default()
        };
        let log = pods.logs("plain", &params).await.unwrap();
        assert!(
            log.contains(expected.as_str()),
            "{name}: {log:?} lacks {expected:?}"
        );
    }
    let whoami = pods
        .logs(
            "plain",
            &LogParams {
                container: Some("whoami".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert!(whoami.ends_with("via 10.96.0.1:443"), "{whoami:?}");

    // Placement is the namespace's: a pod asking for another node is refused, and so is one that
    // `restricted` does not admit.
    let elsewhere: Pod = serde_json::from_value(json!({
        "metadata": {"name": "elsewhere"},
        "spec": {"nodeSelector": {node::LABEL.0: "kwok"}, "containers": [{
            "name": "c", "image": node::probe_image(), "securityContext": node::restricted_security_context()}]}
    }))
    .unwrap();
    let refused = pods.create(&PostParams::default(), &elsewhere).await.unwrap_err();
    assert!(refused.to_string().contains("conflicts"), "{refused}");
    let unrestricted: Pod = serde_json::from_value(json!({
        "metadata": {"name": "unrestricted"},
        "spec": {"containers": [{"name": "c", "image": node::probe_image()}]}
    }))
    .unwrap();
    let refused = pods
        .create(&PostParams::default(), &unrestricted)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("restricted"), "{refused}");
}

#[tokio::test]
async fn host_processes_reach_every_emulator_and_kafka_at_the_node_address() {
    let _bed = common::shared().await;
    node::require();
    let ca = std::fs::read(common::var("TESTBED_CA_FILE")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let server = test_server().await;
    let urls = [
        format!("{}/moto-api/", common::var("TESTBED_NODE_MOTO_URL")),
        format!("{}/?Action=ListQueues", common::var("TESTBED_NODE_ELASTICMQ_URL")),
        format!("{}?comp=list", common::var("TESTBED_NODE_AZURITE_QUEUE_URL")),
        common::var("TESTBED_NODE_COSMOS_URL"),
        format!("{}/version", common::var("TESTBED_NODE_APISERVER_URL")),
        format!("http://{}:{server}/", node::node_ip()),
    ];
    for url in &urls {
        // Any answer proves the way there (Azurite and cosmium refuse an unsigned request).
        let response = http.get(url).send().await;
        assert!(response.is_ok(), "{url}: {response:?}");
    }

    // Kafka at the node address: the broker's metadata names the node address, which works from here too.
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = common::unique("node-kafka");
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", common::var("TESTBED_NODE_KAFKA_BOOTSTRAP"))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", common::var("KAFKA_SASL_USERNAME"))
        .set("sasl.password", common::var("KAFKA_SASL_PASSWORD"))
        .set("ssl.ca.location", common::var("KAFKA_CA_FILE"));
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> = config.create().unwrap();
    let created = admin
        .create_topics(
            &[rdkafka::admin::NewTopic::new(
                &topic,
                1,
                rdkafka::admin::TopicReplication::Fixed(1),
            )],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = config.set("message.timeout.ms", "10000").create().unwrap();
    let delivered = producer
        .send(
            FutureRecord::to(&topic)
                .key("k")
                .payload("through the node address"),
            Duration::from_secs(10),
        )
        .await;
    assert!(delivered.is_ok(), "{delivered:?}");
    let metadata = rdkafka::producer::Producer::client(&producer)
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.brokers()[0].host(), node::node_ip());
}

#[tokio::test]
async fn a_container_killed_through_containerd_is_restarted_and_ready_again() {
    let _bed = common::shared().await;
    node::require();
    let client = common::kube_client().await;
    let ns = node::real_node_namespace(&client, "node-kill").await;
    let pods: Api<Pod> = Api::namespaced(client, &ns);
    for name in ["serve-a", "serve-b"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "serve"}},
            "spec": {"containers": [{
                "name": "serve", "image": node::probe_image(), "imagePullPolicy": "Never",
                "args": ["serve", "8080"], "securityContext": node::restricted_security_context(),
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    node::wait_pods(&pods, "app=serve", 2, Duration::from_secs(60)).await;
    let killed = node::kill_container(&ns, "serve-a", "serve").await;
    // The kubelet notices the exit and starts a new container (another id) in the same pod.
    common::eventually("serve-a restarted", Duration::from_secs(60), || {
        let pods = pods.clone();
        let killed = killed.clone();
        async move {
            let pod = pods.get("serve-a").await.ok()?;
            let status = pod.status?.container_statuses?.into_iter().next()?;
            let replaced = status.container_id.is_some_and(|id| !id.ends_with(&killed));
            (status.restart_count >= 1 && replaced).then_some(())
        }
    })
    .await;
    node::wait_pod_ready(&pods, "serve-a", Duration::from_secs(60)).await;
    node::wait_pods(&pods, "app=serve", 2, Duration::from_secs(30)).await;
}
