//! The Helm chart on the test bed: it lints, renders for every option, is accepted by the API server,
//! installs, upgrades and uninstalls leaving nothing behind, and its pods are admitted by a namespace that
//! enforces the `restricted` Pod Security Standard. The pods run on kwok nodes, so no container starts:
//! `rbac.rs` runs the controller binary itself with the chart's ServiceAccount.
#![allow(clippy::unwrap_used)]

mod json_schema;
mod observability;
mod rbac;

use crate::support as common;

use std::{collections::BTreeSet, time::Duration};

use common::tools::{helm, kubectl, run};
use serde_json::{Value, json};

/// The chart, from the repository.
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/tributary");

/// Every document `helm template` printed, as JSON.
pub fn documents(rendered: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(rendered)
        .filter_map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            (!value.is_null()).then_some(value)
        })
        .collect()
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// A namespace whose pods must meet the `restricted` Pod Security Standard.
pub async fn restricted_namespace(client: &kube::Client, prefix: &str) -> String {
    let ns = common::namespace(client, prefix).await;
    kubectl(&[
        "label",
        "namespace",
        &ns,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    ]);
    ns
}

/// Keeps the chart's webhook away from every namespace, so that installing it on the shared test bed
/// (where its pods never serve) cannot block other tests' Subscriptions.
const WEBHOOK_NOWHERE: &str = "webhook.namespaceSelector.matchLabels.tributary-chart-test=nowhere";

#[test]
fn the_chart_lints_and_renders_every_option_without_wildcard_permissions() {
    helm(&["lint", "--strict", CHART]);
    let all_options = [
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.apiServer.cidrs={10.96.0.1/32}",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "aws.roleArn=arn:aws:iam::123456789012:role/tributary",
        "--set",
        "azure.clientId=00000000-0000-0000-0000-000000000001",
        "--set",
        "tracing.otlpEndpoint=http://otel-collector.observability:4318",
        "--set",
        "tracing.sampler=parentbased_traceidratio",
        "--set",
        "tracing.samplerArg=0.1",
        "--set",
        "clusterId=prod-eu-1",
        "--set",
        "tenancy.defaultPolicy.dynamodbTables={shared-*}",
        "--set",
        "metrics.podMonitor.enabled=true",
        "--set",
        "dashboards.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
    ];
    let mut lint = vec!["lint", "--strict", CHART];
    lint.extend(all_options);
    helm(&lint);

    let default = documents(&helm(&["template", "tributary", CHART, "-n", "tributary-system"]));
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Lease",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(kinds(&default), expected);

    let mut template = vec!["template", "tributary", CHART, "-n", "tributary-system"];
    template.extend(all_options);
    let everything = documents(&helm(&template));
    let everything_kinds = kinds(&everything);
    assert!(everything_kinds.contains("NetworkPolicy") && everything_kinds.contains("ServiceMonitor"));
    // The operational kit (observability.rs checks what it holds).
    for kind in ["PodMonitor", "PrometheusRule", "ConfigMap"] {
        assert!(everything_kinds.contains(kind), "no {kind} rendered");
    }
    let named = |kind: &str, name: &str| {
        everything
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
    };
    let account = named("ServiceAccount", "tributary");
    // The controller's metrics: only the monitoring namespace may scrape them (no peers given).
    let policy = named("NetworkPolicy", "tributary");
    assert_eq!(
        policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/tributary"
    );
    assert_eq!(
        account["metadata"]["annotations"]["azure.workload.identity/client-id"],
        "00000000-0000-0000-0000-000000000001"
    );
    let deployment = named("Deployment", "tributary");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let value_of = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        value_of("OTEL_EXPORTER_OTLP_ENDPOINT"),
        Some(json!("http://otel-collector.observability:4318"))
    );
    assert_eq!(value_of("OTEL_TRACES_SAMPLER_ARG"), Some(json!("0.1")));
    assert_eq!(value_of("TRIBUTARY_CLUSTER_ID"), Some(json!("prod-eu-1")));
    // The cluster default TenantPolicy from tenancy.defaultPolicy; none by default.
    let policy = everything.iter().find(|d| d["kind"] == "TenantPolicy").unwrap();
    assert_eq!(policy["metadata"]["name"], "cluster.default");
    assert_eq!(policy["spec"]["dynamodbTables"], json!(["shared-*"]));
    assert!(!kinds(&default).contains("TenantPolicy"));
    // The tenancy ClusterRole: get on TenantPolicies, and on kube-system only without clusterId; it
    // carries no aggregation label, so tenants' edit/admin roles never include the policy.
    let tenancy = |docs: &[Value]| {
        docs.iter()
            .find(|d| {
                d["kind"] == "ClusterRole" && d["metadata"]["name"].as_str().unwrap().ends_with("-tenancy")
            })
            .unwrap()
            .clone()
    };
    let default_tenancy = tenancy(&default);
    assert_eq!(
        default_tenancy["rules"][0]["resources"],
        json!(["tenantpolicies"])
    );
    assert_eq!(
        default_tenancy["rules"][0]["verbs"],
        json!(["get", "list", "watch"])
    );
    assert_eq!(
        default_tenancy["rules"][1]["resourceNames"],
        json!(["kube-system"])
    );
    assert!(
        default_tenancy["metadata"]["labels"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("aggregate-to"))
    );
    assert_eq!(tenancy(&everything)["rules"].as_array().unwrap().len(), 1);

    // No rule of any Role may use a wildcard.
    for doc in default.iter().chain(&everything) {
        for rule in doc["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[field].as_array().unwrap().iter().any(|v| v == "*"),
                    "wildcard in {}: {rule}",
                    doc["metadata"]["name"]
                );
            }
        }
    }

    // Watching one namespace: a Role there instead of the ClusterRole.
    let scoped = documents(&helm(&[
        "template",
        "tributary",
        CHART,
        "-n",
        "tributary-system",
        "--set",
        "watchNamespace=orders",
    ]));
    // Only the tenancy ClusterRole is cluster-wide (TenantPolicies are cluster-scoped).
    let cluster_roles: Vec<_> = scoped.iter().filter(|d| d["kind"] == "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(cluster_roles[0], &tenancy(&scoped));
    let roles: Vec<_> = scoped.iter().filter(|d| d["kind"] == "Role").collect();
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "orders"));

    // One cloud identity for every namespace's workers is refused, with where identities go instead.
    let shared = run(
        "helm",
        &[
            "template",
            "tributary",
            CHART,
            "--set",
            "workers.serviceAccountAnnotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/all",
        ],
        None,
    );
    assert!(
        !shared.success && shared.stderr.contains("spec.workerIdentity"),
        "{}",
        shared.stderr
    );

    // A NetworkPolicy without the API server's addresses is refused with the value to set.
    let out = run(
        "helm",
        &[
            "template",
            "tributary",
            CHART,
            "--set",
            "networkPolicy.enabled=true",
        ],
        None,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains("networkPolicy.apiServer.cidrs is required"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_rendered_chart_is_accepted_by_the_api_server() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    let ns = common::namespace(&client, "chart-dry").await;
    let rendered = helm(&[
        "template",
        "tributary",
        CHART,
        "-n",
        &ns,
        "--include-crds",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.apiServer.cidrs={10.96.0.1/32}",
        "--set",
        WEBHOOK_NOWHERE,
    ]);
    let out = run(
        "kubectl",
        &["apply", "--server-side", "--dry-run=server", "-n", &ns, "-f", "-"],
        Some(&rendered),
    );
    assert!(
        out.success,
        "the API server refused the chart:\n{}{}",
        out.stdout, out.stderr
    );
    for kind in [
        "deployment.apps",
        "networkpolicy",
        "validatingwebhookconfiguration",
    ] {
        assert!(out.stdout.contains(kind), "{kind} missing from:\n{}", out.stdout);
    }
    kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}

/// Names of the objects labelled for release `tributary` in `ns` (and cluster-wide ones).
fn release_objects(ns: &str) -> Vec<String> {
    let selector = "app.kubernetes.io/instance=tributary";
    let namespaced = kubectl(&[
        "get",
        "deployments,replicasets,pods,services,secrets,serviceaccounts,configmaps,roles,rolebindings,networkpolicies,poddisruptionbudgets",
        "-n",
        ns,
        "-l",
        selector,
        "-o",
        "name",
    ]);
    let cluster = kubectl(&[
        "get",
        "clusterroles,clusterrolebindings,validatingwebhookconfigurations",
        "-l",
        &format!("{selector},app.kubernetes.io/name=tributary"),
        "-o",
        "name",
    ]);
    let ours = format!("tributary-{ns}");
    namespaced
        .lines()
        .map(str::to_owned)
        .chain(
            cluster
                .lines()
                .filter(|l| l.ends_with(&ours) || l.ends_with(&format!("{ours}-webhook")))
                .map(str::to_owned),
        )
        .collect()
}

fn secret_data(ns: &str, name: &str, key: &str) -> String {
    let key = key.replace('.', "\\.");
    kubectl(&[
        "get",
        "secret",
        name,
        "-n",
        ns,
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ])
}

#[tokio::test]
async fn install_upgrade_and_uninstall_under_restricted_leave_nothing_behind() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = restricted_namespace(&client, "chart").await;

    // The namespace really enforces `restricted`: a plain pod is refused.
    common::tools::assert_enforces_restricted(&ns);

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
        "--wait",
        "--timeout",
        "120s",
    ]);
    // Pods of one Deployment of the release: `tributary` (the controller) or `tributary-webhook`.
    let pods = |name: &'static str, n: usize| {
        let ns = ns.clone();
        move || {
            let ns = ns.clone();
            async move {
                let names = kubectl(&[
                    "get",
                    "pods",
                    "-n",
                    &ns,
                    "-l",
                    &format!("app.kubernetes.io/instance=tributary,app.kubernetes.io/name={name}"),
                    "--field-selector=status.phase=Running",
                    "-o",
                    "name",
                ]);
                (names.lines().count() == n).then_some(())
            }
        }
    };
    common::eventually(
        "the controller pod admitted and running",
        Duration::from_secs(60),
        pods("tributary", 1),
    )
    .await;
    common::eventually(
        "two webhook pods admitted and running",
        Duration::from_secs(60),
        pods("tributary-webhook", 2),
    )
    .await;
    let budget = kubectl(&[
        "get",
        "poddisruptionbudget",
        "tributary-webhook",
        "-n",
        &ns,
        "-o",
        "jsonpath={.spec.minAvailable}",
    ]);
    assert_eq!(budget, "1", "the webhook keeps one replica through disruptions");
    let ca = secret_data(&ns, "tributary-webhook-tls", "ca.crt");
    assert!(!ca.is_empty());
    let webhook = format!("tributary-{ns}");
    let bundle = || {
        kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            &webhook,
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
    };
    assert_eq!(
        bundle(),
        ca,
        "the webhook must trust the CA that signed its certificate"
    );

    // Upgrade: two replicas (leader election), and the webhook keeps its certificate.
    helm(&[
        "upgrade",
        "tributary",
        CHART,
        "-n",
        &ns,
        "--reuse-values",
        "--set",
        "replicaCount=2",
        "--wait",
        "--timeout",
        "120s",
    ]);
    common::eventually(
        "two controller pods after the upgrade",
        Duration::from_secs(60),
        pods("tributary", 2),
    )
    .await;
    assert_eq!(secret_data(&ns, "tributary-webhook-tls", "ca.crt"), ca);
    assert_eq!(bundle(), ca);

    helm(&["uninstall", "tributary", "-n", &ns, "--wait", "--timeout", "120s"]);
    let ns2 = ns.clone();
    let left = common::eventually("nothing of the release left", Duration::from_secs(60), || {
        let left = release_objects(&ns2);
        async move { left.is_empty().then_some(left) }
    })
    .await;
    assert!(left.is_empty());
    let helm_secrets = kubectl(&["get", "secrets", "-n", &ns, "-l", "owner=helm", "-o", "name"]);
    assert!(
        helm_secrets.is_empty(),
        "helm's release records are left: {helm_secrets}"
    );
    // The CRDs stay (Helm never deletes a chart's crds/): deleting them would delete every pipeline.
    kubectl(&["get", "crd", "topics.tributary.dev"]);
    kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
