//! Smoke test of helm against the test bed's API server: a chart made by `helm create` installs, its
//! Deployment's Pods come up on the kwok nodes (`--wait`), and `helm uninstall` removes what it installed.
//! The Tributary chart's own tests build on this.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, api::ListParams};

fn helm(args: &[&str]) -> String {
    let bin = format!("{}/bin/helm", common::var("TESTBED_DIR"));
    let out = Command::new(&bin)
        .args(args)
        .env("KUBECONFIG", common::var("KUBECONFIG"))
        .env(
            "HELM_CACHE_HOME",
            format!("{}/helm/cache", common::var("TESTBED_DIR")),
        )
        .env(
            "HELM_CONFIG_HOME",
            format!("{}/helm/config", common::var("TESTBED_DIR")),
        )
        .env(
            "HELM_DATA_HOME",
            format!("{}/helm/data", common::var("TESTBED_DIR")),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn helm_installs_waits_for_and_uninstalls_a_chart() {
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
