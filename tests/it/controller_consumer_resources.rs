//! A Consumer's `spec.resources` on the test bed's API server: the controller in this process renders it
//! into the worker container of the real Deployment (the readiness probe on `/readyz`), and a change
//! rolls the Deployment to the new values.
#![allow(clippy::unwrap_used)]

use crate::support as common;

use std::time::Duration;

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::api::resource::Quantity};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(60);

async fn container_resources(
    deployments: &Api<Deployment>,
) -> Option<k8s_openapi::api::core::v1::ResourceRequirements> {
    let deployment = deployments.get("order-ack-worker").await.ok()?;
    deployment.spec?.template.spec?.containers[0].resources.clone()
}

#[tokio::test]
async fn spec_resources_reach_the_worker_deployment() {
    let _bed = common::shared().await;
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let ns = common::namespace(&client, "ctrl-consumer-resources").await;
    let controller = common::start_controller(&client, &ns, &common::aws_config().await).await;
    common::create_yaml(
        &client,
        &ns,
        "apiVersion: tributary.dev/v1alpha1\nkind: Topic\nmetadata: {name: orders}\nspec: {provider: aws, aws: {}}\n---\n\
         apiVersion: tributary.dev/v1alpha1\nkind: Consumer\nmetadata: {name: order-ack}\nspec:\n  source: {http: {port: 8080}}\n  \
         processor: order-ack\n  sink: {topicRef: {name: orders}}\n  scaling: {minReplicas: 1, maxReplicas: 1}\n  \
         resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 512Mi}}\n",
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let resources = common::eventually("the Deployment with spec.resources", CONVERGE, || async {
        container_resources(&deployments).await
    })
    .await;
    let quantity = |q: &str| Quantity(q.to_owned());
    assert_eq!(resources.requests.as_ref().unwrap()["cpu"], quantity("100m"));
    assert_eq!(resources.requests.as_ref().unwrap()["memory"], quantity("128Mi"));
    assert_eq!(resources.limits.as_ref().unwrap()["memory"], quantity("512Mi"));
    let deployment = deployments.get("order-ack-worker").await.unwrap();
    let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
    let probe = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(probe.path.as_deref(), Some("/readyz"));

    // A change rolls the Deployment to the new values.
    let consumers = common::tributary_api(&client, &ns, "Consumer");
    let patch =
        json!({"spec": {"resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "1Gi"}}}});
    consumers
        .patch("order-ack", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let resources = common::eventually("the new values in the Deployment", CONVERGE, || async {
        let resources = container_resources(&deployments).await?;
        (resources.limits.as_ref()?.get("memory")? == &quantity("1Gi")).then_some(resources)
    })
    .await;
    assert_eq!(resources.requests.unwrap()["memory"], quantity("256Mi"));
    controller.stop().await;
}
