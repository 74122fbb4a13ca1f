//! Argo CD health of the six kinds: examples/argocd/health.lua, run by gopher-lua (the interpreter Argo CD
//! embeds, built into the test bed as `argocd-lua`), gives every sample object of
//! examples/argocd/health_test.yaml its expected status and message; and the argocd-cm entries users merge
//! are exactly that script, once per kind. tests/it/chart/rbac.rs checks real objects the controller made.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::path::Path;

use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/argocd");

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_sample_object_gets_its_expected_health() {
    let tests = yaml(&Path::new(DIR).join("health_test.yaml"));
    let cases = tests["tests"].as_array().unwrap();
    assert!(cases.len() >= 8, "the sample set shrank");
    let mut statuses = std::collections::BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().unwrap();
        let object = yaml(&Path::new(DIR).join(input));
        let script = format!("{DIR}/health.lua");
        let out = common::tools::ok("argocd-lua", &[&script], Some(&object.to_string()));
        let got: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(got["status"], case["healthStatus"]["status"], "{input}: {got}");
        assert_eq!(got["message"], case["healthStatus"]["message"], "{input}: {got}");
        statuses.insert(got["status"].as_str().unwrap().to_owned());
    }
    for status in ["Healthy", "Progressing", "Degraded"] {
        assert!(statuses.contains(status), "no sample is {status}");
    }
}

#[test]
fn the_argocd_cm_entries_are_the_script_for_all_six_kinds() {
    let script = std::fs::read_to_string(Path::new(DIR).join("health.lua")).unwrap();
    let cm = yaml(&Path::new(DIR).join("argocd-cm-health.yaml"));
    let data = cm["data"].as_object().unwrap();
    let kinds = [
        "Topic",
        "Queue",
        "Subscription",
        "Consumer",
        "DeviceStream",
        "DeadLetter",
    ];
    assert_eq!(data.len(), kinds.len());
    for kind in kinds {
        let key = format!("resource.customizations.health.tributary.dev_{kind}");
        assert!(
            data.get(&key).and_then(Value::as_str) == Some(script.as_str()),
            "{key} differs from health.lua: run `make argocd-health`"
        );
    }
}
