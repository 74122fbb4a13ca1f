//! The chart's RBAC is exactly what the controller needs: the ServiceAccount may do what the list below
//! says and nothing more (this test fails if the chart grants more), and with only that the controller
//! binary, authenticated as the ServiceAccount, runs the whole order example to Ready, creates its worker
//! Deployments (whose pods a `restricted` namespace admits), writes Events, and deletes everything
//! through its finalizers without one `forbidden` answer.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use super::{CHART, WEBHOOK_NOWHERE, common, restricted_namespace};
use crate::support::tools::{helm, kubectl, ok};

/// Granted by the API server's default roles to every authenticated user, whoever installs the chart.
const EVERY_USER: [(&str, &[&str]); 3] = [
    ("selfsubjectreviews.authentication.k8s.io", &["create"]),
    ("selfsubjectaccessreviews.authorization.k8s.io", &["create"]),
    ("selfsubjectrulesreviews.authorization.k8s.io", &["create"]),
];

/// What the controller calls, in any namespace it watches.
const CONTROLLER: [(&str, &[&str]); 24] = [
    ("topics.tributary.dev", &["list", "patch", "watch"]),
    ("queues.tributary.dev", &["list", "patch", "watch"]),
    ("deadletters.tributary.dev", &["list", "patch", "watch"]),
    ("subscriptions.tributary.dev", &["list", "patch", "watch"]),
    ("consumers.tributary.dev", &["list", "patch", "watch"]),
    ("devicestreams.tributary.dev", &["list", "patch", "watch"]),
    ("topics.tributary.dev/status", &["patch"]),
    ("queues.tributary.dev/status", &["patch"]),
    ("deadletters.tributary.dev/status", &["patch"]),
    ("subscriptions.tributary.dev/status", &["patch"]),
    ("consumers.tributary.dev/status", &["patch"]),
    ("devicestreams.tributary.dev/status", &["patch"]),
    ("consumers.tributary.dev/finalizers", &["update"]),
    ("devicestreams.tributary.dev/finalizers", &["update"]),
    ("subscriptions.tributary.dev/finalizers", &["update"]),
    ("configmaps", &["create", "get", "patch"]),
    ("serviceaccounts", &["create", "get", "patch"]),
    ("services", &["create", "get", "patch"]),
    ("deployments.apps", &["create", "get", "patch"]),
    ("networkpolicies.networking.k8s.io", &["create", "get", "patch"]),
    ("secrets", &["create", "get", "patch"]),
    // Worker pods' addresses, for their counts (Consumer status.throughput, a relay's status.relay).
    ("pods", &["list"]),
    // Cluster-scoped: the TenantPolicies, and the kube-system Namespace (the default cluster identity).
    ("tenantpolicies.tributary.dev", &["get", "list", "watch"]),
    ("namespaces", &["get"]),
];

/// Where the controller writes Events; in the release namespace it also holds its Lease.
const EVENTS: (&str, &[&str]) = ("events.events.k8s.io", &["create", "patch"]);
const LEASE: (&str, &[&str]) = ("leases.coordination.k8s.io", &["create", "get", "update"]);

/// `kubectl auth can-i --list` for `user` in `ns`: resource → verbs (non-resource URLs left out).
fn permissions(user: &str, ns: &str) -> BTreeMap<String, BTreeSet<String>> {
    let table = kubectl(&["auth", "can-i", "--list", "--as", user, "-n", ns]);
    let mut granted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in table.lines().skip(1) {
        // Non-resource URL rows start with blanks (their Resources column is empty).
        if line.starts_with(char::is_whitespace) || line.trim().is_empty() {
            continue;
        }
        let resource = line.split_whitespace().next().unwrap().to_owned();
        let verbs = &line[line.rfind('[').unwrap() + 1..line.rfind(']').unwrap()];
        granted
            .entry(resource)
            .or_default()
            .extend(verbs.split_whitespace().map(str::to_owned));
    }
    granted
}

fn expected(rows: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    rows.iter()
        .map(|(r, verbs)| ((*r).to_owned(), verbs.iter().map(|v| (*v).to_owned()).collect()))
        .collect()
}

/// A kubeconfig for the test bed that authenticates with `token`.
fn kubeconfig_with_token(token: &str, path: &std::path::Path) {
    let admin = std::fs::read_to_string(common::var("KUBECONFIG")).unwrap();
    let mut config: Value = serde_yaml_ng::from_str(&admin).unwrap();
    for user in config["users"].as_array_mut().unwrap() {
        user["user"] = serde_json::json!({ "token": token });
    }
    std::fs::write(path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
}

/// The Argo CD health examples/argocd/health.lua gives `object`.
fn argocd_health(object: &Value) -> (String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/argocd/health.lua");
    let out = ok("argocd-lua", &[script], Some(&object.to_string()));
    let health: Value = serde_json::from_str(&out).unwrap();
    (
        health["status"].as_str().unwrap().to_owned(),
        health["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn the_service_account_may_do_exactly_what_the_controller_needs_and_that_suffices() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = restricted_namespace(&client, "chart-rbac").await;
    let app = restricted_namespace(&client, "chart-app").await;
    helm(&[
        "install",
        "tributary",
        CHART,
        "-n",
        &ns,
        "--set",
        "image.tag=test",
        "--set",
        WEBHOOK_NOWHERE,
    ]);
    let user = format!("system:serviceaccount:{ns}:tributary");

    let mut in_app = expected(&EVERY_USER);
    in_app.extend(expected(&CONTROLLER));
    in_app.extend(expected(&[EVENTS]));
    assert_eq!(
        permissions(&user, &app),
        in_app,
        "what the ServiceAccount may do in a watched namespace"
    );
    let mut in_release = in_app.clone();
    in_release.extend(expected(&[LEASE]));
    assert_eq!(
        permissions(&user, &ns),
        in_release,
        "what it may do in its own namespace"
    );
    for (verb, resource) in [
        ("list", "topics.tributary.dev"),
        ("watch", "consumers.tributary.dev"),
    ] {
        let answer = kubectl(&["auth", "can-i", verb, resource, "--all-namespaces", "--as", &user]);
        assert_eq!(answer.trim(), "yes", "{verb} {resource} across namespaces");
    }

    // The controller binary as that ServiceAccount, watching `app`, its Lease in `ns`.
    let dir = std::env::temp_dir().join(common::unique("chart-rbac"));
    std::fs::create_dir_all(&dir).unwrap();
    let token = kubectl(&["create", "token", "tributary", "-n", &ns, "--duration=1h"]);
    let kubeconfig = dir.join("kubeconfig");
    kubeconfig_with_token(token.trim(), &kubeconfig);
    let log_path = dir.join("controller.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut controller = Command::new(crate::support::tributary_bin())
        .args(["controller", "--watch-namespace", &app, "--resync-seconds", "5"])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", common::free_port())])
        .args([
            "--leader-election-namespace",
            &ns,
            "--identity",
            "chart-rbac-test",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("TRIBUTARY_LOG_FORMAT", "json")
        .env("TRIBUTARY_WORKER_IMAGE", "tributary:test")
        .env("RUST_LOG", "info")
        .env("AWS_ENDPOINT_URL", common::var("AWS_ENDPOINT_URL"))
        .env("AWS_REGION", common::var("AWS_REGION"))
        .env("AWS_ACCESS_KEY_ID", common::var("AWS_ACCESS_KEY_ID"))
        .env("AWS_SECRET_ACCESS_KEY", common::var("AWS_SECRET_ACCESS_KEY"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // The example's Consumers share the table `orders`, outside the default `<namespace>-*`.
    common::tenant_policy(&client, &app, serde_json::json!({"dynamodbTables": ["orders"]})).await;
    let mut objects = Vec::new();
    for file in common::example_files("orders") {
        let text = std::fs::read_to_string(&file).unwrap();
        common::create_yaml(&client, &app, &text).await;
        for object in common::yaml_objects(&text) {
            let kind = object.types.as_ref().unwrap().kind.clone();
            objects.push((kind, kube::ResourceExt::name_any(&object)));
        }
    }
    for (kind, name) in &objects {
        let object =
            common::wait_reason(&client, &app, kind, name, "Available", Duration::from_secs(120)).await;
        let (status, message) = argocd_health(&serde_json::to_value(&object).unwrap());
        assert_eq!(status, "Healthy", "Argo CD health of {kind} {name}: {message}");
    }
    // The order endpoint's two workers, admitted under `restricted` and running on kwok.
    common::eventually("order-ack-worker pods running", Duration::from_secs(60), || {
        let app = app.clone();
        async move {
            let pods = kubectl(&[
                "get",
                "pods",
                "-n",
                &app,
                "-l",
                "tributary.dev/consumer=order-ack",
                "--field-selector=status.phase=Running",
                "-o",
                "name",
            ]);
            (pods.lines().count() == 2).then_some(())
        }
    })
    .await;
    let events = kubectl(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &app,
        "-o",
        "jsonpath={range .items[*]}{.reportingController}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("tributary-controller"),
        "no Event from the controller:\n{events}"
    );

    // Deleting runs every finalizer with the same permissions.
    for (kind, name) in objects.iter().rev() {
        let _ = common::tributary_api(&client, &app, kind)
            .delete(name, &Default::default())
            .await;
    }
    common::eventually("every object deleted", Duration::from_secs(90), || {
        let app = app.clone();
        async move {
            let left = kubectl(&["get", "tributary", "-n", &app, "-o", "name"]);
            left.trim().is_empty().then_some(())
        }
    })
    .await;

    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let status = controller.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(status.success(), "the controller exited with {status}:\n{log}");
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the controller was refused something it needs:\n{log}"
    );
    helm(&["uninstall", "tributary", "-n", &ns, "--wait"]);
    for namespace in [&ns, &app] {
        kubectl(&["delete", "namespace", namespace, "--wait=false"]);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
