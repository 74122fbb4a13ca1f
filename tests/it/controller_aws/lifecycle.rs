//! Lifecycle of single Queues: `deletionPolicy: Retain`, adoption of an existing queue (refused without
//! `adopt`, taken over with it), drift made behind the controller's back restored with an Event, and
//! tags added and removed with the spec.

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::*;

fn queue_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: tributary.dev/v1alpha1\nkind: Queue\nmetadata: {{name: {name}}}\nspec:\n  provider: aws\n  aws: {{visibilityTimeoutSeconds: 45}}\n{extra}"
    )
}

#[tokio::test]
async fn retain_keeps_the_queue_and_adoption_needs_adopt_true_and_drift_is_corrected() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-life").await;
    let aws = common::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let controller = common::start_controller(&client, &ns, &aws).await;
    let queues = common::tributary_api(&client, &ns, "Queue");
    common::tenant_policy(&client, &ns, json!({"allowAdoption": true})).await;

    // Retain: the object goes (finalizer removed), the SQS queue stays.
    common::create_yaml(&client, &ns, &queue_yaml("kept", "  deletionPolicy: Retain\n")).await;
    let kept = common::wait_reason(&client, &ns, "Queue", "kept", "Available", CONVERGE).await;
    let kept_url = status_str(&kept, "url");
    queues.delete("kept", &DeleteParams::default()).await.unwrap();
    common::eventually("the Retain object gone", CONVERGE, || {
        let queues = queues.clone();
        async move { queues.get_opt("kept").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert_eq!(queue_attributes(&sqs, &kept_url).await["VisibilityTimeout"], "45");
    assert!(has_event(&client, &ns, "kept", "Retained", "kept").await);

    // Adoption: a queue that exists and is not ours is refused, then adopted with adopt: true.
    let existing = sqs
        .create_queue()
        .queue_name(format!("{ns}_legacy"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    common::create_yaml(&client, &ns, &queue_yaml("legacy", "")).await;
    let refused = common::wait_reason(&client, &ns, "Queue", "legacy", "AlreadyExists", CONVERGE).await;
    let (status, _, message, _) = common::condition(&refused, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("set spec.adopt: true"), "{message}");
    assert!(message.contains("not created by Tributary"), "{message}");
    assert_eq!(
        queue_attributes(&sqs, &existing).await["VisibilityTimeout"],
        "30",
        "untouched"
    );
    queues
        .patch(
            "legacy",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"adopt": true}})),
        )
        .await
        .unwrap();
    let adopted = common::wait_reason(&client, &ns, "Queue", "legacy", "Available", CONVERGE).await;
    assert_eq!(status_str(&adopted, "url"), existing);
    assert_eq!(queue_attributes(&sqs, &existing).await["VisibilityTimeout"], "45");
    assert_eq!(queue_tags(&sqs, &existing).await["tributary.dev/name"], "legacy");
    assert!(has_event(&client, &ns, "legacy", "Adopted", &existing).await);

    // Drift: change an attribute behind the controller's back; the resync restores it and says so.
    sqs.set_queue_attributes()
        .queue_url(&existing)
        .attributes(QueueAttributeName::VisibilityTimeout, "999")
        .send()
        .await
        .unwrap();
    common::eventually("the drift corrected", CONVERGE, || {
        let (sqs, url) = (sqs.clone(), existing.clone());
        async move { (queue_attributes(&sqs, &url).await["VisibilityTimeout"] == "45").then_some(()) }
    })
    .await;
    let (client2, ns2) = (client.clone(), ns.clone());
    common::eventually("a DriftCorrected Event", CONVERGE, || {
        let (client, ns) = (client2.clone(), ns2.clone());
        async move {
            has_event(&client, &ns, "legacy", "DriftCorrected", "VisibilityTimeout")
                .await
                .then_some(())
        }
    })
    .await;

    // Tags follow the spec both ways: added, and removed when the spec drops them.
    let set_tags = |tags: serde_json::Value| {
        let queues = queues.clone();
        async move {
            let patch = json!({"spec": {"tags": tags}});
            queues
                .patch("legacy", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    let wait_tags = |what: &'static str, want: fn(&BTreeMap<String, String>) -> bool| {
        let (sqs, url) = (sqs.clone(), existing.clone());
        async move {
            common::eventually(what, CONVERGE, || {
                let (sqs, url) = (sqs.clone(), url.clone());
                async move { want(&queue_tags(&sqs, &url).await).then_some(()) }
            })
            .await;
        }
    };
    set_tags(json!({"team": "shop", "tier": "gold"})).await;
    wait_tags("tags team and tier", |t| {
        t.get("team").is_some() && t.get("tier").is_some()
    })
    .await;
    set_tags(json!({"tier": null})).await;
    wait_tags("tag tier removed", |t| {
        t.get("team").is_some() && t.get("tier").is_none()
    })
    .await;
    assert_eq!(queue_tags(&sqs, &existing).await["tributary.dev/name"], "legacy");

    controller.stop().await;
}
