//! Smoke tests of the test bed's control plane through the kube client the operator uses: the API server is
//! ready, a Deployment gets Running Pods (controller-manager, scheduler and kwok working together), and
//! deleting the Deployment garbage-collects its ReplicaSet and Pods.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Namespace, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::json;

#[tokio::test]
async fn api_server_is_ready_and_reports_the_pinned_version() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let readyz = client
        .request_text(http::Request::get("/readyz").body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(readyz, "ok");
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        version.git_version, "v1.36.3",
        "the build stamps the Kubernetes version"
    );
}

#[tokio::test]
async fn deployment_pods_run_on_kwok_nodes_and_are_garbage_collected() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns_name = common::unique("smoke");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).unwrap(),
        )
        .await
        .unwrap();

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns_name);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "tributary.invalid/web:1"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let running = common::eventually(
        "2 Running pods of the deployment",
        Duration::from_secs(90),
        || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
                let running: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                    .collect();
                (running.len() == 2).then_some(running)
            }
        },
    )
    .await;
    for pod in &running {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "pod {} scheduled on {node:?}",
            pod.name_any()
        );
        let owner = &pod.owner_references()[0];
        assert_eq!(
            owner.kind, "ReplicaSet",
            "pods are owned by the deployment's ReplicaSet"
        );
    }
    assert_eq!(
        replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    common::eventually(
        "ReplicaSet and Pods garbage-collected",
        Duration::from_secs(90),
        || {
            let (pods, replica_sets) = (pods.clone(), replica_sets.clone());
            async move {
                let rs = replica_sets.list(&ListParams::default()).await.ok()?.items.len();
                let pods = pods.list(&ListParams::default()).await.ok()?.items.len();
                (rs == 0 && pods == 0).then_some(())
            }
        },
    )
    .await;
    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .unwrap();
}
