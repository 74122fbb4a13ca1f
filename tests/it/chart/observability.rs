//! The chart's operational kit, checked with the tools that will read it: the PrometheusRule passes
//! `promtool check rules` and the rule unit tests of `rules-test.yaml` (one per alert, including the dead
//! letter firing and not firing); the Grafana dashboard matches `dashboard.schema.json`, has unique panel
//! ids, and every query parses as PromQL (promtool, as recording rules); every metric the rules and the
//! dashboard name is one the code exports. All of it is off by default (chart.rs checks the default kinds).
//! Needs only the test bed's helm and promtool, not its servers.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use super::{CHART, documents, json_schema};
use crate::support::{
    tools::{helm, run},
    var,
};

const HERE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/chart");
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// An empty folder for this test's files under the test bed's folder.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(var("TESTBED_DIR")).join("observability").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `promtool ARGS`, which must succeed; what it printed.
fn promtool(args: &[&str]) -> String {
    let out = run("promtool", args, None);
    assert!(
        out.success,
        "promtool {args:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

/// The chart rendered with `sets` (release `tributary` in `tributary-system`).
fn rendered(sets: &[&str]) -> Vec<Value> {
    let mut args = vec!["template", "tributary", CHART, "-n", "tributary-system"];
    for set in sets {
        args.extend(["--set", set]);
    }
    documents(&helm(&args))
}

/// Every metric name the code writes: `tributary_…` tokens outside comments in src/.
fn exported_metrics() -> BTreeSet<String> {
    fn walk(dir: &Path, names: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, names);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
                names.extend(code.flat_map(metric_names));
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(Path::new(SOURCE), &mut names);
    names
}

/// The `tributary_…` metric names in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("tributary_") {
        let preceded = rest[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Asserts every metric `expr` names is exported by the code (a histogram's series by its family).
fn assert_exported(expr: &str, exported: &BTreeSet<String>, whose: &str) {
    let names = metric_names(expr);
    assert!(!names.is_empty(), "{whose}: no Tributary metric in {expr}");
    for name in names {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|family| exported.contains(*family));
        assert!(
            exported.contains(&name) || family.is_some(),
            "{whose} uses {name}, which no code in src/ exports: {expr}"
        );
    }
}

/// Every alerting rule of a rendered PrometheusRule's groups.
fn alerts(spec: &Value) -> Vec<&Value> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn the_prometheus_rules_pass_promtool_and_their_unit_tests() {
    let docs = rendered(&["prometheusRule.enabled=true"]);
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    let spec = &rule["spec"];
    let dir = scratch("rules");
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, serde_yaml_ng::to_string(spec).unwrap()).unwrap();
    let checked = promtool(&["check", "rules", rules.to_str().unwrap()]);
    let all = alerts(spec);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", all.len())),
        "{checked}"
    );
    assert_eq!(all.len(), 9, "one rule per alert of values.yaml");

    let exported = exported_metrics();
    let tests = std::fs::read_to_string(Path::new(HERE).join("rules-test.yaml")).unwrap();
    for alert in &all {
        let name = alert["alert"].as_str().unwrap();
        assert_exported(alert["expr"].as_str().unwrap(), &exported, name);
        assert!(alert["labels"]["severity"].is_string(), "{name}: no severity");
        let summary = alert["annotations"]["summary"].as_str().unwrap();
        assert!(alert["annotations"]["description"].is_string(), "{name}");
        // Each names what it is about: the object, the Consumer or the kind (the leader alert, the
        // release's namespace).
        assert!(
            summary.contains("{{ $labels.") || summary.contains("tributary-system"),
            "{name}: the summary names nothing: {summary}"
        );
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "rules-test.yaml has no test of {name}"
        );
    }

    std::fs::write(dir.join("rules-test.yaml"), &tests).unwrap();
    let tested = promtool(&["test", "rules", dir.join("rules-test.yaml").to_str().unwrap()]);
    assert!(tested.contains("SUCCESS"), "{tested}");

    // Values reach the rules: a threshold, a for-duration, extra labels, an alert turned off.
    let docs = rendered(&[
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=kube-prometheus-stack",
        "prometheusRule.alertLabels.team=payments",
        "prometheusRule.alerts.deadLetterNotEmpty.threshold=10",
        "prometheusRule.alerts.deadLetterNotEmpty.for=1h",
        "prometheusRule.alerts.objectNotReady.enabled=false",
    ]);
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let tuned = alerts(&rule["spec"]);
    assert_eq!(tuned.len(), 8);
    let dead_letter = tuned
        .iter()
        .find(|a| a["alert"] == "TributaryDeadLetterNotEmpty")
        .unwrap();
    assert_eq!(
        dead_letter["expr"],
        r#"tributary_queue_depth{kind="DeadLetter"} > 10"#
    );
    assert_eq!(dead_letter["for"], "1h");
    assert_eq!(
        dead_letter["labels"],
        json!({"severity": "warning", "team": "payments"})
    );
    assert!(tuned.iter().all(|a| a["alert"] != "TributaryObjectNotReady"));
}

/// `expr` with the dashboard's variables replaced by values Grafana could give them.
fn with_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$namespace", "orders|shop")
        .replace("$consumer", "orders/fulfil")
}

#[test]
fn the_dashboard_matches_its_schema_parses_as_promql_and_names_only_exported_metrics() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(HERE).join("dashboard.schema.json")).unwrap(),
    )
    .unwrap();
    let exported = exported_metrics();
    let folder = Path::new(CHART).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboard in {}", folder.display());
    let dir = scratch("dashboards");
    let mut records = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.ends_with(".json"), "{name}: dashboards are JSON files");
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let found = json_schema::violations(&schema, &dashboard);
        assert!(
            found.is_empty(),
            "{name} breaks the schema:\n{}",
            found.join("\n")
        );

        let panels = dashboard["panels"].as_array().unwrap();
        let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        assert_eq!(ids.len(), panels.len(), "{name}: panel ids are not unique");
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap();
                let whose = format!("{name} panel {} ({})", panel["id"], panel["title"]);
                assert_exported(expr, &exported, &whose);
                let record = format!(
                    "dashboard:panel_{}:{}",
                    panel["id"],
                    target["refId"].as_str().unwrap()
                );
                records.push(json!({"record": record, "expr": with_variables(expr)}));
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if let Some(query) = variable["query"]["query"].as_str() {
                assert_exported(query, &exported, &format!("{name} variable {}", variable["name"]));
            }
        }
        // The contract's metrics all have a panel.
        let text = dashboard.to_string();
        for metric in [
            "tributary_object_ready",
            "tributary_queue_depth",
            "tributary_queue_oldest_message_age_seconds",
            "tributary_consumer_backlog",
            "tributary_reconcile_errors_total",
            "tributary_cloud_calls_total",
            "tributary_leader",
            "tributary_worker_messages_dead_lettered_total",
        ] {
            assert!(text.contains(metric), "{name} has no panel of {metric}");
        }
    }
    // Every query is valid PromQL: promtool parses each as a recording rule.
    let queries = dir.join("queries.yaml");
    let groups = json!({"groups": [{"name": "dashboard-queries", "rules": records}]});
    std::fs::write(&queries, serde_yaml_ng::to_string(&groups).unwrap()).unwrap();
    let checked = promtool(&["check", "rules", queries.to_str().unwrap()]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", records.len())),
        "{checked}"
    );

    // The chart ships them in one ConfigMap labelled for Grafana's sidecar, as they are in the chart.
    let docs = rendered(&[
        "dashboards.enabled=true",
        "dashboards.annotations.grafana_folder=Tributary",
    ]);
    let config_map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "tributary-dashboards")
        .unwrap();
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        config_map["metadata"]["annotations"]["grafana_folder"],
        "Tributary"
    );
    for file in &files {
        let key = file.file_name().unwrap().to_str().unwrap();
        let shipped: Value = serde_json::from_str(config_map["data"][key].as_str().unwrap()).unwrap();
        let source: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(shipped, source, "{key} differs in the ConfigMap");
    }
}

#[test]
fn the_monitors_keep_the_metrics_labels_and_find_every_worker() {
    let docs = rendered(&[
        "metrics.serviceMonitor.enabled=true",
        "metrics.podMonitor.enabled=true",
    ]);
    let service = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
    // The per-object gauges' `namespace` is the object's, not the controller pod's.
    assert_eq!(service["spec"]["endpoints"][0]["honorLabels"], true);
    let pods = docs.iter().find(|d| d["kind"] == "PodMonitor").unwrap();
    assert_eq!(pods["spec"]["namespaceSelector"], json!({"any": true}));
    assert_eq!(
        pods["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "tributary-worker"
    );
    assert_eq!(pods["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    let scoped = rendered(&["metrics.podMonitor.enabled=true", "watchNamespace=orders"]);
    let pods = scoped.iter().find(|d| d["kind"] == "PodMonitor").unwrap();
    assert_eq!(
        pods["spec"]["namespaceSelector"],
        json!({"matchNames": ["orders"]})
    );
}

#[test]
fn metric_names_are_found_and_an_unexported_one_is_refused() {
    let expr = r#"sum(rate(tributary_worker_messages_failed_total{kind="tributary_x"}[5m])) / my_tributary_y
        + histogram_quantile(0.9, tributary_reconcile_duration_seconds_bucket)"#;
    assert_eq!(
        metric_names(expr),
        [
            "tributary_worker_messages_failed_total",
            "tributary_x",
            "tributary_reconcile_duration_seconds_bucket"
        ]
    );
    let exported = exported_metrics();
    assert!(exported.contains("tributary_object_ready") && exported.contains("tributary_leader"));
    assert_exported(
        "rate(tributary_reconcile_duration_seconds_count[5m])",
        &exported,
        "test",
    );
    let refused = std::panic::catch_unwind(|| {
        assert_exported("rate(tributary_made_up_total[5m])", &exported, "test");
    });
    assert!(refused.is_err(), "a metric no code exports must fail the check");
}
