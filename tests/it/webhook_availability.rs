//! The webhook never stands between a user and deletion, and keeps serving through certificate rotation.
//! Both run the chart's own ValidatingWebhookConfiguration (its rules, match conditions and failure
//! policy) against a webhook served in the test process, on the test bed's real API server.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use common::webhook::{
    RunningWebhook, certificate, chart_webhooks, fingerprint_of_file, served_fingerprint, unregister,
};
use kube::api::{DeleteParams, PostParams};

/// A Subscription whose filter the webhook refuses (a numeric range whose lower bound is above its upper).
const BAD_FILTER: &str = "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: bad}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    policy:\n      total: [{numeric: [\"<\", 5, \">\", 1]}]\n";

/// The API server's answer to a dry-run create of the bad Subscription in `ns`.
async fn try_bad_subscription(client: &kube::Client, ns: &str) -> Result<(), String> {
    let api = common::tributary_api(client, ns, "Subscription");
    let bad = &common::yaml_objects(BAD_FILTER)[0];
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(&dry_run, bad)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Registers the chart's webhook configuration for `ns`, calling `addr`, and waits until the API server
/// uses it (the bad Subscription is refused by the webhook). Returns the configuration's name.
async fn register(client: &kube::Client, ns: &str, addr: std::net::SocketAddr) -> String {
    let name = common::webhook::register(client, ns, addr, None, chart_webhooks()).await;
    common::eventually(
        "the API server to call the webhook",
        Duration::from_secs(30),
        || async {
            match try_bad_subscription(client, ns).await {
                Err(message) if message.contains("spec.filter.policy.total") => Some(()),
                _ => None,
            }
        },
    )
    .await;
    name
}

/// The fingerprint of the certificate served at `addr`, asked for off the runtime: the webhook is served
/// by this test's own runtime, which must keep running to answer the handshake.
async fn served(addr: std::net::SocketAddr) -> Option<String> {
    tokio::task::spawn_blocking(move || served_fingerprint(addr))
        .await
        .unwrap()
}

const PIPELINE: &str = "\
apiVersion: tributary.dev/v1alpha1
kind: Topic
metadata: {name: orders}
spec: {aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Queue
metadata: {name: q}
spec: {aws: {}}
---
apiVersion: tributary.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topicRef: {name: orders}
  queueRef: {name: q}
  filter: {policy: {event: [OrderPlaced]}}
";

#[tokio::test]
async fn deleting_a_pipeline_completes_while_the_webhook_is_down() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "webhook-down").await;
    let dir = std::env::temp_dir().join(common::unique("webhook-down"));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = certificate(&dir, "serving");
    let webhook = RunningWebhook::start(&client, &crt, &key).await;
    let config = register(&client, &ns, webhook.addr).await;

    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;
    common::create_yaml(&client, &ns, PIPELINE).await;
    let subscription = common::wait_reason(
        &client,
        &ns,
        "Subscription",
        "s",
        "Available",
        Duration::from_secs(60),
    )
    .await;
    let arn = subscription.data["status"]["arn"].as_str().unwrap().to_owned();
    let topic = common::wait_reason(
        &client,
        &ns,
        "Topic",
        "orders",
        "Available",
        Duration::from_secs(30),
    )
    .await;
    let topic_arn = topic.data["status"]["arn"].as_str().unwrap().to_owned();

    // The webhook goes away (its pods gone): with failurePolicy Fail, creates and spec changes are refused...
    webhook.stop().await;
    let refused = try_bad_subscription(&client, &ns).await.unwrap_err();
    assert!(refused.contains("failed calling webhook"), "{refused}");

    // ...but deleting completes: the finalizers' cleanup and their removal are not held up.
    for (kind, name) in [("Subscription", "s"), ("Queue", "q"), ("Topic", "orders")] {
        common::tributary_api(&client, &ns, kind)
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for (kind, name) in [("Subscription", "s"), ("Queue", "q"), ("Topic", "orders")] {
        let api = common::tributary_api(&client, &ns, kind);
        common::eventually(
            &format!("{kind} {name} deleted with the webhook down"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move { matches!(api.get_opt(name).await, Ok(None)).then_some(()) }
            },
        )
        .await;
    }
    // The cleanup really ran: SNS no longer has the subscription.
    let sns = aws_sdk_sns::Client::new(&aws);
    let left = sns.list_subscriptions().send().await.unwrap();
    assert!(
        !left
            .subscriptions()
            .iter()
            .any(|s| s.subscription_arn() == Some(arn.as_str()) || s.topic_arn() == Some(topic_arn.as_str())),
        "the SNS subscription {arn} is left"
    );

    unregister(&client, &config).await;
    controller.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "webhook-rotate").await;
    let dir = std::env::temp_dir().join(common::unique("webhook-rotate"));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = certificate(&dir, "serving");
    let (next_crt, next_key) = certificate(&dir, "next");
    let (first, next) = (fingerprint_of_file(&crt), fingerprint_of_file(&next_crt));
    assert_ne!(first, next);

    let webhook = RunningWebhook::start(&client, &crt, &key).await;
    assert_eq!(served(webhook.addr).await.as_deref(), Some(first.as_str()));
    let config = register(&client, &ns, webhook.addr).await;

    // Rotate as the kubelet updates a mounted Secret: the new files appear at once (renamed into place).
    for (from, to) in [(&next_key, &key), (&next_crt, &crt)] {
        let staged = to.with_extension("staged");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    let addr = webhook.addr;
    common::eventually("the new certificate served", Duration::from_secs(30), || {
        let next = next.clone();
        async move { (served(addr).await.as_deref() == Some(next.as_str())).then_some(()) }
    })
    .await;
    // The API server (on a kept-alive connection or a new one, which gets the new certificate) still has
    // the webhook decide.
    let refused = try_bad_subscription(&client, &ns).await.unwrap_err();
    assert!(refused.contains("spec.filter.policy.total"), "{refused}");

    unregister(&client, &config).await;
    webhook.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
