//! The Subscription reconciler on the test bed, with no webhook installed: an invalid filter policy is
//! accepted by the API server (its schema cannot check the policy) and reported as `Ready=False` with the
//! filter engine's message; fixing the spec moves the condition on (to `DependencyNotReady`, since the
//! Topic does not exist), with `observedGeneration` following, and without an error storm.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn ready(object: &kube::api::DynamicObject) -> Option<(String, String, String, i64)> {
    let conditions = object.data.get("status")?.get("conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == "Ready")?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((
        s("status"),
        s("reason"),
        s("message"),
        c["observedGeneration"].as_i64()?,
    ))
}

#[tokio::test]
async fn invalid_filter_is_reported_as_ready_false_with_the_engines_message() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-sub").await;
    let aws = common::aws_config().await;
    let controller = common::start_controller(&client, &ns, &aws).await;

    let api = common::tributary_api(&client, &ns, "Subscription");
    let object = &common::yaml_objects(
        "apiVersion: tributary.dev/v1alpha1\nkind: Subscription\nmetadata: {name: s}\nspec:\n  topicRef: {name: orders}\n  queueRef: {name: q}\n  filter:\n    policy:\n      customer: {tier: [gold]}\n",
    )[0];
    api.create(&PostParams::default(), object).await.unwrap();

    let (status, _, message, generation) =
        common::eventually("Ready=False InvalidFilter", Duration::from_secs(30), || {
            let api = api.clone();
            async move { ready(&api.get("s").await.ok()?).filter(|r| r.1 == "InvalidFilter") }
        })
        .await;
    assert_eq!((status.as_str(), generation), ("False", 1));
    assert!(
        message
            .contains("spec.filter.policy: customer: nested keys are not allowed in MessageAttributes scope"),
        "{message}"
    );

    // Fix the spec: body scope allows nesting. The condition moves on and tracks the new generation.
    let fix: Value = json!({"spec": {"filter": {"scope": "MessageBody"}}});
    api.patch("s", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .unwrap();
    let (status, reason, _, generation) =
        common::eventually("Ready leaves InvalidFilter", Duration::from_secs(30), || {
            let api = api.clone();
            async move { ready(&api.get("s").await.ok()?).filter(|r| r.1 != "InvalidFilter") }
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str(), generation),
        ("False", "DependencyNotReady", 2)
    );
    let stored = api.get("s").await.unwrap();
    let (_, _, message, _) = ready(&stored).unwrap();
    assert_eq!(message, "Topic orders does not exist");
    assert_eq!(stored.data["status"]["observedGeneration"], 2);

    // Status is deterministic: the dependency retries (every second here) of the unchanged object do not
    // change the resourceVersion.
    let before = stored.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.get("s").await.unwrap().metadata.resource_version,
        before,
        "the controller loops on its own status"
    );

    controller.stop().await;
}
