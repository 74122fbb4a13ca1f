//! The Tributary API against the real API server of the test bed: the CRDs install, every example is
//! accepted (server-side dry run, then a real create), `kubectl get tributary` lists them, and the
//! documentation of every field reaches `kubectl explain`.
//! Rejections of invalid objects are in `api_rejections.rs`.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::process::Command;

use kube::api::{DeleteParams, PostParams};

fn kubectl(args: &[&str]) -> String {
    // A cache of its own: kubectl's shared discovery cache may predate the CRDs this run installed.
    let cache = std::env::temp_dir().join(format!("tributary-kubectl-cache-{}", std::process::id()));
    let out = Command::new(format!("{}/bin/kubectl", common::var("TESTBED_DIR")))
        .args(args)
        .arg(format!("--cache-dir={}", cache.display()))
        .env("KUBECONFIG", common::var("KUBECONFIG"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn examples_are_accepted(dir: &str) {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, &format!("examples-{dir}")).await;
    let mut created = Vec::new();
    for file in common::example_files(dir) {
        for object in common::yaml_objects(&std::fs::read_to_string(&file).unwrap()) {
            let kind = object.types.as_ref().unwrap().kind.clone();
            let api = common::tributary_api(&client, &ns, &kind);
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            api.create(&dry, &object)
                .await
                .unwrap_or_else(|e| panic!("dry run of {} in {}: {e}", kind, file.display()));
            let stored = api
                .create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("create of {} in {}: {e}", kind, file.display()));
            created.push((kind, kube::ResourceExt::name_any(&stored)));
        }
    }

    // `kubectl get tributary` lists every created object through the shared category.
    let listed = kubectl(&["get", "tributary", "-n", &ns, "-o", "name"]);
    for (kind, name) in &created {
        let line = format!("{}.tributary.dev/{name}", kind.to_lowercase());
        assert!(
            listed.lines().any(|l| l == line),
            "`kubectl get tributary` lacks {line}:\n{listed}"
        );
    }
    // Printer columns are served: the table has the Ready column for each kind.
    let table = kubectl(&["get", "trqueue,trcons", "-n", &ns]);
    assert!(table.contains("READY"), "{table}");

    for (kind, name) in created {
        common::tributary_api(&client, &ns, &kind)
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn order_pipeline_examples_are_accepted() {
    let _bed = common::shared().await;
    examples_are_accepted("orders").await;
}

#[tokio::test]
async fn device_pipeline_examples_are_accepted() {
    let _bed = common::shared().await;
    examples_are_accepted("devices").await;
}

#[tokio::test]
async fn defaults_are_applied_by_the_api_server() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "defaults").await;
    let queue = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {name: q}\nspec:\n  aws: {}\n  deadLetter: {ref: {name: dlq}}\n",
    )[0];
    let stored = common::tributary_api(&client, &ns, "Queue")
        .create(&PostParams::default(), queue)
        .await
        .unwrap();
    let spec = &stored.data["spec"];
    assert_eq!(spec["provider"], "aws");
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(spec["aws"]["visibilityTimeoutSeconds"], 30);
    assert_eq!(spec["aws"]["messageRetentionSeconds"], 345_600);
    assert_eq!(spec["aws"]["receiveWaitTimeSeconds"], 20);
    assert_eq!(spec["deadLetter"]["maxReceiveCount"], 5);
}

/// Every property of every kind's schema, as the API server publishes it in OpenAPI v3 (what `kubectl
/// explain` reads), has a description; and `kubectl explain` prints it.
#[tokio::test]
async fn every_field_is_documented_for_kubectl_explain() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let doc: serde_json::Value = serde_json::from_str(
        &client
            .request_text(
                http::Request::get("/openapi/v3/apis/tributary.dev/v1alpha1")
                    .body(Vec::new())
                    .unwrap(),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut undocumented = Vec::new();
    let mut fields = 0;
    for kind in [
        "Topic",
        "Queue",
        "Subscription",
        "Consumer",
        "DeviceStream",
        "DeadLetter",
    ] {
        let schema = &schemas[&format!("dev.tributary.v1alpha1.{kind}")];
        for part in ["spec", "status"] {
            walk(
                &format!("{kind}.{part}"),
                &schema["properties"][part],
                &mut undocumented,
                &mut fields,
            );
        }
    }
    assert!(
        fields > 150,
        "only {fields} fields found: the schemas were not read"
    );
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:#?}"
    );

    let explained = kubectl(&["explain", "queues.spec.deadLetter.maxReceiveCount"]);
    assert!(
        explained.contains("Receives before a message moves to the dead letter"),
        "{explained}"
    );
    let explained = kubectl(&["explain", "subscriptions.spec.filter"]);
    assert!(
        explained.contains("SNS filter policy written as YAML"),
        "{explained}"
    );
}

fn walk(path: &str, schema: &serde_json::Value, undocumented: &mut Vec<String>, fields: &mut usize) {
    *fields += 1;
    if schema
        .get("description")
        .and_then(|d| d.as_str())
        .is_none_or(str::is_empty)
    {
        undocumented.push(path.to_owned());
    }
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            walk(&format!("{path}.{name}"), sub, undocumented, fields);
        }
    }
    if let Some(items) = schema
        .get("items")
        .and_then(|i| i.get("properties"))
        .and_then(|p| p.as_object())
    {
        for (name, sub) in items {
            walk(&format!("{path}[].{name}"), sub, undocumented, fields);
        }
    }
}
