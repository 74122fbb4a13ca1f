//! The validating webhook on the test bed: the real API server calls it over HTTPS for Subscriptions, and
//! a policy the filter engine rejects is refused at create time with the key and the rule.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn api_server_refuses_invalid_filters_through_the_webhook() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    // Scope the webhook to this test's namespace so other tests never depend on it; the path of earlier
    // charts, which sent only Subscriptions, is still served.
    let ns = common::namespace(&client, "webhook").await;
    let webhooks = json!([{
        "name": "subscriptions.tributary.dev",
        "rules": [{"apiGroups": ["tributary.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"], "resources": ["subscriptions"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 5
    }]);
    let webhook =
        common::webhook::Webhook::start(&client, &ns, tributary::webhook::SUBSCRIPTION_PATH, webhooks).await;

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

    webhook.stop().await;
}
