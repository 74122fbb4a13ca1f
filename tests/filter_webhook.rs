//! The validating webhook on the test bed: the real API server calls it over HTTPS for Subscriptions, and
//! a policy the filter engine rejects is refused at create time with the key and the rule.
#![allow(clippy::unwrap_used)]

mod common;

use std::{process::Command, time::Duration};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

/// A serving certificate for 127.0.0.1 signed by the test bed's CA, which the API server is told to trust.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (key, csr, crt) = (
        dir.join("webhook.key"),
        dir.join("webhook.csr"),
        dir.join("webhook.crt"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=tributary-webhook",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        &common::var("TESTBED_CA_FILE"),
        "-CAkey",
        &common::var("TESTBED_CA_KEY_FILE"),
        "-CAcreateserial",
        "-CAserial",
        dir.join("ca.srl").to_str().unwrap(),
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        crt.to_str().unwrap(),
    ]);
    (crt, key)
}

#[tokio::test]
async fn api_server_refuses_invalid_filters_through_the_webhook() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let dir = std::env::temp_dir().join(common::unique("webhook"));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = certificate(&dir);

    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tributary::webhook::serve(
            "127.0.0.1:0".parse().unwrap(),
            &crt,
            &key,
            Some(bound_tx),
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let addr = bound_rx.await.unwrap();

    // Scope the webhook to this test's namespace so other tests never depend on it.
    let ns = common::namespace(&client, "webhook").await;
    let ca_bundle = std::fs::read(common::var("TESTBED_CA_FILE")).unwrap();
    let name = common::unique("tributary-subscriptions");
    let config: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "subscriptions.tributary.dev",
            "clientConfig": {
                "url": format!("https://{addr}{}", tributary::webhook::SUBSCRIPTION_PATH),
                "caBundle": k8s_openapi::ByteString(ca_bundle),
            },
            "rules": [{"apiGroups": ["tributary.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["subscriptions"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5
        }]
    }))
    .unwrap();
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    configs.create(&PostParams::default(), &config).await.unwrap();

    let subscriptions = common::tributary_api(&client, &ns, "Subscription");
    let bad = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    policy:\n      total: [{numeric: [\"<\", 5, \">\", 1]}]\n",
    )[0];
    // The API server picks up new webhook configurations within a moment: retry until the webhook answers.
    let message = common::eventually(
        "the webhook to refuse the bad filter",
        Duration::from_secs(30),
        || {
            let subscriptions = subscriptions.clone();
            async move {
                match subscriptions
                    .create(
                        &PostParams {
                            dry_run: true,
                            ..Default::default()
                        },
                        bad,
                    )
                    .await
                {
                    Err(kube::Error::Api(status)) if status.message.contains("admission webhook") => {
                        Some(status.message)
                    }
                    _ => None,
                }
            }
        },
    )
    .await;
    assert!(message.contains("spec.filter.policy.total"), "{message}");
    assert!(message.contains("lower bound"), "{message}");

    let nested = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: nested}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    policy:\n      customer: {tier: [gold]}\n",
    )[0];
    let Err(kube::Error::Api(status)) = subscriptions.create(&PostParams::default(), nested).await else {
        panic!("nested keys in attribute scope must be refused");
    };
    assert!(
        status
            .message
            .contains("spec.filter.policy.customer: nested keys"),
        "{}",
        status.message
    );

    let good = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: good}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    scope: MessageBody\n    policy:\n      customer: {tier: [gold]}\n",
    )[0];
    subscriptions.create(&PostParams::default(), good).await.unwrap();

    configs.delete(&name, &DeleteParams::default()).await.unwrap();
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
