//! Smoke test of helm against the test bed's API server: a chart made by `helm create` installs, its
//! Deployment's Pods come up on the kwok nodes (`--wait`), and `helm uninstall` removes what it installed.
//! The Tributary chart's own tests build on this.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use common::tools::helm;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, api::ListParams};

#[tokio::test]
async fn helm_installs_waits_for_and_uninstalls_a_chart() {
    let _bed = common::shared().await;
    let dir = std::env::temp_dir().join(common::unique("helm-smoke"));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("smoke");
    helm(&["create", chart.to_str().unwrap()]);
    helm(&["lint", chart.to_str().unwrap()]);

    let ns = common::unique("helm");
    helm(&[
        "install",
        "smoke",
        chart.to_str().unwrap(),
        "-n",
        &ns,
        "--create-namespace",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let status = helm(&["status", "smoke", "-n", &ns, "-o", "json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["info"]["status"], "deployed");

    let deployments: Api<Deployment> = Api::namespaced(common::kube_client().await, &ns);
    let installed = deployments.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(installed.len(), 1);
    let ready = installed[0]
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    assert!(ready >= 1, "helm --wait returned with {ready} ready replicas");

    helm(&["uninstall", "smoke", "-n", &ns, "--wait"]);
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
